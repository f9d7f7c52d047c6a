"""What an experiment.json, a trial.json and a config.json must hold to be shown as they are.

One check for every reader (``rt.load``, the CLI, the report, the dashboard) and for resume:
a file that is not valid JSON, or has a field of the wrong type (``"status": 5``,
``"start_time": "yesterday"``), marks its experiment or trial DAMAGED, with the file and the
fault; the rest of the experiment, and every other experiment, stays readable. Readers show
DAMAGED; the lifecycle never sets it, and resume refuses an experiment with a damaged file.

Pure functions on parsed values (no I/O but :func:`read_record`): the dashboard reads files
its own confined way and checks them here too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from raytuner._best import SCOPES
from raytuner._formats import checkpoint_iteration
from raytuner._storage.history import Damage
from raytuner._trial import TrialStatus

#: The statuses a trial.json may hold (DAMAGED is a reader's verdict, never written).
TRIAL_STATUSES = tuple(s.value for s in TrialStatus if s is not TrialStatus.DAMAGED)

_NONE = type(None)
_NUMBER = (int, float)
#: Checked when present (older records lack some).
_TRIAL_FIELDS: dict[str, tuple[type, ...]] = {
    "trial_id": (str,), "iteration": (int,), "resource": _NUMBER + (_NONE,), "metrics": (dict,),
    "last_value": _NUMBER + (list, _NONE), "best_value": _NUMBER + (_NONE,),
    "best_iteration": (int, _NONE), "time_total_s": _NUMBER, "start_time": _NUMBER + (_NONE,),
    "end_time": _NUMBER + (_NONE,), "checkpoint": (str, _NONE), "checkpoint_iteration": (int,),
    "checkpoint_time_s": _NUMBER, "num_failures": (int,), "note": (str, _NONE), "attempt": (int,),
    "fed_resource": _NUMBER + (_NONE,),
}
_EXPERIMENT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "status": (str,), "metric": (str, list, _NONE), "mode": (str, list),
    "searcher": (str, _NONE), "scheduler": (str, _NONE), "created": (str, _NONE),
    "start_time": _NUMBER + (_NONE,), "end_time": _NUMBER + (_NONE,),
    "max_concurrent": _NUMBER + (_NONE,), "num_trials": _NUMBER + (_NONE,),
    "time_budget_s": _NUMBER + (_NONE,), "max_resource": _NUMBER + (_NONE,), "best_scope": (str,),
    "resources": (dict, _NONE), "space": (dict, _NONE), "max_failures": (int, _NONE),
    "run_time_s": _NUMBER + (_NONE,), "run_time_at": _NUMBER + (_NONE,),
}


def _type_fault(name: str, value: Any, types: tuple[type, ...]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, types):
        expected = " or ".join("null" if t is _NONE else t.__name__ for t in types)
        text = json.dumps(value, default=repr)
        return f"field {name!r} is a {type(value).__name__}, not a {expected}: {text[:40]}{'...' * (len(text) > 40)}"
    if _beyond_float(value):
        return f"field {name!r} is an int of {len(str(abs(value)))} digits, beyond any float"
    return None


def _beyond_float(value: Any) -> bool:
    """An int that no float holds (readers compare numbers as floats): raytuner never writes one."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_MAX


_FLOAT_MAX = int(sys.float_info.max)


def _wrong_type(record: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> str | None:
    for name, types in fields.items():
        if name in record:
            fault = _type_fault(name, record[name], types)
            if fault:
                return fault
    return None


def trial_fault(record: Any, trial_id: str) -> str | None:
    """Why a trial.json cannot be shown as it is, or None."""
    if not isinstance(record, dict):
        return f"it holds a {type(record).__name__}, not an object"
    if record.get("status") not in TRIAL_STATUSES:
        return f"field 'status' is {str(record.get('status'))[:40]!r}, not one of {', '.join(TRIAL_STATUSES)}"
    if record.get("trial_id", trial_id) != trial_id:
        return f"field 'trial_id' is {str(record['trial_id'])[:40]!r}, not its folder's name {trial_id!r}"
    fault = _wrong_type(record, _TRIAL_FIELDS)
    last = record.get("last_value")
    if fault is None and isinstance(last, list) and not all(v is None or _type_fault("", v, _NUMBER) is None for v in last):
        fault = f"field 'last_value' is {json.dumps(last, default=repr)[:40]}, not a list of numbers (one per objective)"
    metrics = record.get("metrics")
    huge = [name for name, value in metrics.items() if _beyond_float(value)] if isinstance(metrics, dict) else []
    if fault is None and huge:
        fault = f"field 'metrics' holds {str(huge[0])[:40]!r}, an int beyond any float"
    checkpoint = record.get("checkpoint")
    if fault is None and checkpoint is not None and checkpoint_iteration(checkpoint) is None:
        fault = f"field 'checkpoint' is {checkpoint[:40]!r}, not a checkpoint folder's name (checkpoint_<n>)"
    return fault


def config_fault(config: Any) -> str | None:
    return None if isinstance(config, dict) else f"it holds a {type(config).__name__}, not an object"


def experiment_fault(meta: Any) -> str | None:
    """Why an experiment.json cannot be shown as it is, or None."""
    if not isinstance(meta, dict):
        return f"it holds a {type(meta).__name__}, not an object"
    if "name" not in meta:
        return "it has no 'name': it does not describe a raytuner experiment"
    fault = _wrong_type(meta, _EXPERIMENT_FIELDS)
    modes = meta.get("mode") if isinstance(meta.get("mode"), list) else [meta.get("mode", "min")]
    if fault is None and (not modes or any(mode not in ("min", "max") for mode in modes)):
        shown = repr(meta["mode"]) if isinstance(meta["mode"], str) else json.dumps(meta["mode"])
        fault = f"field 'mode' is {shown[:40]}, not 'min' or 'max' (or a list of them)"
    metric = meta.get("metric")
    # Several objectives are two or more distinct names (the Tuner keeps one as a string),
    # with one mode for all or one each; a list of modes goes with a list of metrics only.
    several = isinstance(metric, list) and len(metric) >= 2 and all(isinstance(m, str) and m for m in metric) \
        and len(set(metric)) == len(metric)
    if fault is None and isinstance(metric, list) and not several:
        fault = f"field 'metric' is {json.dumps(metric)[:40]}, not a name (or a list of two or more distinct names)"
    if fault is None and isinstance(meta.get("mode"), list) and not (several and len(modes) == len(metric)):
        fault = f"field 'mode' is {json.dumps(modes)[:40]}, not one 'min' or 'max' per metric"
    if fault is None and "best_scope" in meta and meta["best_scope"] not in SCOPES:
        fault = f"field 'best_scope' is {meta['best_scope'][:40]!r}, not 'last' or 'all'"
    return fault


def usable_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The fields of a damaged experiment.json that are still of the right type: what a
    reader can still go by (the metric, say) while it shows the experiment DAMAGED."""
    def usable(key: str, value: Any) -> bool:
        # A list of modes is read with the metrics it goes with.
        probe = {"name": "", key: value, **({"metric": meta["metric"]} if key == "mode" and "metric" in meta else {})}
        return key not in _EXPERIMENT_FIELDS or experiment_fault(probe) is None

    return {key: value for key, value in meta.items() if usable(key, value)}


def read_record(path: Path, fault: Callable[[Any], str | None]) -> tuple[Any, Damage | None]:
    """The JSON in ``path`` and, if it is damaged (not JSON, or ``fault`` finds one), where
    and what. A missing file reads as (None, None)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        return None, Damage(path, None, f"not valid JSON ({why})")
    found = fault(value)
    return value, (Damage(path, None, found) if found else None)
