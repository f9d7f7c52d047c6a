"""Stopping ASHA: exact decisions and rung contents, and its invariants under a fake loop."""

from __future__ import annotations

import math

import pytest

from raytuner.schedulers import ASHAScheduler, Decision

C, S, P = Decision.CONTINUE, Decision.STOP, Decision.PAUSE


def test_exact_decisions_and_rung_contents():
    asha = ASHAScheduler(max_resource=27, reduction_factor=3)  # rungs at 1, 3, 9
    assert [r.level for r in asha.rungs()] == [1, 3, 9]
    stream = [
        ("a", 0.5, C),  # first at the rung: always continues
        ("b", 0.7, S),  # cutoff = 0.5
        ("c", 0.3, C),  # cutoff = 0.5 + (0.7 - 0.5) / 3
        ("d", 0.55, S),  # cutoff = 0.3 + 0.2 * 2 / 3
        ("e", 0.5, C),  # cutoff = 0.5 exactly (position 1 of [.3 .5 .55 .7]): a tie continues
    ]
    assert [asha.on_result(t, 1, v) for t, v, _ in stream] == [d for *_, d in stream]
    assert asha.rungs()[0].values == {"a": 0.5, "b": 0.7, "c": 0.3, "d": 0.55, "e": 0.5}
    assert asha.on_result("a", 2, 0.1) is C  # between rungs: nothing recorded
    assert asha.on_result("a", 3, 0.4) is C
    assert asha.on_result("c", 2, 0.4) is C
    assert asha.on_result("c", 3, 0.45) is S
    assert asha.rungs()[1].values == {"a": 0.4, "c": 0.45}
    # Stopped trials get STOP for any late report, and are not recorded again.
    assert asha.on_result("c", 4, 0.0) is S
    assert asha.rungs()[1].values == {"a": 0.4, "c": 0.45}


def test_decision_points_are_the_next_rung_then_max_resource():
    asha = ASHAScheduler(max_resource=20, min_resource=2, reduction_factor=3)  # rungs 2, 6, 18
    asha.on_trial_add("a")
    assert asha.decision_point("a", 0) == 2
    assert asha.on_result("a", 1, 1.0) is C
    assert asha.decision_point("a", 1) == 2
    asha.on_result("a", 2, 1.0)
    assert asha.decision_point("a", 2) == 6
    asha.on_result("a", 18, 1.0)
    assert asha.decision_point("a", 18) == 20
    assert asha.on_result("a", 19, 1.0) is C
    assert asha.on_result("a", 20, 1.0) is Decision.COMPLETE  # resource >= R: the trial is done


def test_a_report_that_skips_rungs_is_judged_once_at_the_highest():
    asha = ASHAScheduler(max_resource=81, reduction_factor=3)  # rungs 1, 3, 9, 27
    for t, v in [("x", 0.2), ("y", 0.1)]:
        assert asha.on_result(t, 1, v) is C
        assert asha.on_result(t, 10, v) is C
    assert asha.on_result("z", 1, 0.3) is S  # cutoff at rung 1: 0.1 + 0.1 / 3
    assert asha.rungs()[1].values == {}
    assert asha.rungs()[2].values == {"x": 0.2, "y": 0.1}
    assert asha.decision_point("x", 10) == 27
    assert asha.on_result("x", 11, 5.0) is C  # never judged later at the skipped rung 3


def test_nan_ranks_worst_but_a_first_arrival_continues():
    asha = ASHAScheduler(max_resource=9)
    assert asha.on_result("a", 1, math.nan) is C
    assert asha.on_result("b", 1, 0.5) is C
    assert asha.on_result("c", 1, math.nan) is S
    assert asha.rungs()[0].values["c"] == math.inf


def test_brackets_start_at_r_eta_s_and_assignment_is_seeded():
    asha = ASHAScheduler(max_resource=81, reduction_factor=3, brackets=3, seed=7)
    assert [[r.level for r in asha.rungs(s)] for s in range(3)] == [[1, 3, 9, 27], [3, 9, 27], [9, 27]]
    ids = [f"t{i}" for i in range(3000)]
    for t in ids:
        asha.on_trial_add(t)
    counts = [sum(asha.bracket_of(t) == s for t in ids) for s in range(3)]
    # Hyperband's bracket sizes for the same first rungs: 81 : 34 : 15.
    for count, weight in zip(counts, [81, 34, 15]):
        assert abs(count / 3000 - weight / 130) < 0.03
    again = ASHAScheduler(max_resource=81, reduction_factor=3, brackets=3, seed=7)
    for t in reversed(ids):  # order does not matter
        again.on_trial_add(t)
    assert [again.bracket_of(t) for t in ids] == [asha.bracket_of(t) for t in ids]
    other = ASHAScheduler(max_resource=81, reduction_factor=3, brackets=3, seed=8)
    for t in ids:
        other.on_trial_add(t)
    assert [other.bracket_of(t) for t in ids] != [asha.bracket_of(t) for t in ids]


def test_stopping_variant_never_pauses_or_resumes(sim, iid):
    run = sim(lambda: ASHAScheduler(max_resource=27), iid(0), 60)
    assert all(d is not P for _, _, d in run.log)
    assert run.scheduler.choose_trial_to_resume() is None
    assert run.scheduler.trials_to_stop() == []


@pytest.mark.parametrize(
    ("max_resource", "min_resource", "eta", "brackets"),
    [(27, 1, 3, 1), (40, 4, 2, 1), (100, 3, 4, 2), (81, 1, 3, 5), (10, 10, 2, 1)],
)
def test_nothing_stops_below_its_first_rung_and_only_at_rungs(
    sim, iid, max_resource, min_resource, eta, brackets
):
    make = lambda: ASHAScheduler(max_resource, min_resource, eta, brackets)  # noqa: E731
    run = sim(make, iid(max_resource), 150, slots=5)
    asha = run.scheduler
    for trial_id, trial in run.trials.items():
        levels = [r.level for r in asha.rungs(asha.bracket_of(trial_id))]
        for resource, decision in trial.decisions:
            if decision is S:
                assert resource >= min_resource
                assert resource in levels or resource == max_resource
        assert trial.status == "stopped" or trial.resource == max_resource


def test_about_one_in_eta_pass_each_rung_with_iid_values(sim, iid):
    eta = 3
    run = sim(lambda: ASHAScheduler(max_resource=81, reduction_factor=eta), iid(1), 1500, slots=8)
    arrivals = [len(r.values) for r in run.scheduler.rungs()]
    assert arrivals[0] == 1500
    for here, there in zip(arrivals, arrivals[1:]):
        # Four binomial standard deviations; a rung's first arrivals pass more easily.
        assert abs(there / here - 1 / eta) < 4 * math.sqrt((1 / eta) * (1 - 1 / eta) / here)
