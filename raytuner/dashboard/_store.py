"""What the dashboard reads: experiments under ROOT, as cached views over their files.

Readers only (docs/architecture.md, "Storage, control and logs"): the dashboard never writes an
experiment's files except through :class:`raytuner._storage.control.ControlStore`. Every
read goes through :class:`~raytuner.dashboard._files.Confined`: real files and folders
inside ROOT, never a link, never a FIFO.

A view re-reads a trial's files only when their modification time changed, and looks at
the folder at most every :data:`REFRESH_S`: one ``scandir`` per look, and a ``stat`` only
for the trials not yet COMPLETED or STOPPED (their files no longer change), so thousands
of finished trials cost nothing per look. A running trial's ``trial.json`` is rewritten
only when its status changes (and a killed driver's may lag for good), so what its
``results.jsonl`` adds (read from where the last look stopped) brings its record up to its
kept reports, as every reader does (:func:`raytuner._storage.trajectory.catch_up`).

Statuses are the CLI's: an experiment whose ``experiment.json`` says RUNNING but whose
driver is gone (no live holder of its lock) is INTERRUPTED, as ``raytuner ls`` shows it,
and a trial whose ``trial.json`` says RUNNING is then PENDING, noted interrupted (by the
same :func:`~raytuner._storage.trajectory.catch_up`, asked again when the lock's holder
comes or goes); a damaged ``experiment.json`` or ``trial.json`` marks that experiment or
trial DAMAGED, with the file and the fault (:mod:`raytuner.dashboard._records`).

Every name or id from a URL is checked here against the names that exist (:meth:`Root.
experiment`, :meth:`ExperimentView.trial_path`): none can reach outside ROOT.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytuner._best import best_trial, listed_report, scope_of, shown_value
from raytuner._control_values import TRIAL_ID_RE
from raytuner._formats import flatten, is_finite, run_time
from raytuner._display import cli_can_resume, resume_call
from raytuner._objectives import Objectives
from raytuner._report._data import schedule_from_meta
from raytuner._storage.control import CONTROL_DIR, HISTORY_FILE
from raytuner._storage.experiment import EXPERIMENT_FILE, LOG_FILE, ExperimentStorage
from raytuner._storage import trajectory
from raytuner._storage.history import History, fold, json_lines
from raytuner._storage.lock import FLOCK_FILE, LOCK_FILE
from raytuner._trial import Trial, TrialStatus
from raytuner.dashboard._files import Confined, Damaged, Refused
from raytuner.dashboard._front import Fronts, rows_of
from raytuner.dashboard._records import (DAMAGED, FINISHED, INTERRUPTED, SETTLED, STOPPABLE, config_fault,
                                         experiment_fault, trial_fault)

REFRESH_S = 0.5


class NotFound(Exception):
    """No such experiment or trial under ROOT (the message says which)."""


@dataclass
class _TrialEntry:
    mtime: int
    record: dict[str, Any]  # trial.json, brought up to the kept reports of results.jsonl
    config: dict[str, Any]
    flat: dict[str, Any]
    damaged: str | None = None  # the file and its fault
    tail_mtime: int = -1
    held: bool | None = None  # whether a driver held the experiment when ``record`` was made
    stored: dict[str, Any] = field(default_factory=dict)  # trial.json as read
    history: History = field(default_factory=History)  # results.jsonl folded up to ``read_to``
    read_to: int = 0  # bytes of results.jsonl folded (whole lines)

    @property
    def status(self) -> str:
        return self.record["status"]


@dataclass
class _Cache:
    meta_mtime: int = -1
    meta: dict[str, Any] = field(default_factory=dict)
    damaged: str | None = None  # experiment.json's fault
    held: bool = False  # a live driver holds the experiment's lock
    live: bool = False  # experiment.json says RUNNING and a live driver holds its lock
    trials: dict[str, _TrialEntry] = field(default_factory=dict)
    history_mtime: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    looked: float = 0.0
    signature: tuple = ()


def _damaged_entry(mtime: int, trial_id: str, why: str, config: dict[str, Any] | None = None) -> _TrialEntry:
    """A DAMAGED trial; ``config``: its config.json where that file is sound (the CLI shows it too)."""
    config = config or {}
    return _TrialEntry(mtime, {"trial_id": trial_id, "status": DAMAGED}, config, flatten(config), damaged=why)


class ExperimentView:
    """One experiment as the dashboard shows it; thread-safe (endpoints run in threads)."""

    def __init__(self, path: Path, files: Confined):
        self.files = files
        self.path = path
        self.storage = ExperimentStorage(path)
        self.name = path.name
        self._lock = threading.Lock()
        self._cache = _Cache()
        self._fronts = Fronts(rows_of(files))

    # -- reading ---------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> _Cache:
        with self._lock:
            cache = self._cache
            now = time.monotonic()
            if not force and now - cache.looked < REFRESH_S:
                return cache
            cache.looked = now
            self._read_meta(cache)
            tails = []
            seen = set()
            for folder in self.files.folders(self.path / "trials"):
                trial_id = folder.name
                if not TRIAL_ID_RE.match(trial_id):
                    continue
                entry = cache.trials.get(trial_id)
                if entry is not None and entry.status in SETTLED:
                    seen.add(trial_id)
                    continue  # its files no longer change: no stat per look for thousands of trials
                mtime = self.files.mtime(f"{folder.path}/trial.json")
                if mtime < 0:
                    continue  # not started yet (or its trial.json is not a file: not shown)
                seen.add(trial_id)
                if entry is None or entry.mtime != mtime:
                    entry = cache.trials[trial_id] = self._read_trial(trial_id, Path(folder.path), mtime, entry)
                if entry.status not in FINISHED and entry.status != DAMAGED:
                    self._follow(entry, Path(folder.path), cache.meta, cache.held)
                    tails.append(entry.tail_mtime)
            for gone in set(cache.trials) - seen:
                del cache.trials[gone]
            history = self.path / HISTORY_FILE
            mtime = self.files.mtime(history)
            if mtime != cache.history_mtime:
                cache.history_mtime = mtime
                try:
                    cache.history = self.files.jsonl(history)[0]
                except Refused:
                    cache.history = []
            cache.signature = (cache.meta_mtime, len(cache.trials), sum(e.mtime for e in cache.trials.values()),
                               sum(tails), cache.history_mtime, cache.live, cache.held)
            return cache

    def _read_meta(self, cache: _Cache) -> None:
        path = self.path / EXPERIMENT_FILE
        mtime = self.files.mtime(path)
        if mtime != cache.meta_mtime:
            cache.meta_mtime = mtime
            try:
                meta = self.files.json(path)
                fault = experiment_fault(meta) if meta is not None else None
                if fault:
                    raise Damaged(f"{self.files.rel(path)}: {fault}")
                if meta is not None:  # gone: the experiment was removed; keep what was read
                    cache.meta, cache.damaged = meta, None
            except (Damaged, Refused) as exc:
                cache.meta, cache.damaged = {}, str(exc)
        cache.held = self._driver_alive()
        cache.live = cache.meta.get("status") == "RUNNING" and cache.held

    def _driver_alive(self) -> bool:
        """Whether a live driver holds the lock: what ``raytuner ls`` asks
        (:meth:`ExperimentStorage.live_driver`), once the lock's files are known to be plain
        files: a FIFO planted there would block the read, and a link holds no driver."""
        for name in (LOCK_FILE, FLOCK_FILE):
            path = self.path / name
            if not (self.files.missing(path) or self.files.is_file(path)):
                return False
        return self.storage.live_driver() is not None

    def _read_trial(self, trial_id: str, path: Path, mtime: int, old: _TrialEntry | None) -> _TrialEntry:
        """A trial's record and config; a trial without a trial.json yet is PENDING."""
        try:
            record = self.files.json(path / "trial.json")
            if record is None:
                record = {"trial_id": trial_id, "status": TrialStatus.PENDING.value}
            fault = trial_fault(record, trial_id)
            if fault:
                return _damaged_entry(mtime, trial_id, f"{self.files.rel(path / 'trial.json')}: {fault}",
                                      self._sound_config(path))
            if old is not None and old.damaged is None:
                config = old.config  # a trial's config never changes
            else:
                config = self.files.json(path / "config.json")
                fault = config_fault(config) if config is not None else "missing"
                if fault:
                    return _damaged_entry(mtime, trial_id, f"{self.files.rel(path / 'config.json')}: {fault}")
            # A line damaged before the end of results.jsonl: looked for when trial.json changes
            # (a new status), so a finished trial's file is read once.
            fault = self.files.jsonl(path / "results.jsonl")[1]
            if fault:
                return _damaged_entry(mtime, trial_id, fault, config)
        except (Damaged, Refused) as exc:
            return _damaged_entry(mtime, trial_id, str(exc), self._sound_config(path))
        entry = _TrialEntry(mtime, record, config, flatten(config), stored=record)
        if old is not None and old.damaged is None:  # results.jsonl is appended to: go on from there
            entry.history, entry.read_to = old.history, old.read_to
        return entry

    def _sound_config(self, path: Path) -> dict[str, Any] | None:
        """The trial's config.json if it is sound, else None."""
        try:
            config = self.files.json(path / "config.json")
        except (Damaged, Refused):
            return None
        return config if config is not None and not config_fault(config) else None

    def _follow(self, entry: _TrialEntry, folder: Path, meta: dict[str, Any], held: bool) -> None:
        """Fold what the trial's results.jsonl gained since the last look (whole lines: the
        last may be cut by a crash) and bring its record up to it, and to ``held`` (whether
        a driver holds the experiment now), so a driver that died meanwhile is seen."""
        path = folder / "results.jsonl"
        mtime = self.files.mtime(path)
        if mtime == entry.tail_mtime and held is entry.held:
            return
        try:
            found = self.files.read(path, entry.read_to)
            if found is not None and found.size < entry.read_to:  # replaced by a shorter file: read it afresh
                entry.history, entry.read_to = History(), 0
                found = self.files.read(path)
        except Refused:
            return
        entry.tail_mtime = mtime
        if found is not None:
            end = found.data.rfind(b"\n") + 1
            lines, _, damaged = json_lines(found.data[:end], path)
            if damaged is None:  # (damage is shown once trial.json changes: _read_trial)
                fold(lines, entry.history)
                entry.read_to = found.start + end
        entry.held = held
        entry.record = self._caught_up(entry.stored, entry.config, entry.history, folder, meta, held)

    def _caught_up(self, record: dict[str, Any], config: dict[str, Any], history: History, folder: Path,
                   meta: dict[str, Any], held: bool) -> dict[str, Any]:
        """``record`` brought up to the kept reports in ``history`` and, with no driver
        holding the experiment (``held`` false), from RUNNING to PENDING, as every reader has it."""
        trial = Trial.from_record(record, config)
        objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min"))
        if not trajectory.catch_up(trial, history, objectives, lambda: self._checkpoints(folder), live=held):
            return record
        return trial.to_record()

    def _checkpoints(self, folder: Path) -> set[str]:
        """The names of a trial's checkpoint folders (a PBT clone's: ``clone_<n>/checkpoint_<k>``)."""
        names = set()
        for found in self.files.folders(folder):
            if found.name.startswith("clone_"):
                names.update(f"{found.name}/{inner.name}" for inner in self.files.folders(Path(found.path)))
            else:
                names.add(found.name)
        return names

    def signature(self) -> tuple:
        return self.refresh().signature

    def trial_path(self, trial_id: Any) -> Path:
        """The folder of a trial that exists; NotFound for any other id."""
        if not isinstance(trial_id, str) or not TRIAL_ID_RE.match(trial_id):
            raise NotFound(f"No trial {str(trial_id)[:80]!r} in experiment {self.name!r}.")
        path = self.path / "trials" / trial_id
        if not self.files.is_file(path / "config.json"):
            raise NotFound(f"No trial {trial_id!r} in experiment {self.name!r}.")
        return path

    def log_path(self, trial_id: str) -> Path:
        return self.trial_path(trial_id) / LOG_FILE

    def control_folder_ok(self) -> bool:
        """Whether commands may be written: ``control/`` is missing or a real folder inside
        ROOT (a link there would have the dashboard write where it points)."""
        folder = self.path / CONTROL_DIR
        return self.files.missing(folder) or self.files.is_folder(folder)

    # -- what the pages show ---------------------------------------------------------------
    def status(self, cache: _Cache) -> str:
        if cache.damaged:
            return DAMAGED
        status = cache.meta.get("status", "?")
        return INTERRUPTED if status == "RUNNING" and not cache.live else status

    def steering(self, cache: _Cache) -> str | None:
        """Why the experiment cannot be steered now, or None when its driver can take commands."""
        status = self.status(cache)
        if status == "RUNNING":
            return None
        if status == DAMAGED:
            return f"Its experiment.json is damaged ({cache.damaged}), so it cannot be steered."
        if cli_can_resume(cache.meta.get("trainable"), cache.meta.get("trainable_file")):
            resume = (f"`raytuner resume {self.path}` continues it (--max-concurrent, --num-trials, --time-budget set "
                      "its limits).")
        else:  # its trainable was defined in a notebook: no command can import it
            resume = f"`{resume_call(self.path, cache.meta.get('trainable'))}` in Python continues it."
        if status == INTERRUPTED and cache.meta.get("status") == "RUNNING":  # else it said so (Ctrl-C, SIGTERM)
            return ("Its driver is gone (it stopped without saying so: a crash, a kill, a lost machine), so no "
                    f"command can reach it. {resume}")
        return f"It is {status.lower()}: no driver runs it, so there is nothing to steer. {resume}"

    def summary(self) -> dict[str, Any]:
        cache = self.refresh()
        meta = cache.meta
        metric, mode = meta.get("metric"), meta.get("mode", "min")
        counts: dict[str, int] = {}
        for entry in cache.trials.values():
            counts[entry.status] = counts.get(entry.status, 0) + 1
        best = self._best(cache, metric, mode)
        start, end = meta.get("start_time"), meta.get("end_time")
        status = self.status(cache)
        elapsed = run_time(meta, live=status == "RUNNING")  # the time between runs does not count
        schedule = schedule_from_meta(meta)
        front = self.front(cache)
        return {
            "name": self.name, "status": status, "metric": metric, "mode": mode,
            "counts": counts, "trials": len(cache.trials),
            "best": None if best is None else {"trial_id": best[0], "value": best[1]},
            "front": None if front is None else {"size": len(front), "trial_ids": [m.trial.trial_id for m in front]},
            "start_time": start, "end_time": end, "elapsed_s": elapsed,
            "max_concurrent": meta.get("max_concurrent"), "num_trials": meta.get("num_trials"),
            "time_budget_s": meta.get("time_budget_s"), "running": counts.get(TrialStatus.RUNNING.value, 0),
            "searcher": meta.get("searcher"), "scheduler": meta.get("scheduler"),
            "rungs": schedule.rungs, "history": cache.history[-50:],
            "damaged": cache.damaged, "not_steerable": self.steering(cache),
            "version": list(cache.signature),
        }

    def _best(self, cache: _Cache, metric: Any, mode: Any) -> tuple[str, float] | None:
        """The best trial and its value by the one rule every view uses
        (:func:`raytuner._best.best_trial`), in the experiment's ``best_scope``."""
        if not isinstance(metric, str) or mode not in ("min", "max"):
            return None
        scope = scope_of(cache.meta)
        found = best_trial([_ranked(trial_id, entry, metric) for trial_id, entry in cache.trials.items()],
                           metric, mode, scope)
        return None if found is None else (found.trial_id, shown_value(found, metric, mode, scope))

    @staticmethod
    def _value(trial_id: str, entry: _TrialEntry, meta: dict[str, Any]) -> Any:
        """The value the trial is ranked by, as ``best_scope`` says (its last kept report, or
        its best), by the one rule every view uses (:func:`raytuner._best.shown_value`)."""
        metric, mode = meta.get("metric"), meta.get("mode", "min")
        if not isinstance(metric, str) or mode not in ("min", "max"):  # several objectives: no one value
            return None
        return shown_value(_ranked(trial_id, entry, metric), metric, mode, scope_of(meta))

    @staticmethod
    def _latest(entry: _TrialEntry) -> dict[str, Any]:
        """The metrics the trial stands at (its record, caught up with its kept reports)."""
        metrics = entry.record.get("metrics") or {}
        return metrics if isinstance(metrics, dict) else {}

    def front(self, cache: _Cache) -> list[Any] | None:
        """With several objectives, the Pareto front (:mod:`raytuner.dashboard._front`); else None."""
        return self._fronts.front(cache.meta, cache.trials, self._latest, self.path / "trials", self.files.mtime)

    def table(self, *, offset: int = 0, limit: int = 50, sort: str = "trial_id", order: str = "asc",
              status: str | None = None) -> dict[str, Any]:
        """One page of the trial table, sorted and filtered on the server."""
        cache = self.refresh()
        metric = cache.meta.get("metric")
        objectives = metric if isinstance(metric, list) else None  # several: a column each, and the front
        members = {m.trial.trial_id: m for m in self.front(cache) or []}
        front = {trial_id: n for n, trial_id in enumerate(members)}
        steerable = self.steering(cache) is None
        rows = []
        params: dict[str, None] = {}
        for trial_id, entry in cache.trials.items():
            record = entry.record
            if status and entry.status != status:
                continue
            params.update(dict.fromkeys(entry.flat))
            rows.append({
                "trial_id": trial_id, "status": entry.status,
                "iteration": record.get("iteration"),
                "value": self._value(trial_id, entry, cache.meta),
                "time_total_s": record.get("time_total_s"),
                "num_failures": record.get("num_failures", 0), "note": entry.damaged or record.get("note"),
                "config": entry.flat, **_actions(entry.status, steerable),
            })
            if objectives:  # as `raytuner show` lists them: a front member's values are those that put it there
                shown = {} if entry.damaged else listed_report(members.get(trial_id), self._latest(entry))
                rows[-1].update(values={m: shown.get(m) for m in objectives}, front=front.get(trial_id))
        key = sort
        if key.startswith("config."):
            name = key[len("config."):]
            getter = lambda r: r["config"].get(name)  # noqa: E731
        elif objectives and key.startswith("objective.") and key[len("objective."):] in objectives:
            name = key[len("objective."):]
            getter = lambda r: r["values"].get(name)  # noqa: E731
        elif objectives and key == "front":  # the front first, in its order
            getter = lambda r: r["front"]  # noqa: E731
        elif key in ("trial_id", "status", "iteration", "value", "time_total_s", "num_failures"):
            getter = lambda r: r[key]  # noqa: E731
        else:
            raise ValueError(f"sort={sort[:80]!r} is not a column; use trial_id, status, iteration, value, "
                             "time_total_s, num_failures or config.<parameter>.")

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
                "objectives": objectives, "params": list(params), "rows": ordered[offset:offset + limit]}

    def trial(self, trial_id: str) -> dict[str, Any]:
        path = self.trial_path(trial_id)
        cache = self.refresh()
        entry = self._read_trial(trial_id, path, -1, None)
        faults = [entry.damaged] if entry.damaged else []
        try:
            lines, fault = self.files.jsonl(path / "results.jsonl")
        except Refused as exc:
            lines, fault = [], str(exc)
        history = fold(lines)  # one trajectory: a lost attempt's rows are not shown
        rows = history.rows
        record = entry.record
        if not (entry.damaged or fault):
            record = self._caught_up(entry.stored, entry.config, history, path, cache.meta, cache.held)
        try:
            error = self.files.text(path / "error.txt")
        except Refused as exc:
            error = None
            faults.append(str(exc))
        status = record["status"]
        why = self.steering(cache)
        return {
            "trial_id": trial_id, "experiment": self.name, "metric": cache.meta.get("metric"),
            "record": record, "config": entry.config, "rows": rows,
            "checkpoints": self._committed(path, history, trusted=not fault),
            "error": error, "damaged": "; ".join(dict.fromkeys(faults + ([fault] if fault else []))) or None,
            "not_steerable": why, **_actions(status, why is None),
        }

    def _committed(self, path: Path, history: History, *, trusted: bool) -> list[str]:
        """The trial's checkpoint folders that its kept rows commit: a folder no row names is
        none (being stored, or left by a crash or a lost attempt; a resume removes it), as
        every reader has it. With its results.jsonl damaged, every folder there is."""
        names = sorted(e.name for e in self.files.folders(path) if e.name.startswith("checkpoint_"))
        if not trusted:
            return names
        committed = {row["checkpoint"] for row in trajectory.checkpoint_rows(history) if row.get("checkpoint")}
        return [name for name in names if name in committed]


def _actions(status: str, steerable: bool) -> dict[str, bool]:
    """Which controls a trial's row or page offers: none unless a live driver can take them."""
    return {"can_stop": steerable and status in STOPPABLE,
            "can_retry": steerable and status == TrialStatus.FAILED.value}


@dataclass(frozen=True)
class _Ranked:
    """What :func:`raytuner._best.best_trial` ranks a trial by."""

    trial_id: str
    status: str
    metrics: dict[str, Any]
    best_value: float | None


def _ranked(trial_id: str, entry: _TrialEntry, metric: str) -> _Ranked:
    """A trial as :mod:`raytuner._best` ranks it: its latest value and its best (signed)."""
    if entry.damaged:
        return _Ranked(trial_id, entry.status, {}, None)
    best = entry.record.get("best_value")
    return _Ranked(trial_id, entry.status, {metric: ExperimentView._latest(entry).get(metric)},
                   best if is_finite(best) else None)

