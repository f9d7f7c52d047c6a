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
