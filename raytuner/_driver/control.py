"""The driver's side of control commands: take them from the experiment's folder, turn
them into lifecycle events, and record how each went in the experiment's history; and the
limits they set, kept in experiment.json for the views and for resume.

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
                refused.append(item.entry())
                continue
            event = to_event(item)
            self._sent[id(event)] = (event, item)
            events.append(event)
        self._store.record(*refused)
        return events

    def record(self, applied: ev.ControlApplied) -> None:
        """One history line for a command the lifecycle applied or refused."""
        event = applied.command
        _, cmd = self._sent.pop(id(event), (None, None))
        args = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)
                if f.name != "origin" and getattr(event, f.name) is not None}
        self._store.record({
            "time": time.time(), "id": cmd.id if cmd else None, "origin": getattr(event, "origin", "?"),
            "command": _NAMES.get(type(event), type(event).__name__), "args": args,
            "accepted": applied.accepted, "message": applied.message,
            "sent": cmd.time if cmd else None,
        })


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
