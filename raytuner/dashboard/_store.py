"""What the dashboard reads: experiments under ROOT, as cached views over their files.

Readers only (design.md, "Storage, control and logs"): the dashboard never writes an
experiment's files except through :class:`raytuner._storage.control.ControlStore`.

A view re-reads a trial's files only when their modification time changed, and looks at
the folder at most every :data:`REFRESH_S`: one ``scandir`` per look, and a ``stat`` only
for the trials not yet COMPLETED or STOPPED (their files no longer change), so thousands
of finished trials cost nothing per look. A running trial's ``trial.json`` is rewritten
only when its status changes, so its latest metrics come from the tail of its
``results.jsonl``.

Every name or id from a URL is checked here against the names that exist (:meth:`Root.
experiment`, :meth:`ExperimentView.trial_path`): none can reach outside ROOT.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytuner._report._data import schedule_from_meta
from raytuner._storage.control import control_store
from raytuner._storage.experiment import EXPERIMENT_FILE, ExperimentStorage, flatten, is_finite, read_json
from raytuner.errors import ExperimentError

REFRESH_S = 0.5
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")
FINISHED = ("COMPLETED", "STOPPED", "FAILED")
SETTLED = ("COMPLETED", "STOPPED")  # FAILED ones may be re-run by a control command


class NotFound(Exception):
    """No such experiment or trial under ROOT (the message says which)."""


@dataclass
class _TrialEntry:
    mtime: int
    record: dict[str, Any]
    config: dict[str, Any]
    flat: dict[str, Any]
    tail_mtime: int = -1
    last_row: dict[str, Any] | None = None


@dataclass
class _Cache:
    meta_mtime: int = -1
    meta: dict[str, Any] = field(default_factory=dict)
    trials: dict[str, _TrialEntry] = field(default_factory=dict)
    history_size: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    looked: float = 0.0
    signature: tuple = ()


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return -1


def _last_row(path: Path) -> dict[str, Any] | None:
    """The last whole row of a results.jsonl (read from the end)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 8192))
            lines = handle.read().split(b"\n")
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


class ExperimentView:
    """One experiment as the dashboard shows it; thread-safe (endpoints run in threads)."""

    def __init__(self, path: Path):
        self.storage = ExperimentStorage(path)
        self.name = path.name
        self._lock = threading.Lock()
        self._cache = _Cache()

    # -- reading ---------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> _Cache:
        with self._lock:
            cache = self._cache
            now = time.monotonic()
            if not force and now - cache.looked < REFRESH_S:
                return cache
            cache.looked = now
            mtime = _mtime(self.storage.path / EXPERIMENT_FILE)
            if mtime != cache.meta_mtime:
                try:
                    cache.meta = self.storage.read_experiment()
                except (ExperimentError, OSError):
                    pass  # mid-rename or damaged: keep what was read before
                cache.meta_mtime = mtime
            tails = []
            try:
                folders = list(os.scandir(self.storage.trials_path))
            except FileNotFoundError:
                folders = []
            for folder in folders:
                trial_id = folder.name
                if not _ID_RE.match(trial_id):
                    continue
                entry = cache.trials.get(trial_id)
                if entry is not None and entry.record.get("status") in SETTLED:
                    continue  # its files no longer change: no stat per look for thousands of trials
                record_path = Path(folder.path) / "trial.json"
                mtime = _mtime(record_path)
                if mtime < 0:
                    continue
                if entry is None or entry.mtime != mtime:
                    try:
                        record = read_json(record_path)
                        config = entry.config if entry else read_json(Path(folder.path) / "config.json")
                    except (ExperimentError, OSError):
                        continue  # caught mid-write by another process: next look
                    entry = cache.trials[trial_id] = _TrialEntry(mtime, record, config, flatten(config))
                if entry.record.get("status") not in FINISHED:
                    results = Path(folder.path) / "results.jsonl"
                    mtime = _mtime(results)
                    if mtime != entry.tail_mtime:
                        entry.tail_mtime, entry.last_row = mtime, _last_row(results)
                    tails.append(entry.tail_mtime)
            history = control_store(self.storage).history_path
            hsize = _mtime(history)
            if hsize != cache.history_size:
                cache.history_size = hsize
                try:
                    cache.history = control_store(self.storage).history()
                except ExperimentError:
                    pass
            cache.signature = (cache.meta_mtime, len(cache.trials), sum(e.mtime for e in cache.trials.values()),
                               sum(tails), cache.history_size)
            return cache

    def signature(self) -> tuple:
        return self.refresh().signature

    def trial_path(self, trial_id: str) -> Path:
        """The folder of a trial that exists; NotFound for any other id."""
        if not isinstance(trial_id, str) or not _ID_RE.match(trial_id):
            raise NotFound(f"No trial {trial_id!r} in experiment {self.name!r}.")
        path = self.storage.trial_path(trial_id)
        if not (path / "config.json").is_file():
            raise NotFound(f"No trial {trial_id!r} in experiment {self.name!r}.")
        return path

    # -- what the pages show ---------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        cache = self.refresh()
        meta = cache.meta
        metric, mode = meta.get("metric"), meta.get("mode", "min")
        sign = 1.0 if mode == "min" else -1.0
        counts: dict[str, int] = {}
        best = None
        for trial_id, entry in cache.trials.items():
            status = entry.record.get("status", "?")
            counts[status] = counts.get(status, 0) + 1
            for value in (self._value(entry, metric), _signed_best(entry.record, sign)):
                if is_finite(value) and (best is None or sign * value < sign * best[1]):
                    best = (trial_id, value)
        start, end = meta.get("start_time"), meta.get("end_time")
        status = meta.get("status", "?")
        elapsed = None
        if isinstance(start, (int, float)):
            elapsed = (end if status != "RUNNING" and isinstance(end, (int, float)) else time.time()) - start
        schedule = schedule_from_meta(meta)
        return {
            "name": self.name, "status": status, "metric": metric, "mode": mode,
            "counts": counts, "trials": len(cache.trials),
            "best": None if best is None else {"trial_id": best[0], "value": best[1]},
            "start_time": start, "end_time": end, "elapsed_s": elapsed,
            "max_concurrent": meta.get("max_concurrent"), "num_trials": meta.get("num_trials"),
            "time_budget_s": meta.get("time_budget_s"), "running": counts.get("RUNNING", 0),
            "searcher": meta.get("searcher"), "scheduler": meta.get("scheduler"),
            "rungs": schedule.rungs, "history": cache.history[-50:],
            "version": list(cache.signature),
        }

    @staticmethod
    def _value(entry: _TrialEntry, metric: str | None) -> Any:
        """The trial's latest value of the metric (from its last report while it runs)."""
        if metric is None:
            return None
        row = entry.last_row if entry.record.get("status") not in FINISHED and entry.last_row else None
        return (row or entry.record.get("metrics") or {}).get(metric)

    def table(self, *, offset: int = 0, limit: int = 50, sort: str = "trial_id", order: str = "asc",
              status: str | None = None) -> dict[str, Any]:
        """One page of the trial table, sorted and filtered on the server."""
        cache = self.refresh()
        metric = cache.meta.get("metric")
        rows = []
        params: dict[str, None] = {}
        for trial_id, entry in cache.trials.items():
            record = entry.record
            if status and record.get("status") != status:
                continue
            row = entry.last_row if record.get("status") not in FINISHED and entry.last_row else None
            params.update(dict.fromkeys(entry.flat))
            rows.append({
                "trial_id": trial_id, "status": record.get("status"),
                "iteration": (row or {}).get("iteration", record.get("iteration")),
                "value": self._value(entry, metric),
                "time_total_s": (row or {}).get("time_total_s", record.get("time_total_s")),
                "num_failures": record.get("num_failures", 0), "note": record.get("note"),
                "config": entry.flat,
            })
        key = sort
        if key.startswith("config."):
            name = key[len("config."):]
            getter = lambda r: r["config"].get(name)  # noqa: E731
        elif key in ("trial_id", "status", "iteration", "value", "time_total_s", "num_failures"):
            getter = lambda r: r[key]  # noqa: E731
        else:
            raise ValueError(f"sort={sort!r} is not a column; use trial_id, status, iteration, value, time_total_s, "
                             "num_failures or config.<parameter>.")

        def sort_key(r: dict[str, Any]) -> tuple:
            v = getter(r)
            missing = v is None or (isinstance(v, float) and not math.isfinite(v))
            # Missing values last in either order; numbers before text.
            return (missing, (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v)))

        present = [r for r in rows if not sort_key(r)[0]]
        absent = [r for r in rows if sort_key(r)[0]]
        present.sort(key=sort_key, reverse=(order == "desc"))
        ordered = present + absent
        return {"total": len(ordered), "offset": offset, "limit": limit, "metric": metric,
                "params": list(params), "rows": ordered[offset:offset + limit]}

    def trial(self, trial_id: str) -> dict[str, Any]:
        path = self.trial_path(trial_id)
        record_path = path / "trial.json"
        record = read_json(record_path) if record_path.is_file() else {"trial_id": trial_id, "status": "PENDING"}
        error = path / "error.txt"
        checkpoints = sorted(p.name for p in path.glob("checkpoint_*") if p.is_dir())
        return {
            "trial_id": trial_id, "experiment": self.name, "metric": self.refresh().meta.get("metric"),
            "record": record, "config": read_json(path / "config.json"),
            "rows": self.storage.read_results(trial_id), "checkpoints": checkpoints,
            "error": error.read_text() if error.is_file() else None,
        }


def _signed_best(record: dict[str, Any], sign: float) -> Any:
    """trial.json keeps best_value signed to minimize; back to the metric's own sign."""
    value = record.get("best_value")
    return sign * value if is_finite(value) else None


class Root:
    """The experiments under ROOT; views are made once per experiment and kept."""

    def __init__(self, root: str | os.PathLike[str]):
        self.path = Path(root).expanduser().resolve()
        self._views: dict[str, ExperimentView] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(self.path)
                          if _NAME_RE.match(entry.name) and (Path(entry.path) / EXPERIMENT_FILE).is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def experiment(self, name: str) -> ExperimentView:
        """The view of experiment ``name``: a direct child of ROOT with an experiment.json."""
        if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
            raise NotFound(f"No experiment {name!r} in {self.path}.")
        path = self.path / name
        if path.parent != self.path or not (path / EXPERIMENT_FILE).is_file():
            raise NotFound(f"No experiment {name!r} in {self.path}.")
        with self._lock:
            view = self._views.get(name)
            if view is None:
                view = self._views[name] = ExperimentView(path)
        return view

    def listing(self) -> list[dict[str, Any]]:
        """What ``raytuner ls`` shows, for each experiment."""
        out = []
        for name in self.names():
            try:
                summary = self.experiment(name).summary()
            except NotFound:
                continue  # removed since the listing
            out.append({k: summary[k] for k in ("name", "status", "metric", "mode", "counts", "trials", "best",
                                                 "start_time", "elapsed_s")})
        out.sort(key=lambda e: e["start_time"] or 0, reverse=True)
        return out
