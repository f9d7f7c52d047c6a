"""Median stopping: stop trials that do worse than the median of the others."""

from __future__ import annotations

import bisect
import math
import statistics
from typing import Any

from raytuner.errors import invalid, refuse_unknown_keywords

from ._base import Decision, Scheduler
from ._rungs import nan_to_worst
from ._trials import ResourceOrder
from ._validation import check_int, check_resource_attr, check_restore, is_number


class _History:
    """One trial's reports, with running sums over the reports at or past the grace period."""

    def __init__(self) -> None:
        self.resources: list[float] = []
        self.best = math.inf
        self.sums: list[float] = []
        """sums[k]: sum of the first k + 1 values reported at resource >= grace_period."""
        self.first_kept = 0
        """Index in ``resources`` of the first report at resource >= grace_period."""
        self.nonfinite: list[int] = []
        """nonfinite[k]: how many of those k + 1 values were not finite (all +inf by then)."""

    def add(self, resource: float, value: float, grace_period: float) -> None:
        self.resources.append(resource)
        self.best = min(self.best, value)
        if resource < grace_period:
            self.first_kept = len(self.resources)
            return
        finite = math.isfinite(value)
        self.sums.append((self.sums[-1] if self.sums else 0.0) + (value if finite else 0.0))
        self.nonfinite.append((self.nonfinite[-1] if self.nonfinite else 0) + (not finite))

    def running_mean(self, resource: float) -> float | None:
        """Mean of the values reported in ``[grace_period, resource]``; None if there are
        none or one is infinite (Ray Tune drops non-finite means the same way)."""
        count = bisect.bisect_right(self.resources, resource) - self.first_kept
        if count <= 0 or self.nonfinite[count - 1]:
            return None
        return self.sums[count - 1] / count


class MedianStoppingScheduler(Scheduler):
    """The median stopping rule of Google Vizier (Golovin et al., "Google Vizier: A Service
    for Black-Box Optimization", KDD 2017), with Ray Tune's ``MedianStoppingRule`` semantics.

    At a report at resource ``t >= grace_period``, the trial is stopped if its best value so
    far (over all its reports) is worse (``>``) than the median of the other trials' running
    averages at ``t``: the mean of each other trial's values reported in
    ``[grace_period, t]``, over the trials (running or ended) that have reported at ``t`` or
    beyond. Fewer than ``min_samples_required`` such averages: CONTINUE. A value that is not
    finite (NaN, or infinite of either sign: a loss diverged to ``-inf`` arrives as
    ``-inf``) ranks worst, so it never makes a trial's best; an average with such a value
    in it is left out. Unlike Ray Tune, a trial's
    last report is not counted twice when it completes, and the rule never pauses (Ray's
    ``hard_stop=False``).

    Args:
        grace_period: no trial is stopped, and no value is averaged, below this resource.
        min_samples_required: how many other trials' averages the median needs.
        resource_attr: the report key holding the resource, or None to count reports.

    Example:
        >>> from raytuner.schedulers import MedianStoppingScheduler
        >>> rule = MedianStoppingScheduler(grace_period=1, min_samples_required=2)
        >>> [rule.on_result(t, 1, v).name for t, v in [("a", 1.0), ("b", 2.0), ("c", 3.0)]]
        ['CONTINUE', 'CONTINUE', 'STOP']
    """

    single_objective_reason = "it compares a trial's best value with the median of running means of one value"

    @refuse_unknown_keywords
    def __init__(
        self,
        grace_period: float = 1,
        min_samples_required: int = 3,
        resource_attr: str | None = None,
    ) -> None:
        owner = type(self).__name__
        if not is_number(grace_period) or not 0 <= grace_period < math.inf:
            raise invalid(owner, "grace_period", grace_period, "a finite number >= 0",
                          "Pass the resource before which no trial is judged, e.g. grace_period=1.")
        check_int(
            owner, "min_samples_required", min_samples_required, 1,
            "Pass min_samples_required=3 (Ray Tune's default).",
        )
        check_resource_attr(owner, resource_attr)
        self.grace_period = grace_period
        self.min_samples_required = min_samples_required
        self.resource_attr = resource_attr
        self._histories: dict[str, _History] = {}
        self._ended: set[str] = set()
        self._resource_order = ResourceOrder(owner, resource_attr)

    def _config(self) -> dict[str, Any]:
        return {
            "grace_period": self.grace_period,
            "min_samples_required": self.min_samples_required,
            "resource_attr": self.resource_attr,
        }

    def milestones(self) -> dict[str, Any]:
        # Any report from the grace period on may stop a trial: there are no fixed levels.
        return {"kind": "grace_period", "levels": [], "pauses": False, "max_resource": self.max_resource,
                "grace_period": self.grace_period}

    def on_trial_add(self, trial_id: str) -> None:
        self._histories.setdefault(trial_id, _History())

    def on_result(self, trial_id: str, resource: float, value: float) -> Decision:
        self.on_trial_add(trial_id)
        if trial_id in self._ended:
            return Decision.STOP
        self._resource_order.advance(trial_id, resource)
        history = self._histories[trial_id]
        history.add(resource, nan_to_worst(value), self.grace_period)
        if resource < self.grace_period:
            return Decision.CONTINUE
        means = []
        for other_id, other in self._histories.items():
            # `>=`: a trial that reported exactly at t has a full window up to t.
            if other_id == trial_id or not other.resources or other.resources[-1] < resource:
                continue
            mean = other.running_mean(resource)
            if mean is not None:
                means.append(mean)
        if len(means) < self.min_samples_required:
            return Decision.CONTINUE
        # `>`: a trial exactly at the median is not worse than it and continues.
        if history.best > statistics.median(means):
            self._ended.add(trial_id)
            return Decision.STOP
        return Decision.CONTINUE

    def decision_point(self, trial_id: str, resource: float) -> float:
        if trial_id in self._ended:
            return resource
        # From the grace period on, any report may stop the trial.
        return max(self.grace_period, resource)

    def on_trial_complete(self, trial_id: str) -> None:
        # The trial's history stays: ended trials keep counting in the medians.
        self._ended.add(trial_id)

    on_trial_error = on_trial_remove = on_trial_complete

    def state(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "histories": {
                t: {
                    "resources": list(h.resources),
                    "best": h.best,
                    "sums": list(h.sums),
                    "first_kept": h.first_kept,
                    "nonfinite": list(h.nonfinite),
                }
                for t, h in self._histories.items()
            },
            "ended": sorted(self._ended),
            "resource_order": self._resource_order.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_restore(type(self).__name__, state, self._config())
        self._histories = {}
        for trial_id, saved in state["histories"].items():
            history = _History()
            history.resources = list(saved["resources"])
            history.best = nan_to_worst(saved["best"])  # a state saved before it mapped -inf
            history.sums = list(saved["sums"])
            history.first_kept = saved["first_kept"]
            history.nonfinite = list(saved["nonfinite"])
            self._histories[trial_id] = history
        self._ended = set(state["ended"])
        self._resource_order.restore(state["resource_order"])
