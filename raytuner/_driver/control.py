"""The driver's side of control commands: take them from the experiment's folder, turn
them into lifecycle events, and record how each went in the experiment's history.

The folder is listed at most every :data:`POLL_S` seconds, whatever the rate of events:
a listing costs tens of microseconds, and a person waits on a command for a second at
least (the page shows its outcome from the history).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from raytuner._driver import events as ev
from raytuner._storage.control import ControlCommand, ControlStore
from raytuner._storage.experiment import ExperimentStorage

POLL_S = 0.25

_EVENTS: dict[str, type] = {"stop_trial": ev.StopTrial, "retry_trial": ev.RetryTrial,
                            "set_limits": ev.SetLimits, "end_experiment": ev.EndExperiment}
_NAMES = {cls: name for name, cls in _EVENTS.items()}


def to_event(cmd: ControlCommand) -> Any:
    """The lifecycle event of a command (its arguments were validated when it was read)."""
    return _EVENTS[cmd.command](**cmd.args, origin=cmd.origin)


class ControlInbox:
    def __init__(self, storage: ExperimentStorage, clock: Callable[[], float] = time.monotonic):
        self._store = ControlStore(storage)
        self._clock = clock
        self._next_poll = 0.0
        self._sent: dict[int, tuple[Any, ControlCommand]] = {}  # id(event) -> (event, its command)

    def poll(self) -> list[Any]:
        """Events for the commands written since the last look (none if looked too lately)."""
        now = self._clock()
        if now < self._next_poll:
            return []
        self._next_poll = now + POLL_S
        events = []
        for cmd in self._store.take():
            if isinstance(cmd, tuple):  # a damaged or foreign file: say so in the history
                name, why = cmd
                self._store.record({"time": time.time(), "id": None, "origin": "?", "command": name, "args": {},
                                    "accepted": False, "message": why})
                continue
            event = to_event(cmd)
            self._sent[id(event)] = (event, cmd)
            events.append(event)
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
