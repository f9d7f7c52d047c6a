"""Median stopping: exact decisions against hand-computed medians of running averages."""

from __future__ import annotations

import math

from raytuner.schedulers import Decision, MedianStoppingScheduler

C, S = Decision.CONTINUE, Decision.STOP


def test_exact_decisions():
    rule = MedianStoppingScheduler(grace_period=2, min_samples_required=2)
    # Below the grace period nothing is judged, and nothing is averaged.
    assert [rule.on_result(t, 1, 10.0) for t in "abc"] == [C, C, C]
    for t, v in [("a", 1.0), ("b", 2.0)]:
        assert rule.on_result(t, 2, v) is C  # fewer than 2 other averages at t=2
    # c at t=2: others' averages over [2, 2] are 1.0 and 2.0; median 1.5 < best 3.0.
    assert rule.on_result("c", 2, 3.0) is S
    assert rule.on_result("c", 3, 0.0) is S  # ended trials stay stopped, unrecorded
    # Only trials that reported at t or later count: at 3, nobody else yet.
    assert rule.on_result("a", 3, 5.0) is C
    assert rule.on_result("b", 3, 4.0) is C  # a alone: one sample
    rule.on_result("d", 1, 9.0)
    rule.on_result("d", 2, 1.8)
    # d at 3, best 1.8: a's average over [2, 3] is 3.0, b's 3.0; median 3.0.
    assert rule.on_result("d", 3, 2.5) is C
    # e's first report, at 3: median of a 3.0, b 3.0, d 2.15 is 3.0 >= 2.9.
    assert rule.on_result("e", 3, 2.9) is C
    # f at 3: median of 3.0, 3.0, 2.15, 2.9 is 2.95 < 3.1.
    assert rule.on_result("f", 3, 3.1) is S
    # g at 3: the median of 3.0, 3.0, 2.15, 2.9 and f's 3.1 is 3.0; a tie continues.
    assert rule.on_result("g", 3, 3.0) is C


def test_best_so_far_counts_reports_before_the_grace_period():
    rule = MedianStoppingScheduler(grace_period=2, min_samples_required=1)
    rule.on_result("a", 2, 1.0)
    rule.on_result("b", 1, 0.5)  # its best, before grace
    assert rule.on_result("b", 2, 9.0) is C


def test_completed_trials_keep_counting():
    rule = MedianStoppingScheduler(grace_period=1, min_samples_required=1)
    rule.on_result("a", 1, 1.0)
    rule.on_trial_complete("a")
    assert rule.on_result("b", 1, 2.0) is S


def test_nan_and_inf():
    rule = MedianStoppingScheduler(grace_period=1, min_samples_required=1)
    rule.on_result("a", 1, math.inf)  # left out of the medians
    assert rule.on_result("b", 1, 5.0) is C
    assert rule.on_result("c", 1, math.nan) is S  # worst: worse than b's 5.0


def test_decision_point():
    rule = MedianStoppingScheduler(grace_period=4)
    assert rule.decision_point("a", 0) == 4
    assert rule.decision_point("a", 3) == 4
    assert rule.decision_point("a", 5) == 5  # every report from the grace period on


def test_trials_stop_only_from_the_grace_period_on(sim, curves):
    run = sim(lambda: MedianStoppingScheduler(grace_period=5), curves(3), 40, slots=4, length=20)
    stops = [r for t in run.trials.values() for r, d in t.decisions if d is S]
    assert stops and min(stops) >= 5
