"""What a trainable sees while it runs: report, get_checkpoint and get_context.

The worker installs one :class:`Session` for the trial it runs (its
:class:`~raytuner._worker.actor.TrialRun`); these functions find it through a module global
(a worker runs one trial at a time). Integrations that end training their own way (the
Keras callback) take the session itself, :func:`current`, and use its small API.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from raytuner._formats import other_name, reserved_column
from raytuner._worker.protocol import Signal, TrialSpec
from raytuner.errors import NotInTrialError, ReportError, TrialStopped


@dataclass(frozen=True)
class TrialContext:
    """Facts about the running trial, from :func:`get_context`.

    Attributes:
        trial_id: The trial's id within its experiment ("00007").
        experiment_name: The experiment's name (its folder under the storage root).
        trial_dir: A directory for the trial's own files. On the driver's node this is
            the trial's folder in the experiment storage; elsewhere a local scratch folder.
        config: The trial's configuration.
        resources: What the trial's worker was given (``{"cpu": 1, "gpu": 0.25}``).
        iteration: Reports made so far, counting those before a pause or a retry.
    """

    trial_id: str
    experiment_name: str
    trial_dir: Path
    config: Mapping[str, Any]
    resources: Mapping[str, float] = field(default_factory=dict)
    iteration: int = 0


class Session:
    """The running trial, as the code inside it sees it.

    Attributes:
        spec: The trial as the driver sent it (its id, config, the Tuner's metric, ...).
        iteration: Reports made so far, counting those before a pause or a retry.
        checkpoint_dir: The checkpoint to resume from, or None.
    """

    spec: TrialSpec
    iteration: int
    checkpoint_dir: Path | None

    @property
    def trial_id(self) -> str:
        return self.spec.trial_id

    @property
    def metric(self) -> str | list[str] | None:
        """The metric the Tuner optimises (a list with several objectives), which every
        report must hold; None if it has none."""
        return self.spec.metric

    @property
    def objectives(self) -> tuple[str, ...]:
        """The Tuner's metrics, one or several; empty if it has none."""
        metric = self.spec.metric
        return () if metric is None else (metric,) if isinstance(metric, str) else tuple(metric)

    @property
    def resource_attr(self) -> str | None:
        """The report key the scheduler reads the resource from; None: it counts reports."""
        return self.spec.resource_attr

    def check_metric(self, metrics: Mapping[str, Any], advice: str | None = None) -> None:
        """Raise :class:`ReportError` if ``metrics`` lacks the Tuner's metric (any of them,
        with several objectives); ``advice`` replaces the generic fix in the message (an
        integration knows where it comes from)."""
        missing = [metric for metric in self.objectives if metric not in metrics]
        if not missing:
            return
        if len(self.objectives) == 1:
            metric = missing[0]
            msg = (
                f"The Tuner expects metric {metric!r} in each report; trial {self.trial_id} reported "
                f"{sorted(metrics)}. {advice or f'Pass `metric=` to the Tuner or report {metric!r}.'}"
            )
        else:
            msg = (
                f"The Tuner has {len(self.objectives)} objectives, metric={list(self.objectives)!r}, and each report "
                f"must hold every one; trial {self.trial_id} reported {sorted(metrics)}, without "
                f"{', '.join(map(repr, missing))}. {advice or 'Report every objective each time (a constant too, such as a parameter count).'}"
            )
        raise ReportError(msg)

    def report(self, metrics: Mapping[str, Any], checkpoint: str | os.PathLike[str] | None = None, *,
               last_checkpoint: Callable[[], str | os.PathLike[str]] | None = None) -> Signal:
        """Record one result and return the scheduler's decision: CONTINUE, or how the trial
        ends (STOP, PAUSE, COMPLETED), which the caller must then end it by. Raises
        :class:`TrialStopped` if a decision already ended the trial.

        ``last_checkpoint``: with no ``checkpoint``, called for one (a folder from
        :meth:`new_checkpoint_dir`) when this report turns out to be the trial's last: the
        Tuner's ``stop=`` reached, or a stop sent while the trial trained. An integration that
        checkpoints only some reports (the Keras callback) keeps the trial's final state so."""
        raise NotImplementedError

    def new_checkpoint_dir(self) -> Path:
        """A fresh, empty folder for the checkpoint of the next report, which that report
        takes as it is (a rename where it can, instead of a copy): write the checkpoint
        there, pass it to :meth:`report`, and do not touch it afterwards. One left
        unreported is removed when the trial ends."""
        raise NotImplementedError

    def decision_due(self, metrics: Mapping[str, Any]) -> bool:
        """Whether reporting ``metrics`` now would wait for a scheduler decision.

        Only such a report can be answered with PAUSE, so an integration that checkpoints
        only for pausing (the Keras callback's ``checkpoint="pause"``) checkpoints these.
        """
        raise NotImplementedError

    def context(self) -> TrialContext:
        raise NotImplementedError


_current: Session | None = None


def _install(session: Session | None) -> None:
    global _current
    _current = session


def current() -> Session | None:
    """The running trial's session, or None outside a trial."""
    return _current


def _require(func: str) -> Session:
    if _current is None:
        msg = (
            f"raytuner.{func}() was called outside a trial. Call it from the function you "
            "pass to raytuner.Tuner (it runs inside a trial worker), not from the driver script."
        )
        raise NotInTrialError(msg)
    return _current


def in_trial() -> bool:
    """Whether the calling code runs inside a raytuner trial."""
    return _current is not None


def report(metrics: Mapping[str, Any], checkpoint: str | os.PathLike[str] | None = None) -> None:
    """Record one result of the running trial, and apply the scheduler's decision.

    Args:
        metrics: Names to numbers (Python or numpy numbers; NaN and inf are recorded but
            never chosen as best). Must hold the Tuner's ``metric``.
        checkpoint: A directory to keep as the trial's checkpoint at this report. It is
            copied before ``report`` returns, so the directory may be reused or removed
            afterwards (raytuner never removes it: a ``tempfile.TemporaryDirectory()``
            does); the copy goes into the experiment's storage beside training, before
            the report reaches the driver.

    Raises:
        TrialStopped: The scheduler stopped or paused the trial; let it propagate.
        NotInTrialError: Called outside a trial.
        ReportError: ``metrics`` is not a mapping of names to numbers, lacks the metric, or
            names a column raytuner writes or shows itself (``iteration``, ``config/x``, ...).
    """
    decision = _require("report").report(metrics, checkpoint)
    if decision is not Signal.CONTINUE:
        raise TrialStopped(decision)


def get_checkpoint() -> Path | None:
    """The checkpoint directory to resume from (after a pause or a retry), or None."""
    return _require("get_checkpoint").checkpoint_dir


def get_context() -> TrialContext:
    """The running trial's :class:`TrialContext`."""
    return _require("get_context").context()


def clean_metrics(metrics: Any, trial_id: str, metric: str | list[str] | None = None) -> dict[str, float | int]:
    """Check that ``metrics`` maps names to numbers, none of them a column raytuner writes
    or shows itself (``metric``: the Tuner's); return it with plain Python numbers."""
    if not isinstance(metrics, Mapping):
        msg = (
            f"raytuner.report() expects a mapping of metric names to numbers; trial {trial_id} "
            f"passed {type(metrics).__name__} {metrics!r:.80}. Report a dict such as "
            "{'val_loss': 0.31}."
        )
        raise ReportError(msg)
    clean: dict[str, float | int] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            msg = f"raytuner.report(): metric names must be str; trial {trial_id} reported key {key!r}."
            raise ReportError(msg)
        reserved = reserved_column(key, metric)
        if reserved is not None:
            msg = (f"raytuner.report(): trial {trial_id} reported a metric named {key!r}, which is {reserved}, "
                   f"so its value would be lost there. Report it under another name, e.g. {other_name(key)!r}.")
            raise ReportError(msg)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            if getattr(value, "ndim", 1) == 0:  # a 0-d array, or a scalar tensor (TensorFlow's has no item())
                value = value.item() if hasattr(value, "item") else value.numpy().item() if hasattr(
                    value, "numpy") else value
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                msg = (
                    f"raytuner.report(): metric {key!r} of trial {trial_id} is "
                    f"{type(value).__name__} {value!r:.80}, not a number. Report numbers only "
                    "(convert tensors with float(x)); keep other data in the trial directory."
                )
                raise ReportError(msg)
        try:
            number = float(value)  # every view compares values as floats
        except OverflowError:
            raise ReportError(f"raytuner.report(): metric {key!r} of trial {trial_id} is an int of "
                              f"{len(str(abs(int(value))))} digits, beyond any float (about 1.8e308). Report a "
                              "float (float('inf') if it stands for infinity) or a smaller number.") from None
        clean[key] = int(value) if isinstance(value, numbers.Integral) else number
    return clean
