"""Per-trial stopping criteria (the Tuner's ``stop=``), evaluated on the worker.

Evaluating them where the report is made ends a trial without a round trip to the driver,
so a criterion such as ``{"iteration": 20}`` never lets a 21st epoch start.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from raytuner._objectives import Objectives
from raytuner.errors import ConfigError

StopFn = Callable[[str, Mapping[str, Any]], bool]


class StopCriteria:
    """``stop=`` as given to the Tuner: a mapping of thresholds, or a function.

    A mapping ends the trial as soon as any entry is reached: the Tuner's metric when it
    is at least as good as the threshold in the Tuner's ``mode`` (``<=`` for "min",
    ``>=`` for "max"); any other key (``iteration``, ``time_total_s``, a reported
    metric) when it is ``>=`` the threshold, as in Ray Tune. A function is called as
    ``stop(trial_id, result)`` and ends the trial when it returns True.

    With several objectives each entry still names one key: an objective's threshold is
    read in that objective's own mode and ends the trial when that one objective reaches
    it, whatever the others (``stop={"val_loss": 0.05}``). One entry for several metrics
    (a tuple key, or a list of thresholds) is refused: it could mean "all reached" or "any
    reached". To stop when all are reached, pass a function:
    ``stop=lambda trial_id, r: r["val_loss"] <= 0.05 and r["params"] <= 1e5``.
    """

    def __init__(self, stop: Mapping[str, float] | StopFn | None, metric: str | Sequence[str] | None,
                 mode: str | Sequence[str]):
        if stop is not None and not callable(stop):
            if not isinstance(stop, Mapping):
                msg = (
                    f"`stop` must be a dict of thresholds or a function (trial_id, result) -> bool; "
                    f"got {type(stop).__name__} {stop!r:.80}. Example: stop={{'iteration': 20}}."
                )
                raise ConfigError(msg)
            objectives = Objectives.of(metric, mode)
            for key, value in stop.items():
                if objectives.multi and (isinstance(key, tuple) or isinstance(value, (list, tuple))):
                    msg = (
                        f"`stop` entry {key!r}: {value!r} is ambiguous with several objectives "
                        f"(metric={list(objectives.metrics)!r}): it could mean all thresholds reached or any. "
                        f"Give one threshold per metric, each in its own mode, to stop when any is reached "
                        f"(stop={{{objectives.metrics[0]!r}: ..., {objectives.metrics[1]!r}: ...}}), or a function "
                        f"to stop when all are: stop=lambda trial_id, r: r[{objectives.metrics[0]!r}] <= ... and "
                        f"r[{objectives.metrics[1]!r}] <= ...."
                    )
                    raise ConfigError(msg)
                if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
                    msg = (
                        f"`stop` entries must map a result key to a number; got {key!r}: {value!r}. "
                        "Example: stop={'iteration': 20, 'val_accuracy': 0.99}."
                    )
                    raise ConfigError(msg)
        self._stop = stop
        self._metric = metric
        self._mode = mode

    def __bool__(self) -> bool:
        return self._stop is not None

    def reached(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        if self._stop is None:
            return False
        if callable(self._stop):
            return bool(self._stop(trial_id, result))
        objectives = Objectives.of(self._metric, self._mode)
        for key, threshold in self._stop.items():
            value = result.get(key)
            if value is None:
                continue
            if objectives.mode_of(key) == "min":
                if value <= threshold:
                    return True
            elif value >= threshold:
                return True
        return False
