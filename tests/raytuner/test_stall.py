"""The driver's word on trials left waiting by a lost node (raytuner._driver.stall), on a
clock and a cluster the test sets."""

from __future__ import annotations

import logging

from raytuner._driver import stall
from raytuner._driver.stall import STALL_CHECK_S, StallWatch


class Life:
    def __init__(self):
        self.used, self.work = 0, True

    def slots_used(self):
        return self.used

    def may_have_work(self):
        return self.work


def test_a_lost_node_is_said_once_while_trials_wait_and_again_after_one_ran(monkeypatch, caplog):
    now = [0.0]
    monkeypatch.setattr(stall.autoscale, "waiting", lambda: None)
    monkeypatch.setattr(stall._resources, "cluster_nodes", lambda: [])
    monkeypatch.setattr(stall._resources, "stalled", lambda resources, nodes: f"no node holds {dict(resources)}")
    watch, life = StallWatch("exp", {"gpu": 1.0}, clock=lambda: now[0]), Life()

    def turns(n: int) -> list[str]:
        caplog.clear()
        for _ in range(n):
            now[0] += STALL_CHECK_S / 2
            watch.check(life)
        return [r.getMessage() for r in caplog.records]

    with caplog.at_level(logging.WARNING, logger="raytuner"):
        assert turns(1) == []  # looked up only every STALL_CHECK_S
        assert turns(1) == ["exp: no node holds {'gpu': 1.0}"]
        assert turns(6) == []  # said once
        life.used = 1  # a trial ran meanwhile
        assert turns(2) == []
        life.used = 0
        assert turns(2) == ["exp: no node holds {'gpu': 1.0}"]
        life.work = False  # nothing left to run: nothing to say
        assert turns(4) == []


def test_trials_waiting_on_resources_other_work_holds_are_said_after_a_while(monkeypatch, caplog):
    """The nodes could hold a trial (no lost node), but what they have free cannot: said
    once HELD_AFTER_S have passed with none running, with what is free."""
    now = [0.0]
    monkeypatch.setattr(stall.autoscale, "waiting", lambda: None)
    monkeypatch.setattr(stall._resources, "cluster_nodes", lambda: [{"CPU": 2.0, "GPU": 1.0}])
    free = [[{"CPU": 2.0, "GPU": 0.0}]]
    monkeypatch.setattr(stall._resources, "free_on_nodes", lambda: free[0])
    watch, life = StallWatch("exp", {"cpu": 1.0, "gpu": 1.0}, clock=lambda: now[0]), Life()
    said = []
    with caplog.at_level(logging.WARNING, logger="raytuner"):
        while now[0] < stall.HELD_AFTER_S + 3 * STALL_CHECK_S:
            now[0] += STALL_CHECK_S
            watch.check(life)
            said += [(now[0], r.getMessage()) for r in caplog.records]
            caplog.clear()
    assert len(said) == 1 and said[0][0] >= stall.HELD_AFTER_S
    assert said[0][1] == (
        "exp: no trial has started for 60 s: the cluster's nodes could run one (each needs {'cpu': 1.0, 'gpu': "
        "1.0}), but what they have free now cannot ({CPU: 2, GPU: 0}): other Ray work holds the rest (another "
        "experiment on this cluster, or actors and tasks of this process). The waiting trials start as it frees "
        "up. Ctrl-C stops the run; `raytuner resume` continues it later.")
    free[0] = [{"CPU": 2.0, "GPU": 1.0}]  # freed: a trial starts, and the wait begins anew
    life.used = 1
    now[0] += STALL_CHECK_S
    watch.check(life)
    life.used = 0
    for _ in range(3):
        now[0] += STALL_CHECK_S
        watch.check(life)
    assert caplog.records == []  # a new wait, not yet HELD_AFTER_S long
