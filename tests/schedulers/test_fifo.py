"""FIFO: never intervenes, except at an explicit max_resource."""

from __future__ import annotations

import math

import pytest

from raytuner.schedulers import Decision, FIFOScheduler


def test_never_intervenes_by_default(sim, iid):
    fifo = FIFOScheduler()
    assert fifo.max_resource == math.inf
    assert fifo.decision_point("a", 0) == math.inf
    run = sim(FIFOScheduler, iid(0), 10, slots=3, length=15)
    assert {d for _, _, d in run.log} == {Decision.CONTINUE}
    assert all(t.status == "completed" and t.resource == 15 for t in run.trials.values())


def test_completes_at_max_resource():
    fifo = FIFOScheduler(max_resource=3)
    assert fifo.decision_point("a", 1) == 3
    assert [fifo.on_result("a", r, 0.0) for r in (1, 2, 3)] == [
        Decision.CONTINUE, Decision.CONTINUE, Decision.COMPLETE,
    ]


def test_rejects_non_increasing_resources():
    fifo = FIFOScheduler()
    fifo.on_result("a", 2, 0.0)
    with pytest.raises(ValueError, match=r"FIFOScheduler: trial 'a' reported resource 2 after 2"):
        fifo.on_result("a", 2, 0.0)
