"""Telling a lost node, or resources other Ray work holds, from a worker still starting,
while trials wait and none runs."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from raytuner._driver import autoscale
from raytuner._driver import resources as _resources

logger = logging.getLogger("raytuner")

#: While trials wait and none runs, the cluster's nodes are looked up this often to tell a
#: lost node (no alive node can hold a trial) from a worker still starting.
STALL_CHECK_S = 10.0
#: Trials waiting this long with none running, on nodes that could hold one, are said to
#: wait for resources other Ray work holds, if what the nodes have free cannot hold one.
HELD_AFTER_S = 60.0


class StallWatch:
    """Says once, while trials wait and none runs, if no alive node can hold one: the node
    that could was lost, and the run would otherwise wait without a word (looked up every
    :data:`STALL_CHECK_S`; said again after a trial ran meanwhile). After
    :data:`HELD_AFTER_S` of such a wait on nodes that could hold a trial, it says so if what
    they have free cannot: other Ray work holds it (Ray Tune's "insufficient resources"
    warning).

    Args:
        name: The experiment's, for the warning.
        resources: What one trial asks of a node.
        clock: A monotonic clock.
    """

    def __init__(self, name: str, resources: Mapping[str, float], clock: Callable[[], float] = time.monotonic):
        self._name, self._resources, self._clock = name, resources, clock
        self._checked = clock()
        self._said = False
        self._waiting_since: float | None = None  # since when trials wait and none runs

    def check(self, life: Any) -> None:
        """One turn of the driver's loop; ``life``: its lifecycle (slots used, work left)."""
        now = self._clock()
        if now - self._checked < STALL_CHECK_S:  # the loop's turn pays one clock read
            return
        self._checked = now
        if life.slots_used() or not life.may_have_work():
            self._said, self._waiting_since = False, None
            return
        if self._waiting_since is None:
            self._waiting_since = now
        if self._said or autoscale.waiting() is not None:
            return
        reason = _resources.stalled(self._resources, _resources.cluster_nodes())
        if reason is None and now - self._waiting_since >= HELD_AFTER_S:
            reason = _resources.held(self._resources, _resources.free_on_nodes(), now - self._waiting_since)
        if reason is not None:
            self._said = True
            logger.warning("%s: %s", self._name, reason)
