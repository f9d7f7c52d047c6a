"""raytuner.keras in one process: the callback against a scripted trial, checkpoints, restore.

A stand-in for the worker's TrialRun answers each report from a script, so decisions,
checkpoint policies and metric selection are checked exactly, with real Keras training on
tiny data and no Ray. The Ray path is in tests/integration/test_keras.py.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from raytuner._worker import session as _session  # noqa: E402
from raytuner import keras as rtk  # noqa: E402
from raytuner._worker.protocol import Signal  # noqa: E402
from raytuner.errors import ConfigError, ReportError  # noqa: E402

STEPS = 4  # batches per epoch


@dataclass
class Spec:
    trial_id: str = "00000"
    metric: str | None = "val_loss"
    resource_attr: str | None = None
    config: dict | None = None


@dataclass
class ScriptedRun(_session.Session):
    """Plays TrialRun's side of the session for the callback: records reports, answers from
    a script (the metric check is the Session's own)."""

    decisions: dict[int, str] = field(default_factory=dict)  # report number -> decision
    decide_at: set[int] = field(default_factory=set)  # report numbers that await a decision
    ends: set[int] = field(default_factory=set)  # report numbers the trial ends with (stop=, a stop sent meanwhile)
    spec: Spec = field(default_factory=Spec)
    iteration: int = 0
    checkpoint_dir: Path | None = None
    reports: list[dict] = field(default_factory=list)
    checkpoints: dict[int, Path] = field(default_factory=dict)
    handed_out: list[Path] = field(default_factory=list)

    def decision_due(self, metrics):
        return self.iteration + 1 in self.decide_at

    def new_checkpoint_dir(self):
        self.handed_out.append(Path(tempfile.mkdtemp(prefix="scripted-checkpoint-")))
        return self.handed_out[-1]

    def report(self, metrics, checkpoint=None, *, last_checkpoint=None):
        self.iteration += 1
        if checkpoint is None and self.iteration in self.ends and last_checkpoint is not None:
            checkpoint = last_checkpoint()  # as TrialRun asks for the final model
        self.reports.append(dict(metrics))
        if checkpoint is not None:
            # Taken as it is, as TrialRun takes a folder it handed out.
            assert Path(checkpoint) in self.handed_out, "the callback must checkpoint into a folder the session gave"
            self.checkpoints[self.iteration] = Path(checkpoint)
        return Signal(self.decisions.get(self.iteration, "continue"))


@pytest.fixture
def trial():
    runs = []

    def install(**kwargs):
        run = ScriptedRun(**kwargs)
        _session._install(run)
        runs.append(run)
        return run

    yield install
    _session._install(None)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1)) + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def make_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse", metrics=["mae"])
    return model


def fit(model, callback, epochs=5, initial_epoch=0, checkpoint_callback=None, **kwargs):
    """``checkpoint_callback``: a second callback, listed after ``callback``."""
    x, y = data()
    callbacks = [callback] if checkpoint_callback is None else [callback, checkpoint_callback]
    return model.fit(x, y, validation_data=data(32, seed=1), batch_size=len(x) // STEPS, epochs=epochs,
                     initial_epoch=initial_epoch, callbacks=callbacks, verbose=0, **kwargs)


def drive(callback, model, epochs=5, logs=None, initial_epoch=0):
    """Call the callback's hooks as fit() would, without training; return epochs run."""
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "steps": STEPS, "verbose": 0})
    model.stop_training = False
    callback.on_train_begin()
    ran = 0
    for epoch in range(initial_epoch, epochs):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(logs or {"loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1)}))
        ran += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran


@pytest.fixture(scope="module")
def trained():
    """One real fit of 3 epochs inside a scripted trial: (model, run, history)."""
    run = ScriptedRun()
    _session._install(run)
    try:
        model = make_model()
        history = fit(model, rtk.ReportCallback(), epochs=3)
    finally:
        _session._install(None)
    return model, run, history


def test_reports_every_epoch_with_its_logs_and_one_based_epoch(trained):
    _, run, history = trained
    assert [r["epoch"] for r in run.reports] == [1, 2, 3]
    assert set(run.reports[0]) == {"loss", "mae", "val_loss", "val_mae", "epoch"}
    assert [r["val_loss"] for r in run.reports] == pytest.approx(history.history["val_loss"])


def test_metrics_select_and_rename(trial):
    run = trial()
    drive(rtk.ReportCallback(metrics={"val_loss": "val_loss", "train_mae": "mae"}), make_model(), epochs=2,
          logs={"loss": 0.5, "mae": 0.25, "val_loss": 0.75})
    assert run.reports == [{"val_loss": 0.75, "train_mae": 0.25, "epoch": 1}, {"val_loss": 0.75, "train_mae": 0.25, "epoch": 2}]
    assert rtk._metric_map(["val_loss", "mae"]) == {"val_loss": "val_loss", "mae": "mae"}
    assert rtk._metric_map("val_loss") == {"val_loss": "val_loss"}
    assert rtk._metric_map(None) is None


def test_a_missing_log_or_tuner_metric_is_a_report_error_that_says_why(trial):
    trial()
    with pytest.raises(ReportError, match=r"\['val_acc'\] not in the epoch's Keras logs"):
        drive(rtk.ReportCallback(metrics=["val_acc"]), make_model())
    trial()
    with pytest.raises(ReportError, match="validation_data="):  # no validation: no val_loss
        drive(rtk.ReportCallback(), make_model(), logs={"loss": 0.5})


@pytest.mark.parametrize("selected", [None, ["val_loss"]])
def test_an_epoch_that_did_not_validate_is_named_as_the_cause(trial, selected):
    # fit(validation_data=..., validation_freq=2): the first epoch logs no 'val_*' at all.
    trial()
    with pytest.raises(ReportError, match=r"Keras logs 'val_\*' metrics only in epochs that validate: with "
                                          r"validation_data= \(or validation_split=\) in fit\(\), and in every epoch "
                                          r"only with validation_freq=1, its default\. Each report must hold the metric"):
        drive(rtk.ReportCallback(metrics=selected), make_model(), logs={"loss": 0.5})


def test_a_tuner_metric_close_to_a_logged_name_is_named_as_a_likely_typo(trial):
    trial(spec=Spec(metric="val_los"))
    with pytest.raises(ReportError, match=r"The Tuner expects metric 'val_los' in each report; trial 00000 reported "
                                          r"\['epoch', 'loss', 'val_loss'\]\. Did you mean metric='val_loss'\? The "
                                          r"epoch logged it\. .*pass one of them as the Tuner's `metric=`"):
        drive(rtk.ReportCallback(), make_model())
    trial()
    with pytest.raises(ReportError, match=r"\['val_los'\] not in the epoch's Keras logs \['loss', 'val_loss'\]\. Did "
                                          r"you mean 'val_loss' for 'val_los'\?"):
        drive(rtk.ReportCallback(metrics={"val_loss": "val_los"}), make_model())


def test_a_keras_log_named_like_a_column_of_raytuners_is_refused_with_the_rename(trial):
    trial()
    with pytest.raises(ReportError, match=r"the epoch's Keras logs hold 'timestamp', which is a column raytuner writes "
                                          r".*Rename it with ReportCallback\(metrics=\{'timestamp_': 'timestamp', "):
        drive(rtk.ReportCallback(), make_model(), logs={"val_loss": 0.5, "timestamp": 3.0})
    run = trial()
    drive(rtk.ReportCallback(metrics={"val_loss": "val_loss", "timestamp_": "timestamp"}), make_model(), epochs=1,
          logs={"val_loss": 0.5, "timestamp": 3.0})
    assert run.reports == [{"val_loss": 0.5, "timestamp_": 3.0, "epoch": 1}]
    with pytest.raises(ConfigError, match=r"`metrics` is \{'iteration': 'loss'\}, but must be reported names a "
                                          r"report may hold\. 'iteration' is .*metrics=\{'iteration_': 'loss'\}"):
        rtk.ReportCallback(metrics={"iteration": "loss"})


@pytest.mark.parametrize("bad", [{"loss": 1}, 3, [1, 2], {}])
def test_bad_metrics_argument(bad):
    with pytest.raises(ConfigError, match="ReportCallback: `metrics` is "):
        rtk.ReportCallback(metrics=bad)


@pytest.mark.parametrize("bad", [0, -2, "sometimes", 1.5, None])
def test_bad_checkpoint_argument(bad):
    with pytest.raises(ConfigError, match="ReportCallback: `checkpoint` is "):
        rtk.ReportCallback(checkpoint=bad)


def test_stop_ends_fit_after_that_epoch(trial):
    run = trial(decisions={2: "stop"}, decide_at={2})
    callback = rtk.ReportCallback()
    history = fit(make_model(), callback, epochs=5)
    assert len(history.history["loss"]) == 2, "no epoch may run after STOP"
    assert [r["epoch"] for r in run.reports] == [1, 2]
    assert callback.decision == "stop"


@pytest.mark.parametrize("decision", ["pause", "completed"])
def test_pause_and_completed_end_training_too(trial, decision):
    run = trial(decisions={3: decision}, decide_at={3})
    callback = rtk.ReportCallback(checkpoint="pause")
    assert drive(callback, make_model(), epochs=5) == 3
    assert callback.decision == decision
    assert sorted(run.checkpoints) == [3], "a pause point carries the checkpoint to resume from"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("auto", [3, 5]),  # the default: the rung at 3 and the last epoch (training takes < 60 s)
        (True, [1, 2, 3, 4, 5]),
        (2, [2, 3, 4, 5]),  # every 2nd, the rung at 3, and the last epoch
        ("pause", [3]),  # only where a decision (maybe PAUSE) is due
        (False, []),
    ],
)
def test_checkpoint_policies(trial, policy, expected):
    run = trial(decide_at={3})
    drive(rtk.ReportCallback(checkpoint=policy), make_model(), epochs=5)
    assert sorted(run.checkpoints) == expected


class StopsAt(keras.callbacks.Callback):
    """Stops training after an epoch, as EarlyStopping or TerminateOnNaN would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.model.stop_training = True


@pytest.mark.parametrize(("policy", "expected"), [("auto", [2]), (3, [2]), ("pause", []), (False, [])])
def test_a_fit_that_ends_early_keeps_its_final_model_where_the_policy_keeps_one(trial, policy, expected):
    """A callback listed before ours ends fit after epoch 2 of 30: "auto" and N checkpoint
    that epoch, the trial's last ("pause" and False keep no final model, as documented)."""
    run = trial()
    model = make_model()
    fit(model, StopsAt(2), epochs=30, checkpoint_callback=rtk.ReportCallback(checkpoint=policy))
    assert len(run.reports) == 2 and sorted(run.checkpoints) == expected


@pytest.mark.parametrize(("policy", "expected"), [("auto", [3]), (2, [2, 3]), ("pause", []), (False, [])])
def test_an_epoch_that_ends_the_trial_by_stop_or_a_stop_sent_keeps_its_final_model(trial, policy, expected):
    """The Tuner's stop= reached at epoch 3, or a stop command that the worker applies at the
    report of epoch 3: the worker asks the callback for the final model then."""
    run = trial(ends={3}, decisions={3: "completed"})
    drive(rtk.ReportCallback(checkpoint=policy), make_model(), epochs=30)
    assert len(run.reports) == 3 and sorted(run.checkpoints) == expected


def test_auto_checkpoints_at_least_every_period_for_fault_tolerance(trial, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(rtk.time, "monotonic", lambda: now[0])
    run = trial()  # FIFO: no epoch at which a decision is due
    callback, model = rtk.ReportCallback(checkpoint_period_s=30), make_model()
    callback.set_model(model)
    callback.set_params({"epochs": 8, "steps": STEPS, "verbose": 0})
    callback.on_train_begin()  # at 0 s
    for epoch, ends_at in enumerate([10, 25, 31, 40, 70, 95, 100, 200]):
        now[0] = ends_at
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": 1.0})
    # 31 s after the start; at 70 s (39 s after it), not at 95 s (25 s), at 100 s (30 s); the last epoch
    assert sorted(run.checkpoints) == [3, 5, 7, 8]


@pytest.mark.parametrize("bad", [0, -1, "60", None, True])
def test_bad_checkpoint_period(bad):
    with pytest.raises(ConfigError, match="ReportCallback: `checkpoint_period_s` is "):
        rtk.ReportCallback(checkpoint_period_s=bad)


def test_checkpoint_is_keras_format_with_the_epoch(trained, tmp_path):
    model, run, _ = trained
    path = run.checkpoints[3]
    assert sorted(p.name for p in path.iterdir()) == ["keras_state.json", "model.keras"]
    assert json.loads((path / "keras_state.json").read_text())["epoch"] == 3
    loaded = rtk.load_model(path)
    x, _ = data()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert int(loaded.optimizer.iterations) == 3 * STEPS


def _optimizer_state(model):
    return {v.path: v.numpy() for v in model.optimizer.variables}


def test_restore_loads_weights_and_optimizer_state_and_returns_the_epoch(trained, trial, tmp_path):
    model, run, _ = trained
    checkpoint = run.checkpoints[3]
    fresh = make_model(seed=1)  # compiled, optimizer not built yet
    resumed = trial(checkpoint_dir=checkpoint, iteration=3)
    assert rtk.restore(fresh) == 3
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    saved, restored = _optimizer_state(model), _optimizer_state(fresh)
    assert int(fresh.optimizer.iterations) == 3 * STEPS
    assert [np.array_equal(a, b) for a, b in zip(saved.values(), restored.values())] == [True] * len(saved)
    fit(fresh, rtk.ReportCallback(), epochs=4, initial_epoch=3)
    assert [r["epoch"] for r in resumed.reports] == [4]
    assert int(fresh.optimizer.iterations) == 4 * STEPS


def test_restore_without_a_checkpoint_is_a_no_op(trial, tmp_path):
    model = make_model()
    before = [w.numpy() for w in model.weights]
    assert rtk.restore(model) == 0  # outside a trial
    trial()
    assert rtk.restore(model) == 0  # a fresh trial
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, model.weights))
    with pytest.raises(ConfigError, match="not a checkpoint written by raytuner.keras"):
        rtk.restore(model, tmp_path)


class Subclassed(keras.Model):
    def __init__(self, units):  # no get_config: Keras cannot save the whole model
        super().__init__()
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


def test_a_model_keras_cannot_serialise_is_checkpointed_as_weights(trial, tmp_path, caplog):
    run = trial()
    model = Subclassed(8)
    model.compile(optimizer="adam", loss="mse")
    with caplog.at_level(logging.WARNING, logger="raytuner"):
        fit(model, rtk.ReportCallback(), epochs=2)
    assert "weights and optimizer state only" in caplog.text
    path = run.checkpoints[2]
    assert sorted(p.name for p in path.iterdir()) == ["keras_state.json", "model.weights.h5"]
    fresh = Subclassed(8)
    fresh.compile(optimizer="adam", loss="mse")
    fresh(data()[0][:1])
    assert rtk.restore(fresh, path) == 2
    assert int(fresh.optimizer.iterations) == 2 * STEPS
    with pytest.raises(FileNotFoundError, match="weights only"):
        rtk.load_model(path)
    with pytest.raises(ConfigError, match="needs a built model"):
        rtk.restore(Subclassed(8), path)


@pytest.mark.parametrize("resource_attr, why", [
    (None, "so the scheduler's resource is not the epoch"),
    ("epoch", "so its 'epoch' repeats epochs it reported before its restart"),
])
def test_forgetting_initial_epoch_is_pointed_out(trial, caplog, resource_attr, why):
    trial(iteration=3, spec=Spec(resource_attr=resource_attr))  # resumed; its function did not pass initial_epoch
    with caplog.at_level(logging.WARNING, logger="raytuner"):
        drive(rtk.ReportCallback(checkpoint=False), make_model(), epochs=2)
    assert caplog.text.count("initial_epoch=rt.keras.restore(model)") == 1
    assert "Keras epoch 1 is report 4 of the trial, " + why in caplog.text


def test_outside_a_trial_it_trains_normally_and_says_so_once(monkeypatch):
    monkeypatch.setattr(rtk, "_warned_outside", False)
    with pytest.warns(RuntimeWarning, match="not running inside a raytuner trial") as record:
        history = fit(make_model(), rtk.ReportCallback(), epochs=2)
        assert drive(rtk.ReportCallback(), make_model(), epochs=3) == 3
    assert len([w for w in record if "raytuner trial" in str(w.message)]) == 1
    assert len(history.history["loss"]) == 2
    assert all(math.isfinite(v) for v in history.history["loss"])


def test_a_finished_trial_leaves_no_traced_graph_behind():
    """TensorFlow's gradient registry keeps every traced train step alive unless the worker
    holds its entries by their graphs (``_tf_gradients.install``, armed by every worker for
    when TensorFlow is imported); a reused worker then grows every trial."""
    import gc
    import weakref

    from raytuner._worker import tf_gradients as _tf_gradients
    from raytuner._worker.actor import _release_trial_state

    assert _tf_gradients.install()

    tf_graphs = pytest.importorskip("tensorflow.python.framework.func_graph")
    before = {id(g) for g in gc.get_objects() if isinstance(g, tf_graphs.FuncGraph)}  # other tests' models
    fit(make_model(), keras.callbacks.Callback(), epochs=1)
    graphs = [weakref.ref(g) for g in gc.get_objects() if isinstance(g, tf_graphs.FuncGraph) and id(g) not in before]
    assert graphs, "the fit traced no graph: nothing to check"
    _release_trial_state()
    assert [g for g in graphs if g() is not None] == []


def test_checkpoints_after_the_first_reuse_keras_saving_skipsets(tmp_path):
    """Keras caches the attribute skip-sets of its saver under one name and looks them up
    under another; save_checkpoint makes the lookup hit, and what it saves is unchanged."""
    from keras.src.backend.common import global_state

    from raytuner.keras import save_checkpoint

    model = make_model()
    fit(model, keras.callbacks.Callback(), epochs=1)  # builds the optimizer's variables
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_checkpoint(model, tmp_path / "a", epoch=1)
    cached = {n for n in vars(global_state.GLOBAL_STATE_TRACKER) if n.startswith("saving_attr_skiplist_")}
    assert {"saving_attr_skiplist_Sequential", "saving_attr_skiplist_Layer"} <= cached
    save_checkpoint(model, tmp_path / "b", epoch=1)
    reloaded = keras.saving.load_model(tmp_path / "b" / "model.keras")
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(model.weights, reloaded.weights))
    assert len(reloaded.optimizer.variables) == len(model.optimizer.variables)


def _checkpoint_with_learning_rate(trial, tmp_path, config, lr):
    """A checkpoint of a trial run with ``config`` whose optimizer's learning rate was then
    set to ``lr`` (as a ReduceLROnPlateau would)."""
    trial(spec=Spec(config=config))
    model = make_model()
    fit(model, rtk.ReportCallback(), epochs=1)
    model.optimizer.learning_rate.assign(lr)
    (tmp_path / "ck").mkdir()
    rtk.save_checkpoint(model, tmp_path / "ck", 1, config)
    return tmp_path / "ck"


def test_after_an_exploit_restore_keeps_the_learning_rate_the_new_config_compiled(trial, tmp_path):
    checkpoint = _checkpoint_with_learning_rate(trial, tmp_path, {"lr": 0.02}, 0.001)
    assert json.loads((checkpoint / "keras_state.json").read_text())["config"] == {"lr": 0.02}
    trial(spec=Spec(config={"lr": 0.005}), checkpoint_dir=checkpoint)  # the clone, with its new config
    clone = make_model(seed=1)
    clone.optimizer.learning_rate.assign(0.005)  # compiled from the new config
    assert rtk.restore(clone) == 1
    assert float(clone.optimizer.learning_rate) == pytest.approx(0.005)
    assert int(clone.optimizer.iterations) == STEPS  # the rest of the donor's optimizer state


def test_a_resume_under_the_same_config_restores_the_checkpoints_learning_rate(trial, tmp_path):
    checkpoint = _checkpoint_with_learning_rate(trial, tmp_path, {"lr": 0.02}, 0.001)
    trial(spec=Spec(config={"lr": 0.02}), checkpoint_dir=checkpoint)
    same = make_model(seed=1)
    rtk.restore(same)
    assert float(same.optimizer.learning_rate) == pytest.approx(0.001)


def test_scalar_tensors_are_reported_as_numbers():
    """What a Keras user reports by hand (a TensorFlow scalar has no .item()), as numpy
    0-d values always were; a tensor of several values is still refused, naming it."""
    import tensorflow as tf

    clean = _session.clean_metrics({"tf": tf.constant(0.5), "keras": keras.ops.convert_to_tensor(2),
                                    "np": np.float32(0.25)}, "00000")
    assert clean == {"tf": 0.5, "keras": 2, "np": 0.25}
    with pytest.raises(ReportError, match=r"metric 'v' of trial 00000 is EagerTensor"):
        _session.clean_metrics({"v": tf.constant([0.5, 0.5])}, "00000")


def test_a_keras_log_of_several_values_is_left_out_of_the_default_report_with_one_warning(trial, caplog):
    """keras.metrics.F1Score() logs one value per class: the default report leaves it out
    (it ended the experiment with a ReportError about raytuner.report()); as the Tuner's
    metric it is an error that names the callback's fixes."""
    run = trial()
    per_class = {"loss": 1.0, "val_loss": 0.5, "f1_score": np.array([0.5, 0.7])}
    with caplog.at_level("WARNING", logger="raytuner"):
        drive(rtk.ReportCallback(), make_model(), epochs=3, logs=per_class)
    assert [sorted(r) for r in run.reports] == [["epoch", "loss", "val_loss"]] * 3
    assert len([m for m in caplog.messages if "leaves out the Keras logs ['f1_score']" in m]) == 1
    trial(spec=Spec(metric="f1_score"))
    with pytest.raises(ReportError, match=r"the Tuner's metric 'f1_score' is a Keras log of 2 values.*average='macro'"):
        drive(rtk.ReportCallback(), make_model(), epochs=1, logs=per_class)
