"""The driver's side of control commands: take them from the experiment's folder, turn
them into lifecycle events, and record how each went in the experiment's history; and the
limits they set, kept in experiment.json for the views and for resume; and, on resume,
the effects of the commands the last run applied made to hold (:func:`replay`).

The folder is listed at most every :data:`POLL_S` seconds, whatever the rate of events:
a listing costs tens of microseconds, and a person waits on a command for a second at
least (the page shows its outcome from the history).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable

from raytuner._control_values import COMMANDS, clean_command
from raytuner._driver import events as ev
from raytuner._storage.control import ControlCommand, ControlStore, Rejected
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner.errors import ConfigError

logger = logging.getLogger("raytuner")

POLL_S = 0.25
#: The limits a command (or a resume argument) may set, as experiment.json names them.
LIMITS = COMMANDS["set_limits"]

_EVENTS: dict[str, type] = {"stop_trial": ev.StopTrial, "retry_trial": ev.RetryTrial,
                            "set_limits": ev.SetLimits, "end_experiment": ev.EndExperiment}
_NAMES = {cls: name for name, cls in _EVENTS.items()}


def to_event(cmd: ControlCommand) -> Any:
    """The lifecycle event of a command (its arguments were validated when it was read)."""
    return _EVENTS[cmd.command](**cmd.args, origin=cmd.origin)


class ControlInbox:
    """Commands for the run ``run_id`` (experiment.json's, the driver lock's): any other
    file in the folder is refused and recorded (:meth:`ControlStore.take`)."""

    def __init__(self, storage: ExperimentStorage, run_id: str | None, clock: Callable[[], float] = time.monotonic):
        self._store = ControlStore(storage)
        self._run_id = run_id
        self._clock = clock
        self._next_poll = 0.0
        self._sent: dict[int, tuple[Any, ControlCommand]] = {}  # id(event) -> (event, its command)

    def poll(self) -> list[Any]:
        """Events for the commands written since the last look (none if looked too lately)."""
        now = self._clock()
        if now < self._next_poll:
            return []
        self._next_poll = now + POLL_S
        events, refused = [], []
        for item in self._store.take(self._run_id):
            if isinstance(item, Rejected):  # a damaged, hostile or stale file: say so in the history
                logger.warning("Control file %s refused: %s", item.file, item.reason)
                refused.append(item)
                continue
            event = to_event(item)
            self._sent[id(event)] = (event, item)
            events.append(event)
        self._store.record(*(item.entry() for item in refused))
        for item in refused:  # only once their lines are written: none goes without one
            self._store.set_aside(item.file, item.set_aside)
        return events

    def refuse_the_rest(self, why: str) -> None:
        """At the end of the run: refuse every command still waiting in the folder, each with
        its history line, so none written for this run is left without one (the CLI and the
        dashboard show the line). One written after this, in the moment before the driver's
        lock goes, is refused by the next run."""
        while True:
            self._next_poll = 0.0
            events = self.poll()
            if not events:
                return
            for event in events:
                self.record(ev.ControlApplied(event, False, why))

    def record(self, applied: ev.ControlApplied) -> None:
        """One history line for a command the lifecycle applied or refused, then its file
        goes: the driver calls this before it writes the command's effects, so the line is
        the point from which a resume makes them hold (:func:`replay`)."""
        event = applied.command
        _, cmd = self._sent.pop(id(event), (None, None))
        args = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)
                if f.name != "origin" and getattr(event, f.name) is not None}
        self._store.record({
            "time": time.time(), "id": cmd.id if cmd else None, "origin": getattr(event, "origin", "?"),
            "command": _NAMES.get(type(event), type(event).__name__), "args": args,
            "accepted": applied.accepted, "message": applied.message,
            "sent": cmd.time if cmd else None, "run_id": self._run_id, "file": cmd.file if cmd else None,
            **({"ended": list(applied.ended)} if isinstance(event, ev.EndExperiment) and applied.accepted else {}),
        })
        if cmd is not None:
            self._store.done(cmd)


def applied_limits(applied: ev.ControlApplied) -> dict[str, Any]:
    """The limits an applied SetLimits set, checked and typed; {} for anything else."""
    event = applied.command
    if not (applied.accepted and isinstance(event, ev.SetLimits)):
        return {}
    return clean_command("set_limits", {name: getattr(event, name) for name in LIMITS}).args


def describe_applied(applied: ev.ControlApplied) -> str:
    """A command's outcome in one line, for the terminal: ``control from cli: set_limits
    applied: max_concurrent=2``."""
    event = applied.command
    name = _NAMES.get(type(event), type(event).__name__)
    return (f"control from {getattr(event, 'origin', '?')}: {name} "
            f"{'applied' if applied.accepted else 'refused'}: {applied.message}")


def record_limits(meta: dict[str, Any], limits: dict[str, Any]) -> None:
    """Keep limits set by a control command or a resume argument in experiment.json's
    ``meta``: under ``"limits"`` (what resume restores) and in the top-level keys the
    dashboard and ``raytuner ls`` read (the limits in force)."""
    if limits:
        meta["limits"] = {**(meta.get("limits") or {}), **limits}
        meta.update(limits)


def stored_limits(meta: dict[str, Any]) -> dict[str, Any]:
    """The limits experiment.json keeps under ``"limits"``, checked as a command's are: a
    hand-edited value out of bounds is left out, with a warning, not obeyed."""
    stored = meta.get("limits")
    if not isinstance(stored, dict):
        return {}
    kept = {}
    for name in LIMITS:
        if stored.get(name) is not None:
            try:
                kept.update(clean_command("set_limits", {name: stored[name]}).args)
            except ConfigError as exc:
                logger.warning("experiment.json's limits: %s It is left out.", exc)
    return kept


def replay(storage: ExperimentStorage, meta: dict[str, Any], trials: dict[str, Trial]) -> list[str]:
    """On resume: make the commands the last run recorded as applied hold in its records.

    The driver writes a command's history line before its effects (:meth:`ControlInbox.record`),
    so a run killed in between leaves a line whose effect never reached the records: a trial
    stopped by command still RUNNING in its trial.json, limits missing from experiment.json, a
    re-run trial still FAILED. The lines of the last run (experiment.json's ``run_id``) are
    applied again, in order, to ``meta`` and ``trials``; each is idempotent, so a line whose
    effect did land changes nothing. Earlier runs' lines need nothing: the run after each
    replayed them before it wrote its own run_id into experiment.json. Returns the ids of the
    trials changed, whose trial.json the resume rewrites.
    """
    run_id = meta.get("run_id")
    if not isinstance(run_id, str):
        return []
    changed: list[str] = []
    commands = []
    for entry in ControlStore(storage).history():
        args = entry.get("args")
        if entry.get("run_id") != run_id or entry.get("accepted") is not True or not isinstance(args, dict):
            continue
        try:
            commands.append((entry, clean_command(entry.get("command"), args)))
        except ConfigError as exc:  # a hand-edited line: not obeyed
            logger.warning("%s: a line of its last run is not a command (%s); it is left out.",
                           ControlStore(storage).history_path, exc)
    # A stop's call may be answered by the trial's failure, and the FAILED trial then re-run:
    # a stop followed by a re-run of the same trial is not replayed over that re-run.
    rerun_at = {cmd.args["trial_id"]: at for at, (_, cmd) in enumerate(commands) if cmd.command == "retry_trial"}
    for at, (entry, cmd) in enumerate(commands):
        origin, when = entry.get("origin", "?"), entry.get("time")
        when = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else time.time()
        if cmd.command == "set_limits":
            record_limits(meta, cmd.args)
            continue
        if cmd.command == "end_experiment":
            changed += _end(_ended(entry, trials), TrialStatus.STOPPED, f"experiment ended by {origin}", when)
            continue
        trial = trials.get(cmd.args["trial_id"])
        if trial is None:
            continue
        if cmd.command == "stop_trial" and not trial.status.is_finished() and rerun_at.get(trial.trial_id, -1) < at:
            changed += _end([trial], TrialStatus.STOPPED, f"stopped by {origin}", when)
        elif cmd.command == "retry_trial" and trial.status is TrialStatus.FAILED and (trial.end_time or 0) <= when:
            # Failed before the command, so not its re-run failing again: the re-run is due.
            trial.status, trial.num_failures, trial.end_time, trial.note = (TrialStatus.PENDING, 0, None,
                                                                             f"re-run by {origin}")
            changed.append(trial.trial_id)
    if changed:
        logger.info("Trials %s: as control commands of the last run set them (it stopped before writing that).",
                    ", ".join(sorted(set(changed))))
    return sorted(set(changed))


def _ended(entry: dict[str, Any], trials: dict[str, Trial]) -> list[Trial]:
    """The trials an end_experiment line stopped, not finished in their records: those its
    line names (on a worker then, or paused). A trial waiting for a worker was not ended (a
    resume runs it), though its record may say RUNNING: it lost its worker with the run
    before and was not launched again. A line without the names (written by hand): the
    trials on a worker or paused by their records."""
    named = entry.get("ended")
    if isinstance(named, list):
        return [trials[t] for t in named if isinstance(t, str) and t in trials and not trials[t].status.is_finished()]
    return [t for t in trials.values() if t.status in (TrialStatus.RUNNING, TrialStatus.PAUSED)]


def _end(trials: list[Trial], status: TrialStatus, note: str, when: float) -> list[str]:
    for trial in trials:
        trial.status, trial.note, trial.end_time = status, note, when
    return [trial.trial_id for trial in trials]
