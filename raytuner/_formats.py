"""How an experiment's records are written, as pure functions: nested configs as flat keys,
JSON text that takes numpy scalars, finite numbers, checkpoint folder names.

Storage writes with them and every reader (the lifecycle, the CLI, the report, the loggers,
the dashboard) shares them without importing the storage.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import PurePath
from typing import Any, Mapping

#: Keys the controller adds to every row of results.jsonl, beside the reported metrics.
AUTO_KEYS = frozenset({"iteration", "resource", "time_total_s", "timestamp", "attempt", "checkpoint"})
#: Columns that ``Results.dataframe()`` and ``Results.history()`` add beside the metrics
#: (with ``best_<metric>`` and ``config/<name>``, see :func:`reserved_column`).
VIEW_KEYS = frozenset({"trial_id", "status", "damaged", "pareto_front", "cloned_from", "cloned_iteration"})
CONFIG_PREFIX = "config/"

_CHECKPOINT_PREFIX = "checkpoint_"
_CLONE_PREFIX = "clone_"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of ``a/b/c`` keys (for tables, loggers, DataFrames and the
    report); an empty dict stays a value."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def reserved_column(name: str, metric: Any = None) -> str | None:
    """What raytuner itself writes or shows under ``name`` beside the reported metrics, or
    None if a metric may be called so. A metric of such a name would be overwritten in one
    view and kept in another, so reports, the Tuner's ``metric`` and ``resource_attr``, and
    the Keras callback's names refuse it. ``metric`` is the Tuner's (one name: its
    ``best_<metric>`` column)."""
    if name in AUTO_KEYS:
        return "a column raytuner writes itself in every row of results.jsonl"
    if name == "_marker":
        return "the key that marks raytuner's own rows in results.jsonl"
    if name in VIEW_KEYS:
        return "a column that Results.dataframe() or Results.history() adds beside the metrics"
    if name.startswith(CONFIG_PREFIX):
        return f"how Results.dataframe() and history() show the config's {name[len(CONFIG_PREFIX):]!r}"
    if isinstance(metric, str) and name == f"best_{metric}":
        return f"the column in which Results.dataframe() shows each trial's best {metric!r}"
    return None


def other_name(name: str) -> str:
    """A name to report instead of a reserved one (``config/x``: ``config_x``)."""
    return name.replace("/", "_") if name.startswith(CONFIG_PREFIX) else name.lstrip("_") + "_"


def json_default(value: Any) -> Any:
    """What ``json`` cannot write by itself: numpy scalars, sets and tuples, paths, else a repr."""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, PurePath):  # a space may hold any path, Path or PurePosixPath
        return str(value)
    return repr(value)


def as_recorded(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as its trial's ``config.json`` holds it, which is what the trial gets, in
    every attempt and after any resume: tuples become lists, numpy scalars numbers, paths
    strings.

    Raises:
        TypeError: A value JSON cannot hold (a function, a set, an object), naming it:
            recorded as its repr, a resumed trial would get a string.
    """

    def strict(value: Any) -> Any:
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # numpy scalars
            return value.item()
        if isinstance(value, PurePath):
            return str(value)
        raise TypeError(f"{value!r:.80} ({type(value).__name__}) is no JSON value")

    return json.loads(json.dumps(config, default=strict, allow_nan=True))


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=json_default, allow_nan=True)


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_time(meta: Mapping[str, Any], *, live: bool = False, now: float | None = None) -> float | None:
    """How long an experiment has run, in seconds, over all its runs: the time between its
    runs (before a resume) does not count. experiment.json's ``run_time_s`` is the figure as
    its driver last wrote it (every few seconds while it runs, and at its end), at
    ``run_time_at``; ``live``: a driver runs it still, so the time since that write counts
    too. An experiment written before raytuner kept the figure: from its first start to its
    last end. None when neither is recorded.
    """
    now = time.time() if now is None else now
    ran, at = meta.get("run_time_s"), meta.get("run_time_at")
    if is_finite(ran):
        return max(0.0, float(ran)) + (max(0.0, now - float(at)) if live and is_finite(at) else 0.0)
    start, end = meta.get("start_time"), meta.get("end_time")
    if not is_finite(start):
        return None
    if live:
        return max(0.0, now - float(start))
    return max(0.0, float(end) - float(start)) if is_finite(end) else None


def checkpoint_name(iteration: int) -> str:
    """The folder, under its trial's, of the checkpoint made at report ``iteration``
    (zero-padded: the names sort by report)."""
    return f"{_CHECKPOINT_PREFIX}{iteration:06d}"


def clone_name(attempt: int, iteration: int) -> str:
    """Where a PBT exploit puts the copy of its donor's checkpoint made at report
    ``iteration``, under the clone's folder: ``clone_<attempt>/checkpoint_<iteration>``, for
    the attempt that starts from it. Apart from the trial's own checkpoint names, so that a
    copy never replaces a checkpoint the trial's own rows commit."""
    return f"{_CLONE_PREFIX}{attempt}/{checkpoint_name(iteration)}"


def is_clone_folder(name: str) -> bool:
    """Whether ``name`` is the folder, under its trial's, of a PBT exploit's copy
    (``clone_<attempt>``, see :func:`clone_name`)."""
    return name.startswith(_CLONE_PREFIX) and name[len(_CLONE_PREFIX):].isdigit()


def checkpoint_iteration(name: str) -> int | None:
    """The report a checkpoint folder (its own, or a clone's copy) was made at, or None if
    ``name`` is not one."""
    if name.startswith(_CLONE_PREFIX):
        attempt, _, name = name[len(_CLONE_PREFIX):].partition("/")
        if not attempt.isdigit():
            return None
    number = name[len(_CHECKPOINT_PREFIX):] if name.startswith(_CHECKPOINT_PREFIX) else ""
    return int(number) if number.isdigit() else None
