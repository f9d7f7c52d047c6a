"""Per-trial stopping criteria (the Tuner's ``stop=``), evaluated on the worker.

Evaluating them where the report is made ends a trial without a round trip to the driver,
so a criterion such as ``{"iteration": 20}`` never lets a 21st epoch start.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, Collection, Mapping, Sequence

from raytuner._formats import reserved_column
from raytuner._objectives import Objectives
from raytuner.errors import ConfigError, ReportError, invalid

StopFn = Callable[[str, Mapping[str, Any]], bool]

#: The keys raytuner adds to every result that ``stop=`` sees, beside the reported metrics.
PROVIDED = ("iteration", "time_total_s")


class _Seen:
    """A callable's name and signature in an error message (``invalid`` uses its repr)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def check_call(owner: str, argument: str, fn: Callable[..., Any], args: tuple[Any, ...], expected: str,
               fix: str) -> None:
    """Refuse ``fn`` if its signature cannot take ``args`` (as raytuner will call it), with a
    ConfigError naming ``argument``, the signature seen and the ``expected`` call, before
    anything runs: otherwise every trial would start and fail the same way.

    The signature is the one called (a decorator's wrapper, not the function it wraps;
    ``functools.partial`` and a class's ``__init__`` are read as Python binds them); one
    that cannot be read (a builtin, a C extension's callable) is not checked.
    """
    try:
        signature = inspect.signature(fn, follow_wrapped=False)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args)
    except TypeError as exc:
        name = getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", "the callable")
        raise invalid(owner, argument, _Seen(f"{name}{signature}"), f"callable as {expected} ({exc})", fix) from None


class StopCriteria:
    """``stop=`` as given to the Tuner: a mapping of thresholds, or a function.

    A mapping ends the trial as soon as any entry is reached: the Tuner's metric when it
    is at least as good as the threshold in the Tuner's ``mode`` (``<=`` for "min",
    ``>=`` for "max"); any other key (``iteration``, ``time_total_s``, a reported
    metric) when it is ``>=`` the threshold, as in Ray Tune. A function is called as
    ``stop(trial_id, result)`` and ends the trial when it returns True.

    A report without a key is not checked against that key's threshold, so a metric may be
    reported only now and then (a validation every few epochs). A key that no report of a
    trial holds is most likely a typo: a trial that ends on its own (not by a decision)
    without ever reporting it fails with a :class:`ReportError` naming the key and the
    keys it did report, which ends the experiment (what was computed is kept). Ray Tune
    only logs a warning then, and the trials run to their end.

    With several objectives each entry still names one key: an objective's threshold is
    read in that objective's own mode and ends the trial when that one objective reaches
    it, whatever the others (``stop={"val_loss": 0.05}``). One entry for several metrics
    (a tuple key, or a list of thresholds) is refused: it could mean "all reached" or "any
    reached". To stop when all are reached, pass a function:
    ``stop=lambda trial_id, r: r["val_loss"] <= 0.05 and r["params"] <= 1e5``.
    """

    def __init__(self, stop: Mapping[str, float] | StopFn | None, metric: str | Sequence[str] | None,
                 mode: str | Sequence[str]):
        if callable(stop):
            check_call("Tuner", "stop", stop, ("00000", {}), "stop(trial_id, result)",
                       "raytuner calls it with the trial's id and its latest result (a dict) and stops the trial "
                       "when it returns True: pass e.g. stop=lambda trial_id, result: result['loss'] < 0.01, "
                       "or a dict of thresholds such as stop={'iteration': 20}.")
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
                _check_entry(key, value, metric)
        self._stop = stop
        self._metric = metric
        self._mode = mode

    def __bool__(self) -> bool:
        return self._stop is not None

    def check_reported(self, trial_id: str, reported: Collection[str]) -> None:
        """Raise :class:`ReportError` if a threshold's key is none of ``reported`` (every
        metric name a trial reported) nor one raytuner provides."""
        if self._stop is None or callable(self._stop):
            return
        missing = [key for key in self._stop if key not in reported and key not in PROVIDED]
        if missing:
            msg = (
                f"`stop` has a threshold for {', '.join(map(repr, missing))}, but trial {trial_id} ended without "
                f"reporting it, so nothing stopped the trial by it; its reports held {sorted(reported)} and "
                f"raytuner adds {list(PROVIDED)}. Fix the key in `stop=`, or report {missing[0]!r} "
                "(at least now and then: a report without it is not checked)."
            )
            raise ReportError(msg)

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


def _check_entry(key: Any, value: Any, metric: str | Sequence[str] | None) -> None:
    if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = (
            f"`stop` entries must map a result key to a number; got {key!r}: {value!r}. "
            "Example: stop={'iteration': 20, 'val_accuracy': 0.99}."
        )
        raise ConfigError(msg)
    if not math.isfinite(value):
        raise invalid("Tuner", f"stop[{key!r}]", float(value), "a finite number",
                      "A NaN or infinite threshold is never reached, so it would stop nothing: pass the value "
                      f"at which to stop, e.g. stop={{{key!r}: 0.05}}, or leave the entry out.")
    reserved = reserved_column(key, metric) if key not in PROVIDED else None
    if reserved is not None:
        raise invalid("Tuner", "stop", {key: value}, f"keyed by reported metrics, {PROVIDED[0]!r} or {PROVIDED[1]!r}",
                      f"{key!r} is {reserved}, which no report holds. To stop on the config, pass a function: "
                      "stop=lambda trial_id, result: ....")
