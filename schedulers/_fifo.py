"""FIFO: run every trial to its end."""

from __future__ import annotations

import math
from typing import Any

from raytuner.errors import refuse_unknown_keywords

from ._base import Decision, Scheduler, Value
from ._trials import ResourceOrder
from ._validation import check_max_resource, check_resource_attr, check_restore


class FIFOScheduler(Scheduler):
    """Never intervenes: trials run in the order they start, to their end.

    Args:
        max_resource: if finite, a trial gets COMPLETE once its resource reaches it (``R``);
            the default ``inf`` leaves the trainable's own loop to end it. Searchers read it
            to tell full-budget values from partial ones.
        resource_attr: the report key holding the resource, or None to count reports.

    Example:
        >>> from raytuner.schedulers import Decision, FIFOScheduler
        >>> FIFOScheduler().on_result("t0", 1, 0.5) is Decision.CONTINUE
        True
    """

    needs_metric = False  # it never compares values
    supports_multi_objective = True  # nor several of them

    @refuse_unknown_keywords
    def __init__(self, max_resource: float = math.inf, resource_attr: str | None = None) -> None:
        if max_resource != math.inf:
            check_max_resource(type(self).__name__, max_resource)
        check_resource_attr(type(self).__name__, resource_attr)
        self.max_resource = max_resource
        self.resource_attr = resource_attr
        self._resource_order = ResourceOrder(type(self).__name__, resource_attr)

    def _config(self) -> dict[str, Any]:
        return {"max_resource": self.max_resource, "resource_attr": self.resource_attr}

    def on_result(self, trial_id: str, resource: float, value: Value) -> Decision:
        self._resource_order.advance(trial_id, resource)
        if resource >= self.max_resource:
            # COMPLETE closes the trial here: the controller does not call on_trial_complete.
            self.on_trial_complete(trial_id)
            return Decision.COMPLETE
        return Decision.CONTINUE

    def decision_point(self, trial_id: str, resource: float) -> float:
        return self.max_resource

    def on_trial_complete(self, trial_id: str) -> None:
        self._resource_order.last.pop(trial_id, None)

    on_trial_error = on_trial_remove = on_trial_complete

    def state(self) -> dict[str, Any]:
        return {"config": self._config(), "resource_order": self._resource_order.state()}

    def restore(self, state: dict[str, Any]) -> None:
        check_restore(type(self).__name__, state, self._config())
        self._resource_order.restore(state["resource_order"])
