"""Per-trial stopping criteria (the Tuner's ``stop=``), evaluated on the worker.

Evaluating them where the report is made ends a trial without a round trip to the driver,
so a criterion such as ``{"iteration": 20}`` never lets a 21st epoch start.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from raytuner.errors import ConfigError

StopFn = Callable[[str, Mapping[str, Any]], bool]


class StopCriteria:
    """``stop=`` as given to the Tuner: a mapping of thresholds, or a function.

    A mapping ends the trial as soon as any entry is reached: the Tuner's metric when it
    is at least as good as the threshold in the Tuner's ``mode`` (``<=`` for "min",
    ``>=`` for "max"); any other key (``iteration``, ``time_total_s``, a reported
    metric) when it is ``>=`` the threshold, as in Ray Tune. A function is called as
    ``stop(trial_id, result)`` and ends the trial when it returns True.
    """

    def __init__(self, stop: Mapping[str, float] | StopFn | None, metric: str | None, mode: str):
        if stop is not None and not callable(stop):
            if not isinstance(stop, Mapping):
                msg = (
                    f"`stop` must be a dict of thresholds or a function (trial_id, result) -> bool; "
                    f"got {type(stop).__name__} {stop!r:.80}. Example: stop={{'iteration': 20}}."
                )
                raise ConfigError(msg)
            for key, value in stop.items():
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
        for key, threshold in self._stop.items():
            value = result.get(key)
            if value is None:
                continue
            if key == self._metric and self._mode == "min":
                if value <= threshold:
                    return True
            elif value >= threshold:
                return True
        return False
