"""An experiment's objectives: the Tuner's ``metric`` and ``mode``, one metric or several.

The Tuner takes ``metric="val_loss", mode="min"`` (one objective) or ``metric=["val_loss",
"params"], mode=["min", "min"]`` (k >= 2; a single mode string applies to every metric).
Settings and experiment.json keep them as given, normalised: a string for one objective,
lists for several. :class:`Objectives` is how every reader (the lifecycle, resume, Results,
the CLI, the report, the dashboard, the loggers) sees them, so that none re-implements the
signing: a value is signed to minimise, a float with one objective and a tuple of k floats
(in metric order, each signed by its own mode) with several, as searchers and schedulers
expect (``search/_base.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from raytuner._formats import other_name, reserved_column
from raytuner.errors import invalid

MODES = ("min", "max")


@dataclass(frozen=True)
class Objectives:
    """The metrics an experiment optimises, each with its mode; empty when it has none."""

    metrics: tuple[str, ...]
    modes: tuple[str, ...]

    @classmethod
    def of(cls, metric: Any, mode: Any = "min") -> Objectives:
        """From settings or experiment.json, as :func:`normalize` left them. A reader must
        not fail on an old or odd record: a mode it cannot read counts as "min"."""
        if metric is None:
            return cls((), ())
        metrics = (metric,) if isinstance(metric, str) else tuple(str(m) for m in metric)
        modes = (mode,) * len(metrics) if isinstance(mode, str) or mode is None else tuple(mode)
        if len(modes) != len(metrics):
            modes = (modes[0] if modes else "min",) * len(metrics)
        return cls(metrics, tuple(m if m in MODES else "min" for m in modes))

    @property
    def k(self) -> int:
        return len(self.metrics)

    @property
    def multi(self) -> bool:
        """Whether there are several objectives (values are tuples)."""
        return self.k >= 2

    @property
    def signs(self) -> tuple[float, ...]:
        return tuple(1.0 if mode == "min" else -1.0 for mode in self.modes)

    def mode_of(self, metric: str) -> str | None:
        """The mode of one of the objectives, or None if ``metric`` is not one."""
        return self.modes[self.metrics.index(metric)] if metric in self.metrics else None

    def signed(self, metrics: Mapping[str, Any]) -> float | tuple[float, ...] | None:
        """The report's value as searchers and schedulers see it: signed to minimise, a
        float with one objective, a tuple of k floats with several (NaN left as NaN); None
        when a metric is missing or not a number (or there is no metric)."""
        if not self.metrics:
            return None
        values = []
        for metric, sign in zip(self.metrics, self.signs):
            raw = metrics.get(metric)
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                return None
            values.append(sign * raw)
        return tuple(values) if self.multi else values[0]

    def unsigned(self, value: Sequence[float]) -> tuple[float, ...]:
        """Signed values back in the metrics' own units, in metric order."""
        return tuple(sign * v for sign, v in zip(self.signs, value))

    def describe(self) -> str:
        """``val_loss (min), params (min)``."""
        return ", ".join(f"{m} ({mode})" for m, mode in zip(self.metrics, self.modes))


def normalize(metric: Any, mode: Any) -> tuple[str | list[str] | None, str | list[str]]:
    """The Tuner's ``metric`` and ``mode``, checked and normalised: a string each for one
    objective (a list of one metric counts as one), lists for several.

    Raises:
        ConfigError: naming the argument, the value and the fix, for a mode that is not
            "min"/"max", a metric that is not a name, an empty or duplicated list of
            metrics, or metric and mode lists of different lengths.
    """
    if metric is None or isinstance(metric, str):
        _check_name(metric, metric)
        if isinstance(mode, (list, tuple)):
            if metric is not None and len(mode) == 1 and mode[0] in MODES:
                return metric, mode[0]
            raise invalid("Tuner", "mode", mode, "'min' or 'max' with one metric",
                          f"Pass mode='min' or 'max' for metric={metric!r}, or a list of metrics with one mode each "
                          "(metric=['val_loss', 'params'], mode=['min', 'min']).")
        _check_mode(mode, "mode")
        return metric, mode
    if not isinstance(metric, (list, tuple)):
        raise invalid("Tuner", "metric", metric, "the name of a reported metric, or a list of names",
                      "Pass e.g. metric='val_loss', or metric=['val_loss', 'params'] for several objectives.")
    metrics = list(metric)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise invalid("Tuner", "metric", metric, "a non-empty list of metric names",
                      "Pass e.g. metric=['val_loss', 'params'].")
    for name in metrics:
        _check_name(name, metric)
    repeated = sorted({m for m in metrics if metrics.count(m) > 1})
    if repeated:
        raise invalid("Tuner", "metric", metric, "a list of distinct metric names",
                      f"{', '.join(map(repr, repeated))} is given more than once: list each objective once.")
    if isinstance(mode, str):
        _check_mode(mode, "mode")
        modes = [mode] * len(metrics)
    elif isinstance(mode, (list, tuple)):
        modes = list(mode)
        if len(modes) != len(metrics):
            raise invalid("Tuner", "mode", mode, f"one mode per metric ({len(metrics)}: {metrics})",
                          f"Pass a list of {len(metrics)} modes, e.g. mode={['min'] * len(metrics)!r}, or one "
                          "mode string for all of them.")
        for m in modes:
            _check_mode(m, "mode", value=mode)
    else:
        raise invalid("Tuner", "mode", mode, "'min', 'max' or a list of them, one per metric",
                      f"Pass e.g. mode={['min'] * len(metrics)!r}.")
    if len(metrics) == 1:
        return metrics[0], modes[0]
    return metrics, modes


def _check_name(name: str | None, metric: Any) -> None:
    """Refuse an empty metric name, or one that raytuner uses for a column of its own (no
    report may hold it: :func:`raytuner._formats.reserved_column`)."""
    if name is None:
        return
    if not name:
        raise invalid("Tuner", "metric", metric, "the name of a reported metric",
                      "Pass the name your trainable reports, e.g. metric='val_loss' for "
                      "rt.report({'val_loss': ...}); leave metric out to tune nothing in particular.")
    reserved = reserved_column(name)
    if reserved is not None:
        raise invalid("Tuner", "metric", metric, "the name of a metric a report may hold",
                      f"{name!r} is {reserved}, so no report may use it: report the value under another "
                      f"name, e.g. {other_name(name)!r}, and pass that.")


def _check_mode(mode: Any, argument: str, value: Any = None) -> None:
    if mode not in MODES:
        raise invalid("Tuner", argument, mode if value is None else value, "'min' or 'max'" if value is None
                      else "a list of 'min' and 'max'",
                      "Pass mode='min' to minimise the metric, 'max' to maximise it.")


def is_finite_value(value: Any) -> bool:
    """Whether a signed value (a float or a tuple of them) is there and finite."""
    if value is None:
        return False
    if isinstance(value, (tuple, list)):
        return all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    return isinstance(value, (int, float)) and math.isfinite(value)


def as_value(stored: Any) -> float | tuple[float, ...] | None:
    """A signed value as trial.json keeps it (JSON has no tuples) back as searchers see it."""
    if isinstance(stored, list):
        return tuple(float("nan") if v is None else v for v in stored)
    return stored

