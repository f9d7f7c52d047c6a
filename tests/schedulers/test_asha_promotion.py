"""Promotion ASHA (the paper's algorithm): pauses, promotions, trials_to_stop, end to end."""

from __future__ import annotations

import pytest

from raytuner.schedulers import ASHAScheduler, Decision
from raytuner.schedulers._rungs import num_promotable

C, S, P = Decision.CONTINUE, Decision.STOP, Decision.PAUSE


def promotion(max_resource=9, **kwargs):
    return ASHAScheduler(max_resource=max_resource, variant="promotion", **kwargs)


def test_exact_pauses_and_promotions():
    asha = promotion()  # rungs at 1, 3; R = 9
    assert asha.on_result("a", 1, 0.5) is P
    assert asha.choose_trial_to_resume() is None  # floor(1/3) = 0: nobody yet
    assert asha.on_result("b", 1, 0.2) is P
    assert asha.on_result("c", 1, 0.9) is P  # floor(3/3) = 1: b, not c
    assert asha.choose_trial_to_resume() == "b"
    assert asha.choose_trial_to_resume() is None  # b is the whole top 1
    assert asha.decision_point("b", 1) == 3
    assert asha.on_result("b", 2, 0.3) is C  # the count goes on from the rung
    assert asha.on_result("b", 3, 0.1) is P
    for t, v in [("d", 0.6), ("e", 0.7)]:
        assert asha.on_result(t, 1, v) is P
    # floor(5/3) = 1 at rung 1 still: only b, already promoted.
    assert asha.choose_trial_to_resume() is None
    # f is the best at rung 1 and floor(6/3) = 2: the slot it frees would go straight back.
    assert asha.on_result("f", 1, 0.1) is C
    assert asha.rungs()[0].promoted == {"b", "f"}
    assert asha.on_result("f", 3, 0.05) is P
    assert asha.rungs()[1].values == {"b": 0.1, "f": 0.05}
    assert asha.on_result("g", 1, 0.8) is P
    assert asha.on_result("h", 1, 0.85) is P
    assert asha.on_result("i", 1, 0.95) is P
    # Rung 1 (level 3) has 2 trials: floor(2/3) = 0. Rung 0 has 9: top 3 = f, b, a.
    assert asha.choose_trial_to_resume() == "a"
    assert asha.choose_trial_to_resume() is None


def test_highest_rung_first():
    asha = promotion(max_resource=27)  # rungs 1, 3, 9
    for i in range(9):
        assert asha.on_result(f"t{i}", 1, 0.1 * (i + 1)) is P
    assert [asha.choose_trial_to_resume() for _ in range(4)] == ["t0", "t1", "t2", None]
    for t, v in [("t0", 0.3), ("t1", 0.1), ("t2", 0.2)]:
        assert asha.on_result(t, 3, v) is P
    for i in range(9, 12):
        assert asha.on_result(f"t{i}", 1, 1.0 + i) is P
    # Rung 1 (3 trials) can promote t1 and rung 0 (12 trials, top 4) t3: rung 1 goes first.
    assert [asha.choose_trial_to_resume() for _ in range(3)] == ["t1", "t3", None]


def test_a_resumed_trial_without_checkpoint_may_start_over_once():
    asha = promotion()
    for t, v in [("a", 0.1), ("b", 0.2), ("c", 0.3)]:
        asha.on_result(t, 1, v)
    assert asha.choose_trial_to_resume() == "a"
    assert asha.on_result("a", 1, 0.1) is C  # restarted from scratch: allowed once
    assert asha.decision_point("a", 1) == 3  # rung 1 was already passed
    assert asha.on_result("a", 2, 0.1) is C
    with pytest.raises(ValueError, match=r"trial 'a' reported resource 2 after 2"):
        asha.on_result("a", 2, 0.1)


def test_trials_to_stop_after_the_search_finished_and_nothing_runs():
    asha = promotion()
    for t, v in [("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)]:
        asha.on_trial_add(t)
    for t, v in [("a", 0.1), ("b", 0.2), ("c", 0.3)]:
        asha.on_result(t, 1, v)
    assert asha.trials_to_stop() == []  # new trials may still come
    asha.on_search_finished()
    assert asha.trials_to_stop() == []  # d still runs
    # d's report leaves nothing running and nothing promotable beyond a: a is promoted.
    assert asha.on_result("d", 1, 0.4) is P
    assert asha.trials_to_stop() == []
    assert asha.choose_trial_to_resume() == "a"
    assert asha.on_result("a", 3, 0.1) is S  # last one running, and no promotion left
    assert sorted(asha.trials_to_stop()) == ["b", "c", "d"]
    assert asha.trials_to_stop() == []  # drained


def test_a_resume_replays_reports_of_trials_promoted_meanwhile_and_then_says_which_are_paused():
    """A resume feeds the reports made since the saved state again, without the
    choose_trial_to_resume calls between them: a paused trial that reports again was
    promoted, and is not promoted twice. Then on_trial_restore says which trials the
    folders have paused, and which run."""
    asha = promotion()
    for t in "abc":
        asha.on_trial_add(t)
    assert [asha.on_result(t, 1, v) for t, v in [("a", 0.1), ("b", 0.2), ("c", 0.3)]] == [P, P, P]
    assert asha.on_result("a", 2, 0.05) is C  # a was promoted (top 1 of 3) before this report
    assert asha.rungs()[0].promoted == {"a"}
    asha.on_search_finished()
    for t in "bc":
        asha.on_trial_restore(t, {}, paused=True)
    asha.on_trial_restore("a", {}, paused=False)
    assert asha.choose_trial_to_resume() is None  # not a again
    # Alone at rung 3 (floor(1/3) = 0), the search over, nothing else running: a stops, and
    # so do b and c, which nothing can promote any more.
    assert asha.on_result("a", 3, 0.04) is S
    assert sorted(asha.trials_to_stop()) == ["b", "c"]


def test_a_reopened_search_pauses_at_rungs_again_and_a_later_trial_can_promote():
    def started():
        asha = promotion()  # rungs at 1, 3; R = 9
        for t in "ab":
            asha.on_trial_add(t)
        assert asha.on_result("a", 1, 0.5) is P  # b still runs
        asha.on_search_finished()
        return asha

    # The search over and nothing else running: b, the last to reach rung 1, stops there
    # (floor(2/3) = 0 promotable), and a, which nothing can promote, is handed over.
    ended = started()
    assert ended.on_result("b", 1, 0.1) is S
    assert ended.trials_to_stop() == ["a"]
    # Reopened (num_trials raised): new trials may promote b, so it pauses, and nothing
    # is handed over.
    asha = started()
    asha.on_search_reopened()
    assert asha.on_result("b", 1, 0.1) is P
    assert asha.trials_to_stop() == []
    # A third trial at rung 1: floor(3/3) = 1 promotable, the best of a (0.5), b (0.1), c (0.9).
    asha.on_trial_add("c")
    assert asha.on_result("c", 1, 0.9) is P
    assert asha.choose_trial_to_resume() == "b"
    assert asha.on_result("b", 3, 0.1) is P  # alone at rung 3, c and the search still to end
    asha.on_search_finished()
    assert asha.trials_to_stop() == ["a", "b", "c"]  # nothing runs, nothing promotable


def test_paused_trials_that_fail_are_not_promoted():
    asha = promotion()
    for t, v in [("a", 0.1), ("b", 0.2), ("c", 0.3)]:
        asha.on_result(t, 1, v)
    asha.on_trial_error("a")
    # a keeps its place in the rung's top 1, so nobody else takes it.
    assert asha.choose_trial_to_resume() is None
    assert asha.rungs()[0].values["a"] == 0.1


CASES = [(9, 1, 3, 1), (27, 1, 3, 1), (81, 1, 3, 3), (64, 2, 2, 1), (100, 1, 4, 2), (30, 1, 2.5, 1)]


@pytest.mark.parametrize(("max_resource", "min_resource", "eta", "brackets"), CASES)
@pytest.mark.parametrize("slots", [1, 4])
def test_end_to_end_no_stall_and_promoted_trials_reach_the_next_rung(
    sim, curves, max_resource, min_resource, eta, brackets, slots
):
    make = lambda: ASHAScheduler(  # noqa: E731
        max_resource, min_resource, eta, brackets, variant="promotion"
    )
    run = sim(make, curves(int(max_resource)), 120, slots=slots)
    asha = run.scheduler
    assert all(t.status in ("completed", "stopped") for t in run.trials.values())
    for s in range(brackets):
        rungs = asha.rungs(s)
        for k, rung in enumerate(rungs):
            top = rung.ranked()[: num_promotable(len(rung.values), eta)]
            # Once nothing can be promoted, each rung has promoted its top floor(n/eta), and
            # maybe more: trials promoted early that better late arrivals pushed out of it.
            assert set(top) <= rung.promoted
            above = rungs[k + 1].values if k + 1 < len(rungs) else {
                t for t in rung.promoted if run.trials[t].resource >= max_resource
            }
            assert set(above) == rung.promoted
    for trial in run.trials.values():
        # Never promoted twice from a rung: one pause per rung at most, each resumed once.
        pauses = [r for r, d in trial.decisions if d is P]
        assert len(pauses) == len(set(pauses))
        assert trial.resumes <= len(pauses)
        assert [r for r, _ in trial.history] == list(range(1, trial.resource + 1))


def test_about_one_in_eta_reach_each_rung_with_iid_values(sim, iid):
    run = sim(lambda: promotion(max_resource=81), iid(3), 1000, slots=8)
    arrivals = [len(r.values) for r in run.scheduler.rungs()]
    assert arrivals[0] == 1000
    for here, there in zip(arrivals, arrivals[1:]):
        # At least floor(n/eta) (the top is always promoted in the end); late arrivals
        # that push promoted trials out of the top add a few more.
        assert here // 3 <= there <= here / 3 * 1.2 + 2, arrivals


def test_too_few_trials_for_any_to_reach_max_resource_warn_when_the_experiment_is_checked():
    """The audit's sweep: R=27, eta=3, 20 trials; rungs 1, 3, 9 promote about 20/27 trials to
    the full budget, and none trained to 27."""
    from raytuner.search import RandomSearcher

    with pytest.warns(UserWarning, match=(
            r"ASHAScheduler\(variant='promotion'\) with 20 trials: a rung promotes from the top floor\(n/eta\) of "
            r"the n trials that reached it, so about n/eta\*\*k reach rung k, and with K=3 rungs below "
            r"max_resource=27 \(at 1, 3, 9\) and reduction_factor=3, floor\(20/3\*\*3\) = 0: no trial may train to "
            r"max_resource .* num_trials >= eta\*\*K = 27, or pass variant='stopping' .* brackets=4 .* a larger "
            r"min_resource \(min_resource=3 leaves 2 rung\(s\): 9 trials\)")):
        promotion(27).check_experiment(None, RandomSearcher(), 20)


@pytest.mark.parametrize(("scheduler", "num_trials"), [
    (promotion(27), 27),  # floor(27/27) = 1
    (ASHAScheduler(max_resource=27), 2),  # stopping: every trial that passes a rung trains on
    (promotion(27, brackets=2), 9),  # bracket 1 has rungs 3, 9: eta**2 = 9
    (promotion(3, min_resource=3), 1),  # no rung below R
])
def test_enough_trials_or_another_variant_do_not_warn(scheduler, num_trials, recwarn):
    from raytuner.search import RandomSearcher

    scheduler.check_experiment(None, RandomSearcher(), num_trials)
    assert not [w for w in recwarn if "no trial may train" in str(w.message)]


def test_a_grids_trials_count_in_all():
    from raytuner.search import GridSearcher, grid

    searcher = GridSearcher()
    searcher.setup({"x": grid(list(range(9)))}, 3)  # 27 trials
    promotion(27).check_experiment(None, searcher, 3)
