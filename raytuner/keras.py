"""Keras integration: one callback reports each epoch, applies decisions and checkpoints.

>>> import raytuner as rt
>>> def train(config):
...     model = build_model(config)                      # compiled, with an Input
...     initial_epoch = rt.keras.restore(model)          # 0, or where a pause/retry left off
...     model.fit(x, y, validation_data=(xv, yv), epochs=27, initial_epoch=initial_epoch,
...               callbacks=[rt.keras.ReportCallback()], verbose=0)  # doctest: +SKIP

At the end of each epoch :class:`ReportCallback` reports the epoch's logs (``loss``,
``val_loss``, ...) and ``epoch`` (1-based, counting on across pause and resume), then
applies the scheduler's decision: CONTINUE trains on; STOP and PAUSE end ``fit`` after this
epoch through ``model.stop_training``. A checkpoint holds the model in Keras' own format
(``model.keras``: architecture, weights and optimizer state), the epoch and the trial's
config, so :func:`restore` continues a paused or retried trial exactly where it stopped,
and the best trial's model loads with :func:`load_model` (or ``keras.models.load_model``).

Under PBT a trial restarts from another trial's checkpoint with a new config: the training
function builds and compiles the model from the new config, and :func:`restore` loads the
donor's weights, optimizer state and epoch but keeps the learning rate the model was just
compiled with (Keras saves the learning rate as an optimizer variable, which would
otherwise bring the donor's back). Other hyperparameters take effect through the rebuilt
model (layers, regularisers) or the training function itself (batch size).

Outside a trial (the same script run by hand) the callback says so once and does nothing.
Works with every Keras 3 backend; nothing here touches TensorFlow directly.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from raytuner._worker import quiet_tf as _quiet_tf

_quiet_tf.arm()  # also in the driver, which may load a trial's model (rt.keras.load_model)
import keras  # noqa: E402

from raytuner._formats import dumps, other_name, reserved_column
from raytuner._worker import session as _session
from raytuner._worker.protocol import Signal
from raytuner.errors import ConfigError, ReportError, invalid

__all__ = ["MODEL_FILE", "ReportCallback", "load_model", "restore"]

logger = logging.getLogger("raytuner")

MODEL_FILE = "model.keras"
"""The model in a checkpoint (``model.save`` format: config, weights, optimizer state)."""
_WEIGHTS_FILE = "model.weights.h5"  # models whose config Keras cannot serialise
_STATE_FILE = "keras_state.json"

_warned_outside = False


def _metric_map(metrics: str | Sequence[str] | Mapping[str, str] | None) -> dict[str, str] | None:
    """``{reported name: Keras log name}``, or None for every log."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return {metrics: metrics}
    if isinstance(metrics, Mapping):
        pairs = dict(metrics)
    elif isinstance(metrics, Sequence):
        pairs = {name: name for name in metrics}
    else:
        pairs = {None: None}  # rejected below with the caller's value in the message
    if not pairs or not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
        raise invalid("ReportCallback", "metrics", metrics, "a Keras log name, a list or dict of them, or None",
                      "Pass 'val_loss', ['val_loss', 'val_accuracy'], {reported name: Keras log name} such as "
                      "{'loss': 'val_loss'}, or None to report every log.")
    for name, log in pairs.items():
        reserved = reserved_column(name)
        if reserved is not None:
            raise invalid("ReportCallback", "metrics", metrics, "reported names a report may hold",
                          f"{name!r} is {reserved}: report the log under another name, "
                          f"metrics={{{other_name(name)!r}: {log!r}}}.")
    return pairs


def _check_log_names(logs: Mapping[str, Any], metric: Any) -> None:
    """Refuse a Keras log (every log is reported by default) whose name raytuner uses itself,
    with the callback's own way to rename it."""
    for name in logs:
        reserved = reserved_column(name, metric)
        if reserved is not None:
            raise ReportError(
                f"ReportCallback: the epoch's Keras logs hold {name!r}, which is {reserved}, so raytuner cannot "
                f"report it under that name. Rename it with ReportCallback(metrics={{{other_name(name)!r}: "
                f"{name!r}, ...}}) (a dict of reported name to Keras log name, listing every log to report)."
            )


#: Why a 'val_*' log is missing from an epoch that logged no validation at all.
_VALIDATION = ("Keras logs 'val_*' metrics only in epochs that validate: with validation_data= (or "
               "validation_split=) in fit(), and in every epoch only with validation_freq=1, its default. Each report "
               "must hold the metric: validate every epoch, or tune on a metric that every epoch logs.")


def _unvalidated(name: str, logs: Mapping[str, Any] | Sequence[str]) -> bool:
    """Whether ``name`` is a validation log and the epoch logged no validation at all."""
    return name.startswith("val_") and not any(str(log).startswith("val_") for log in logs)


def _missing_metric_advice(missing: str, logged: Sequence[str]) -> str:
    """What to do about the Tuner's metric ``missing`` from an epoch's report of ``logged``:
    validate in every epoch, a near name (a typo in ``metric=``), or where Keras' logs come from."""
    if _unvalidated(missing, logged):
        return _VALIDATION
    close = difflib.get_close_matches(missing, [name for name in logged if name != "epoch"], 1)
    near = f"Did you mean metric={close[0]!r}? The epoch logged it. " if close else ""
    return (f"{near}ReportCallback reports Keras' logs, named by compile(loss=..., metrics=...) ('val_*' too where "
            f"fit() validates): pass one of them as the Tuner's `metric=`, rename one with "
            f"ReportCallback(metrics={{{missing!r}: '<log name>'}}), or add what Keras does not log with "
            f"ReportCallback(extra_metrics=lambda model: {{{missing!r}: ...}}).")


class ReportCallback(keras.callbacks.Callback):
    """Report each epoch to raytuner, apply the scheduler's decision, checkpoint.

    Args:
        metrics: What to report from the epoch's logs: None for all of them, a name or a
            list of names, or a dict ``{reported name: Keras log name}`` to rename
            (``{"loss": "val_loss"}`` reports Keras' ``val_loss`` as ``loss``). ``epoch``
            (1-based) is always added.
        checkpoint: When to attach a checkpoint to the report. ``"auto"`` (the default):
            where it is needed, that is at every epoch at which the scheduler may pause
            the trial (its rungs), at the last epoch of ``fit`` (the planned one; one after
            which a callback listed before this one, such as ``EarlyStopping``, stops
            training; one that reaches the Tuner's ``stop=``, or that a stop sent meanwhile
            ends), and, for fault tolerance, at the first epoch that ends
            ``checkpoint_period_s`` or more after the last checkpoint. True: every epoch. An
            int N: every N-th epoch, the last epoch of ``fit`` and every epoch at which the
            scheduler may pause. List ``ReportCallback`` after ``EarlyStopping``: Keras calls
            callbacks in order, and one listed after it stops training unseen. ``"pause"``: only at
            epochs where the scheduler decides, which is where a PAUSE can come; the
            cheapest setting that still resumes paused trials exactly, but a trial stopped
            or completed between rungs keeps no final model. False: never (paused or
            retried trials restart).
        checkpoint_period_s: With ``checkpoint="auto"``, the longest stretch of training
            without a checkpoint, in seconds (``math.inf``: none for fault tolerance).
        extra_metrics: ``fn(model) -> {name: number}``, called at the end of each epoch;
            its metrics join the report beside the logs'. For what Keras does not log, such
            as a constant objective of a multi-objective experiment:
            ``extra_metrics=lambda model: {"params": model.count_params()}`` with
            ``Tuner(metric=["val_loss", "params"])``. A name the logs already hold is refused.

    The trade-off of fewer checkpoints: each one costs a save of the model on the training
    loop (its storage is done beside training), but a trial retried after its worker died
    restarts from its last checkpoint and repeats the epochs since (up to about
    ``checkpoint_period_s`` of training with ``"auto"``); those epochs' reports are
    superseded. Paused trials always resume exactly: a pause comes only at an epoch that
    was checkpointed.

    The epoch is the scheduler's resource when the Tuner counts reports (the default): the
    ``n``-th report of a trial is its ``n``-th epoch, provided the training function passes
    ``initial_epoch=rt.keras.restore(model)`` to ``fit``. With ``resource_attr="epoch"`` on
    the scheduler the epoch is read from the report instead.

    Example:
        >>> cb = ReportCallback(metrics={"val_loss": "val_loss", "acc": "val_accuracy"})
    """

    def __init__(
        self,
        metrics: str | Sequence[str] | Mapping[str, str] | None = None,
        checkpoint: bool | int | str = "auto",
        checkpoint_period_s: float = 60.0,
        extra_metrics: Callable[[keras.Model], Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self._metrics = _metric_map(metrics)
        if extra_metrics is not None and not callable(extra_metrics):
            raise invalid("ReportCallback", "extra_metrics", extra_metrics, "a function model -> {name: number}",
                          "Pass e.g. extra_metrics=lambda model: {'params': model.count_params()}.")
        self._extra = extra_metrics
        valid = checkpoint is True or checkpoint is False or checkpoint in ("auto", "pause") or (
            isinstance(checkpoint, int) and not isinstance(checkpoint, bool) and checkpoint >= 1
        )
        if not valid:
            raise invalid("ReportCallback", "checkpoint", checkpoint, "'auto', True, an int >= 1, 'pause' or False",
                          "Pass 'auto' (where needed: rungs, the last epoch, every checkpoint_period_s), True "
                          "(every epoch), N (every N epochs), 'pause' (only where the scheduler may pause) or False.")
        if isinstance(checkpoint_period_s, bool) or not isinstance(checkpoint_period_s, (int, float)) \
                or not checkpoint_period_s > 0:
            raise invalid("ReportCallback", "checkpoint_period_s", checkpoint_period_s, "a number of seconds > 0",
                          "Pass e.g. 60 (a checkpoint at least once a minute), or math.inf for none between "
                          "rungs and the end.")
        self._checkpoint = checkpoint
        self._period_s = float(checkpoint_period_s)
        self._last_checkpoint = 0.0  # monotonic time of the last checkpoint (or of the start of fit)
        self._session: _session.Session | None = None
        self._warned_epoch = False
        self._warned_vectors = False
        #: The signal that ended ``fit``, or None: PAUSE, STOP (a scheduler's or a command's
        #: stop, and also a scheduler's end at the full budget, which travels as STOP), or
        #: COMPLETED (the Tuner's ``stop=`` reached).
        self.decision: Signal | None = None

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        global _warned_outside
        self._session = _session.current()
        self.decision = None
        self._last_checkpoint = time.monotonic()
        if self._session is None and not _warned_outside:
            _warned_outside = True
            warnings.warn(
                "raytuner.keras.ReportCallback is not running inside a raytuner trial, so it "
                "reports nothing and saves no checkpoints; training runs as usual.",
                RuntimeWarning,
                stacklevel=1,  # fit()'s frames in between would point into Keras
            )

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        session = self._session
        if session is None:
            return
        done = epoch + 1  # Keras counts from 0 and includes initial_epoch
        metrics = self._select(dict(logs or {}), done)
        if self._metrics is None:
            _check_log_names(metrics, session.metric)
            self._drop_vectors(metrics, session)
        if self._extra is not None:
            metrics.update(self._extra_metrics(metrics))
        # Checked before the checkpoint is saved, with where Keras' metrics come from.
        missing = next((m for m in session.objectives if m not in metrics), None)
        if missing is not None:
            session.check_metric(metrics, advice=_missing_metric_advice(missing, list(metrics)))
        if session.iteration != epoch and not self._warned_epoch:
            self._warned_epoch = True
            # With resource_attr="epoch" the epochs a restarted trial reports again are not
            # news to the scheduler (it is fed only progress): it judges the trial a few
            # epochs late, and its checkpoints say fewer epochs than the model trained.
            why = ("the scheduler's resource is not the epoch" if session.resource_attr is None else
                   f"its {session.resource_attr!r} repeats epochs it reported before its restart")
            logger.warning(
                "Trial %s: Keras epoch %d is report %d of the trial, so %s. Pass "
                "`initial_epoch=rt.keras.restore(model)` to fit() so a resumed trial continues from "
                "its checkpoint's epoch.",
                session.trial_id, done, session.iteration + 1, why,
            )
        def save() -> Path:
            # A folder the report takes as it is: in the trial's storage where the worker
            # sees it, so the model is written once and renamed into place.
            folder = session.new_checkpoint_dir()
            save_checkpoint(self.model, folder, done, getattr(session.spec, "config", None))
            self._last_checkpoint = time.monotonic()
            return folder

        final = self._checkpoint not in (False, "pause")  # the policies that keep the final model
        # fit() ends after this epoch: EarlyStopping, TerminateOnNaN... (listed before this
        # callback) set stop_training; the planned last epoch is in _checkpoint_due.
        path = save() if self._checkpoint_due(session, metrics, done) or (final and self.model.stop_training) \
            else None
        # The trial's end comes with this report (the Tuner's stop=, a stop sent meanwhile):
        # the worker asks for the final model then.
        self.decision = session.report(metrics, path, last_checkpoint=save if final else None)
        if self.decision is Signal.CONTINUE:
            self.decision = None
            return
        self.model.stop_training = True
        if self.decision is Signal.PAUSE and path is None:
            logger.warning(
                "Trial %s was paused at epoch %d without a checkpoint of that epoch; it will "
                "resume from its last checkpoint. Use checkpoint=True or 'pause' to save one.",
                session.trial_id, done,
            )

    def _drop_vectors(self, metrics: dict[str, Any], session: _session.Session) -> None:
        """Logs of several values (``F1Score()`` per class, a confusion matrix) are left out
        of the default report, with one warning: a report holds numbers. The Tuner's metric
        cannot be left out: that is an error naming the fixes."""
        vectors = {name: value for name, value in metrics.items() if getattr(value, "ndim", 0)}
        for name, value in vectors.items():
            if name in session.objectives:
                raise ReportError(
                    f"ReportCallback: the Tuner's metric {name!r} is a Keras log of {getattr(value, 'size', '?')} "
                    f"values (shape {getattr(value, 'shape', '?')}), and a report holds numbers. Make the metric "
                    "one number (e.g. keras.metrics.F1Score(average='macro')), or report one computed from it with "
                    f"ReportCallback(extra_metrics=lambda model: {{{name!r}: ...}}) and metrics=[...] naming the rest.")
            del metrics[name]
        if vectors and not self._warned_vectors:
            self._warned_vectors = True
            logger.warning("ReportCallback leaves out the Keras logs %s: each holds several values (a report holds "
                           "numbers). Pass metrics=[...] to choose the logs to report.", sorted(vectors))

    def _select(self, logs: dict[str, Any], epoch: int) -> dict[str, Any]:
        if self._metrics is None:
            selected = dict(logs)
        else:
            missing = sorted(v for v in self._metrics.values() if v not in logs)
            if missing:
                if any(_unvalidated(name, logs) for name in missing):
                    why = _VALIDATION
                else:
                    close = {name: match[0] for name in missing if (match := difflib.get_close_matches(name, logs, 1))}
                    near = ", ".join(f"{v!r} for {k!r}" for k, v in close.items())
                    why = (f"Did you mean {near}? " if close else "") + (
                        "Keras logs what compile(loss=..., metrics=...) names, 'val_*' too where fit() validates.")
                raise ReportError(f"ReportCallback: {missing} not in the epoch's Keras logs {sorted(logs)}. {why}")
            selected = {name: logs[key] for name, key in self._metrics.items()}
        selected.setdefault("epoch", epoch)
        return selected

    def _extra_metrics(self, logged: Mapping[str, Any]) -> dict[str, Any]:
        extra = self._extra(self.model)
        if not isinstance(extra, Mapping):
            raise ReportError(f"ReportCallback: extra_metrics returned {type(extra).__name__} {extra!r:.80}, not a "
                              "dict of metric names to numbers, e.g. {'params': model.count_params()}.")
        clash = sorted(set(extra) & set(logged))
        if clash:
            held = "the epoch's logs already hold" if set(clash) - {"epoch"} else \
                "the report already holds (ReportCallback adds 'epoch' itself: the epoch's number, from 1)"
            raise ReportError(f"ReportCallback: extra_metrics returned {clash}, which {held}. Give them other names.")
        return dict(extra)

    def _checkpoint_due(self, session: _session.Session, metrics: Mapping[str, Any], epoch: int) -> bool:
        policy = self._checkpoint
        if policy is True or policy is False:
            return policy
        if policy != "pause" and epoch == self.params.get("epochs"):
            return True
        if policy == "auto" and time.monotonic() - self._last_checkpoint >= self._period_s:
            return True
        if isinstance(policy, int) and epoch % policy == 0:
            return True
        return session.decision_due(metrics)


def save_checkpoint(model: keras.Model, directory: str | os.PathLike[str], epoch: int,
                    config: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` (weights and optimizer state), ``epoch`` and the trial's ``config``
    into ``directory``.

    The model goes to ``model.keras`` with ``model.save``. A model Keras cannot serialise
    (a subclassed model without ``get_config``) is saved with ``save_weights`` instead,
    which :func:`restore` reads the same way but :func:`load_model` cannot rebuild.
    """
    target = Path(directory)
    try:
        model.save(target / MODEL_FILE)
        _keep_keras_skipsets()
    except NotImplementedError as exc:  # get_config missing
        (target / MODEL_FILE).unlink(missing_ok=True)
        model.save_weights(target / _WEIGHTS_FILE)
        _warn_weights_only(exc)
    state = {"epoch": int(epoch), "keras_version": keras.__version__, "backend": keras.backend.backend()}
    if config is not None:
        state["config"] = json.loads(dumps(config))
    (target / _STATE_FILE).write_text(json.dumps(state))


_SKIPSET, _SKIPLIST = "saving_attr_skipset_", "saving_attr_skiplist_"


def _keep_keras_skipsets() -> None:
    """Let Keras find the attribute skip-sets it computed for saving, so the next save does
    not build them again.

    Keras 3 (3.15 and earlier) stores each set under ``saving_attr_skipset_<type>`` but looks
    it up under ``saving_attr_skiplist_<type>``, so every ``model.save`` builds throwaway
    layers, optimizers and metrics to list their attributes: a quarter of a checkpoint's
    time for a small model (34 -> 25 ms here, every epoch). The sets depend only on the
    class, so a copy under the looked-up name is what the cache meant to hold. If a Keras
    release names them alike, or otherwise, this does nothing.
    """
    try:
        from keras.src.backend.common import global_state

        tracker = global_state.GLOBAL_STATE_TRACKER  # per thread, reset by clear_session()
    except (ImportError, AttributeError):
        return
    for name, value in list(vars(tracker).items()):
        if name.startswith(_SKIPSET):
            setattr(tracker, _SKIPLIST + name[len(_SKIPSET):], value)


_warned_weights_only = False


def _warn_weights_only(exc: Exception) -> None:
    global _warned_weights_only
    if not _warned_weights_only:
        _warned_weights_only = True
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning(
            "Keras cannot serialise this model's config (%s), so checkpoints hold weights and "
            "optimizer state only (%s): rt.keras.restore() works, load_model() does not. "
            "Implement get_config() to save the whole model.", first, _WEIGHTS_FILE,
        )


def restore(model: keras.Model, checkpoint: str | os.PathLike[str] | None = None) -> int:
    """Load weights and optimizer state from a checkpoint; return the epoch to resume at.

    Call it after building and compiling the model and pass the result to ``fit`` as
    ``initial_epoch``. Inside a trial, ``checkpoint`` defaults to the one to resume from
    (:func:`raytuner.get_checkpoint`); when there is none (a fresh trial, or outside a
    trial) the model is left as it is and 0 is returned.

    When the checkpoint was made under another config than the running trial's (a PBT
    exploit, or a replayed schedule), the learning rate the model was compiled with is
    kept; otherwise the checkpoint's is restored with the rest of the optimizer's state.

    Args:
        model: A built model (made with an ``Input``, or called once) with the same
            architecture as the checkpointed one; compile it first to restore the
            optimizer's state (moments, step count) along with the weights.
        checkpoint: A checkpoint directory written by :class:`ReportCallback`; default: the
            running trial's.

    Returns:
        The number of epochs the checkpoint had completed.
    """
    if checkpoint is None:
        checkpoint = _session.get_checkpoint() if _session.in_trial() else None
        if checkpoint is None:
            return 0
    path = Path(checkpoint)
    state_file = path / _STATE_FILE
    if not state_file.is_file():
        msg = (
            f"{str(path)!r} is not a checkpoint written by raytuner.keras.ReportCallback (no "
            f"{_STATE_FILE}). A trainable that mixes rt.report(checkpoint=...) with the Keras "
            "callback must restore its own checkpoints."
        )
        raise ConfigError(msg)
    if not model.built or not model.weights:
        msg = (
            "rt.keras.restore() needs a built model to load weights into: create it with "
            "keras.Input(...), or call model.build(input_shape) or model(x[:1]) first."
        )
        raise ConfigError(msg)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # An unbuilt optimizer has no slots to receive the saved moments; Keras would skip
        # them with a warning and the trial would resume with a fresh optimizer.
        optimizer.build(model.trainable_variables)
    weights = path / MODEL_FILE if (path / MODEL_FILE).is_file() else path / _WEIGHTS_FILE
    state = json.loads(state_file.read_text())
    compiled = _learning_rate(optimizer) if _config_changed(state) else None
    model.load_weights(weights)
    if compiled is not None:
        optimizer._learning_rate.assign(compiled)  # type: ignore[union-attr]
    return int(state["epoch"])


def _learning_rate(optimizer: Any) -> float | None:
    """The optimizer's learning rate if it is a variable (a schedule is not saved)."""
    variable = getattr(optimizer, "_learning_rate", None)
    if variable is None or not hasattr(variable, "assign"):
        return None
    return float(keras.ops.convert_to_numpy(variable))


def _config_changed(state: Mapping[str, Any]) -> bool:
    """Whether the checkpoint was made under another config than the running trial's."""
    session = _session.current()
    config = getattr(getattr(session, "spec", None), "config", None)
    return config is not None and "config" in state and state["config"] != json.loads(dumps(config))


def load_model(checkpoint: str | os.PathLike[str], **kwargs: Any) -> keras.Model:
    """The model saved in a checkpoint directory (e.g. ``results.best.checkpoint``).

    ``kwargs`` go to ``keras.models.load_model`` (``custom_objects=``, ``compile=``).
    """
    path = Path(checkpoint) / MODEL_FILE
    if not path.is_file():
        msg = (
            f"No {MODEL_FILE} in {str(checkpoint)!r}. Pass a checkpoint directory written by "
            "raytuner.keras.ReportCallback (results.best.checkpoint); a model Keras cannot "
            "serialise is checkpointed as weights only: rebuild it and use restore(model, path)."
        )
        raise FileNotFoundError(msg)
    return keras.models.load_model(path, **kwargs)
