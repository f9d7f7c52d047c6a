"""What an experiment.json and a trial.json must hold for the dashboard to show them.

A file that is not valid JSON, or has a field of the wrong type, marks its experiment or
trial DAMAGED (docs/architecture.md: "damaged files mark that experiment or trial DAMAGED in every
view; the rest stay readable"): it keeps its place in the list and the counts, with the
file and the fault, instead of failing the page or silently dropping out. The statuses
come from :class:`raytuner._trial.TrialStatus`.
"""

from __future__ import annotations

from typing import Any

from raytuner._trial import TrialStatus

DAMAGED = "DAMAGED"
INTERRUPTED = "INTERRUPTED"
TRIAL_STATUSES = tuple(s.value for s in TrialStatus)
FINISHED = tuple(s.value for s in TrialStatus if s.is_finished())
#: Finished for good: their files no longer change (a FAILED trial may be re-run).
SETTLED = tuple(s for s in FINISHED if s != TrialStatus.FAILED.value)
#: Trials a stop command applies to.
STOPPABLE = tuple(s.value for s in TrialStatus if not s.is_finished())

_NUMBER = (int, float)
_TRIAL_FIELDS: dict[str, tuple[type, ...]] = {  # when present (older records lack some)
    "trial_id": (str,), "iteration": (int,), "resource": _NUMBER + (type(None),), "metrics": (dict,),
    "last_value": _NUMBER + (list, type(None)), "best_value": _NUMBER + (type(None),),
    "best_iteration": (int, type(None)), "time_total_s": _NUMBER, "start_time": _NUMBER + (type(None),),
    "end_time": _NUMBER + (type(None),), "checkpoint": (str, type(None)), "checkpoint_iteration": (int,),
    "checkpoint_time_s": _NUMBER, "num_failures": (int,), "note": (str, type(None)),
}
_EXPERIMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "status": (str,), "metric": (str, list, type(None)), "mode": (str, list),
    "searcher": (str, type(None)), "scheduler": (str, type(None)),
    "start_time": _NUMBER + (type(None),), "end_time": _NUMBER + (type(None),),
    "max_concurrent": _NUMBER + (type(None),), "num_trials": _NUMBER + (type(None),),
    "time_budget_s": _NUMBER + (type(None),),
}


def _wrong_type(record: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> str | None:
    for name, types in fields.items():
        if name in record:
            value = record[name]
            if isinstance(value, bool) or not isinstance(value, types):
                expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                return f"field {name!r} is a {type(value).__name__}, not a {expected}"
    return None


def trial_fault(record: Any, trial_id: str) -> str | None:
    """Why a trial.json cannot be shown as it is, or None."""
    if not isinstance(record, dict):
        return f"it holds a {type(record).__name__}, not an object"
    if record.get("status") not in TRIAL_STATUSES:
        return f"field 'status' is {str(record.get('status'))[:40]!r}, not one of {', '.join(TRIAL_STATUSES)}"
    if record.get("trial_id", trial_id) != trial_id:
        return f"field 'trial_id' is {str(record['trial_id'])[:40]!r}, not its folder's name {trial_id!r}"
    return _wrong_type(record, _TRIAL_FIELDS)


def config_fault(config: Any) -> str | None:
    return None if isinstance(config, dict) else f"it holds a {type(config).__name__}, not an object"


def experiment_fault(meta: Any) -> str | None:
    """Why an experiment.json cannot be shown as it is, or None."""
    if not isinstance(meta, dict):
        return f"it holds a {type(meta).__name__}, not an object"
    if "name" not in meta:
        return "it has no 'name': it does not describe a raytuner experiment"
    fault = _wrong_type(meta, _EXPERIMENT_FIELDS)
    metric, mode = meta.get("metric"), meta.get("mode", "min")
    if fault is None and isinstance(metric, list):  # several objectives: names, and one mode each
        modes = mode if isinstance(mode, list) else [mode]
        if not metric or not all(isinstance(m, str) for m in metric):
            fault = f"field 'metric' is {str(metric)[:40]!r}, not a list of metric names"
        elif len(modes) != len(metric) or any(m not in ("min", "max") for m in modes):
            fault = f"field 'mode' is {str(mode)[:40]!r}, not one 'min' or 'max' per metric"
    elif fault is None and mode not in ("min", "max"):
        fault = f"field 'mode' is {str(mode)[:40]!r}, not 'min' or 'max'"
    return fault
