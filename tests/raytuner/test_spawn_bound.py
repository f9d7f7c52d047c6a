"""The bound on the workers a sweep starts: what the cluster can hold, looked up again while
it is full, as nodes may join (no Ray: the cluster's nodes are given)."""

from __future__ import annotations

from raytuner._driver import autoscale


def test_the_workers_stay_within_what_the_cluster_holds_and_a_joining_node_is_seen(monkeypatch):
    nodes = [[{"CPU": 2.0}]]
    monkeypatch.setattr(autoscale, "cluster_nodes", lambda: nodes[0])
    now = [0.0]
    capacity = autoscale.Capacity({"cpu": 1.0}, 2, clock=lambda: now[0])
    assert (capacity.room(0), capacity.room(1), capacity.room(2), capacity.room(5)) == (2, 1, 0, 0)
    nodes[0] = [{"CPU": 2.0}, {"CPU": 4.0}]  # a node joined
    now[0] += autoscale.Capacity.REFRESH_S / 2
    assert capacity.room(2) == 0  # looked too lately: the nodes are not listed on every turn
    now[0] += autoscale.Capacity.REFRESH_S
    assert capacity.room(2) == 4 and capacity.count == 6
    nodes[0] = [{"CPU": 2.0}]  # a node left: the bound stays (the workers it held are discarded as they die)
    now[0] += autoscale.Capacity.REFRESH_S
    assert capacity.room(6) == 0 and capacity.count == 6
