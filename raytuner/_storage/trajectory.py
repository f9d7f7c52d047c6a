"""A trial's fields as its kept rows give them, for every reader: resume, ``rt.load`` (and so
the CLI and the report) and the dashboard.

``trial.json`` is rewritten when a trial's status changes; its ``results.jsonl`` gets every
report as it comes. So the record lags behind the file while a trial runs, and for good
after a driver died between appending a row and rewriting the record. The file wins (as
resume has always had it): :func:`replay` sets every field the kept rows (the trial's one
trajectory, :mod:`raytuner._storage.history`) determine, and the checkpoint it restarts
from: the newest that a kept row (or a PBT exploit's copy) commits and that is still there.

A killed driver also leaves its trials' records RUNNING, where its Ctrl-C would have written
PENDING. Readers show such a trial as a resume will take it (:func:`catch_up`): PENDING, to
restart from its checkpoint, noted :data:`INTERRUPTED_NOTE`. They change nothing on disk.

Pure Python; no Ray.
"""

from __future__ import annotations

from typing import Any, Callable, Collection

from raytuner._formats import AUTO_KEYS
from raytuner._objectives import Objectives
from raytuner._storage.history import History, fold
from raytuner._storage.lineage import EXPLOIT, attempt_of, lines
from raytuner._trial import Trial, TrialStatus

#: Why a reader shows a trial recorded RUNNING as PENDING: no live driver holds its experiment
#: (the driver's own Ctrl-C path notes "interrupted (Ctrl-C)").
INTERRUPTED_NOTE = "interrupted (its driver stopped)"


def checkpoint_rows(history: History) -> list[dict[str, Any]]:
    """The kept rows, with each PBT exploit's copy as a row at the report it starts from
    (folded as the file was: a later restart below it drops it); those naming a
    ``checkpoint`` commit it."""
    if not any(m.get("reason") == EXPLOIT for m in history.attempts):
        return history.rows
    out: list[dict[str, Any]] = []
    for line in lines(history):
        out.append(line)
        if line.get("reason") == EXPLOIT and line.get("checkpoint"):
            out.append({"iteration": line.get("start_iteration") or 0, "checkpoint": line["checkpoint"],
                        "time_total_s": line.get("start_time_s", 0.0), "attempt": line.get("attempt", 1)})
    return fold(out).rows


def replay(trial: Trial, history: History, objectives: Objectives, on_disk: Collection[str]) -> str | None:
    """Set ``trial``'s iteration, resource, metrics, time, last and best values, attempt and
    checkpoints from its kept rows; ``on_disk``: the checkpoint folders there are (a
    folder deleted by hand is no checkpoint). Returns the newest checkpoint the rows commit
    when it is gone (the trial then has the newest one left, or none), else None."""
    trial.iteration, trial.resource, trial.metrics, trial.time_total_s = 0, None, {}, 0.0
    trial.last_value = trial.best_value = trial.best_iteration = None
    trial.trajectory = []
    for row in history.rows:
        trial.observe(row["iteration"], row.get("resource", row["iteration"]), _metrics(row), objectives.signed(row),
                      row.get("time_total_s", 0.0))
    trial.attempt = max(trial.attempt, history.attempt)
    committed = [row for row in checkpoint_rows(history) if row.get("checkpoint")]
    trial.checkpoints, trial.checkpoint_rows = [], {}
    trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_s = None, 0, 0.0
    trial.checkpoint_metrics, trial.checkpoint_attempt = {}, 0
    for row in committed:
        if row["checkpoint"] in on_disk:
            trial.commit(row["checkpoint"], row["iteration"], row.get("time_total_s", 0.0), _metrics(row),
                         attempt_of(row))
    newest = committed[-1]["checkpoint"] if committed else None
    return newest if newest is not None and newest != trial.checkpoint else None


def lags(trial: Trial, history: History) -> bool:
    """Whether ``results.jsonl`` holds what the trial's record does not yet: a later
    attempt, or reports past the record's iteration. A finished trial's record is written
    after its last row, so only an unfinished one lags."""
    if trial.status.is_finished():
        return False
    if history.attempt > trial.attempt:
        return True
    return bool(history.rows) and history.rows[-1].get("iteration", 0) > trial.iteration


def catch_up(trial: Trial, history: History, objectives: Objectives,
             on_disk: Callable[[], Collection[str]], *, live: bool) -> bool:
    """Bring a record read from ``trial.json`` to what every reader shows: up to its
    ``results.jsonl`` where it :func:`lags` (``on_disk`` is asked only then), and, where
    no driver holds the experiment now (``live`` false), from RUNNING to PENDING with
    :data:`INTERRUPTED_NOTE`, the status a resume gives it. Returns whether it changed
    anything. Resume does not call it: it reads the records itself and replays them (:func:`replay`)."""
    changed = lags(trial, history)
    if changed:
        replay(trial, history, objectives, on_disk())
    if trial.status is TrialStatus.RUNNING and not live:
        trial.status, trial.note = TrialStatus.PENDING, INTERRUPTED_NOTE
        changed = True
    return changed


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in AUTO_KEYS}
