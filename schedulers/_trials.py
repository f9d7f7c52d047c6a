"""Per-trial bookkeeping shared by the schedulers: lifecycle status and resource order."""

from __future__ import annotations

import enum
from typing import Any

from raytuner.errors import ResourceError

from ._validation import is_number


class Status(enum.Enum):
    """Where a trial stands as far as a scheduler knows (the controller owns the truth)."""

    RUNNING = "running"
    PAUSED = "paused"
    """Paused by this scheduler; waits for :meth:`Scheduler.choose_trial_to_resume`."""
    ENDED = "ended"
    """Stopped, completed, failed or removed: never a candidate again."""


def restored(status: Status, paused: bool) -> Status:
    """A trial's status once a resume has replayed the reports since the saved state
    (``Scheduler.on_trial_restore``): paused or running as its folder says, since the replay
    cannot tell which paused trials were resumed meanwhile; one the scheduler ended stays
    ended (its next report gets STOP)."""
    if status is Status.ENDED:
        return status
    return Status.PAUSED if paused else Status.RUNNING


class ResourceOrder:
    """The last resource of each trial; enforces that resources increase.

    The first report after :meth:`resumed` may start over: the controller feeds a lower
    resource only to an exploit's clone (it goes on from its donor's), but a scheduler
    driven by hand may restart a resumed trial from scratch, and the scheduler's rung
    bookkeeping (which rungs the trial already passed) keeps it from being judged twice at
    the same rung.
    """

    def __init__(self, owner: str, resource_attr: str | None) -> None:
        self._owner = owner
        self._resource_attr = resource_attr
        self.last: dict[str, float] = {}
        self._resumed: set[str] = set()

    def advance(self, trial_id: str, resource: float) -> None:
        if not is_number(resource):
            msg = (
                f"{self._owner}: trial {trial_id!r} reported resource {resource!r} "
                f"(resource_attr={self._resource_attr!r}); it must be a number. Report a "
                f"numeric progress counter under resource_attr, or pass resource_attr=None "
                f"to count reports."
            )
            raise ResourceError(msg)
        previous = self.last.get(trial_id)
        if previous is not None and resource <= previous and trial_id not in self._resumed:
            raise ResourceError.not_increasing(self._owner, trial_id, self._resource_attr, previous, resource)
        self._resumed.discard(trial_id)
        self.last[trial_id] = resource

    def resumed(self, trial_id: str) -> None:
        self._resumed.add(trial_id)

    def state(self) -> dict[str, Any]:
        return {"last": dict(self.last), "resumed": sorted(self._resumed)}

    def restore(self, state: dict[str, Any]) -> None:
        self.last = dict(state["last"])
        self._resumed = set(state["resumed"])
