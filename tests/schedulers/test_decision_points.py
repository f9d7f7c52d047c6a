"""The hot-path invariant, for every scheduler: below the decision point announced after a
trial's previous report, on_result returns nothing but CONTINUE.

The fake controller asserts it on every report; here it runs every scheduler with reports
that move the resource by 1 to 4 at a time (so rungs and milestones get skipped), and
checks that the decision points are exact rather than merely safe: a trial whose decision
point is a rung gets a decision there.
"""

from __future__ import annotations

import pytest

from raytuner.schedulers import (
    ASHAScheduler,
    Decision,
    FIFOScheduler,
    HyperbandScheduler,
    MedianStoppingScheduler,
)

MAKERS = {
    "fifo": lambda: FIFOScheduler(max_resource=30),
    "asha-stopping": lambda: ASHAScheduler(30, min_resource=2, reduction_factor=2),
    "asha-promotion": lambda: ASHAScheduler(30, reduction_factor=3, variant="promotion"),
    "async-hyperband": lambda: ASHAScheduler(30, reduction_factor=2, brackets=4),
    "hyperband": lambda: HyperbandScheduler(30, reduction_factor=2),
    "median": lambda: MedianStoppingScheduler(grace_period=4),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("steps", [(1,), (1, 2, 3, 4)])
def test_nothing_but_continue_below_the_decision_point(sim, curves, name, steps):
    run = sim(MAKERS[name], curves(5), 80, slots=4, length=30, steps=steps)
    assert all(t.status in ("completed", "stopped") for t in run.trials.values())


def test_decision_points_are_exact_for_asha():
    asha = ASHAScheduler(30, min_resource=2, reduction_factor=2)  # rungs 2, 4, 8, 16
    asha.on_trial_add("a")
    assert asha.decision_point("a", 0) == 2
    points = []
    for resource in (1, 3, 5, 9, 17, 29):
        asha.on_result("a", resource, 0.0)
        points.append(asha.decision_point("a", resource))
    assert points == [2, 4, 8, 16, 30, 30]
    # Asked about a resource past a rung it has not been judged at: decide on the next report.
    asha.on_trial_add("b")
    assert asha.decision_point("b", 3) == 3
    assert asha.on_result("a", 30, 0.0) is Decision.COMPLETE
