"""Synchronous Hyperband: bracket plan, exact pause/resume/stop, and no stalls end to end."""

from __future__ import annotations

import pytest

from raytuner.schedulers import Decision, HyperbandScheduler

C, S, P = Decision.CONTINUE, Decision.STOP, Decision.PAUSE


def test_plan_matches_the_paper_for_r81_eta3():
    plan = HyperbandScheduler(max_resource=81, reduction_factor=3).plan()
    assert [(b.s, b.n, b.r) for b in plan] == [(4, 81, 1), (3, 34, 3), (2, 15, 9), (1, 8, 27), (0, 5, 81)]
    assert plan[0].rounds == ((81, 1), (27, 3), (9, 9), (3, 27), (1, 81))


def test_small_bracket_pauses_resumes_the_best_and_stops_the_rest():
    # R=9, eta=3: brackets (n, r) = (9, 1), (5, 3), (3, 9); fill the 9-trial bracket.
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    ids = [f"t{i}" for i in range(9)]
    for t in ids:
        hb.on_trial_add(t)
        assert hb.decision_point(t, 0) == 1
    values = {t: float(v) for t, v in zip(ids, [5, 3, 8, 1, 9, 2, 7, 4, 6])}
    for t in ids[:-1]:
        assert hb.on_result(t, 1, values[t]) is P
        assert hb.choose_trial_to_resume() is None  # the round is still open
        assert hb.trials_to_stop() == []
    # t8's report closes the round: floor(9/3) = 3 best resume (t3=1, t5=2, t1=3), the
    # other 6 stop; t8, a loser, gets STOP at once instead of a PAUSE.
    assert hb.on_result("t8", 1, values["t8"]) is S
    assert sorted(hb.trials_to_stop()) == ["t0", "t2", "t4", "t6", "t7"]
    assert hb.trials_to_stop() == []  # drained on read
    assert [hb.choose_trial_to_resume() for _ in range(4)] == ["t3", "t5", "t1", None]
    # Resumed trials count on from the milestone to the next one, 3.
    assert hb.decision_point("t3", 1) == 3
    assert hb.on_result("t3", 2, 0.5) is C
    assert [hb.on_result(t, 3, v) for t, v in [("t3", 0.5), ("t1", 0.9), ("t5", 0.1)]] == [P, P, C]
    assert hb.trials_to_stop() == ["t3", "t1"]
    assert hb.choose_trial_to_resume() is None  # t5 closed the round and won: it went on
    # The last round runs to R and completes there.
    assert hb.decision_point("t5", 3) == 9
    assert [hb.on_result("t5", r, 0.1) for r in range(4, 10)] == [C] * 5 + [Decision.COMPLETE]


def test_a_resume_replays_reports_of_trials_resumed_meanwhile_and_then_says_which_are_paused():
    """A resume feeds the reports made since the saved state again, without the
    choose_trial_to_resume calls between them: a paused winner that reports again was
    resumed, and must still count as paused when it reaches the next milestone. Then
    on_trial_restore says which trials the folders have paused."""
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    ids = [f"t{i}" for i in range(9)]
    for t in ids:
        hb.on_trial_add(t)
    for t, v in zip(ids, [5, 3, 8, 1, 9, 2, 7, 4, 6]):
        hb.on_result(t, 1, float(v))  # the round closes: t3, t5 and t1 go on
    hb.trials_to_stop()
    assert [hb.on_result(t, 3, v) for t, v in [("t3", 0.5), ("t5", 0.1)]] == [P, P]  # no resume in between
    assert hb.on_result("t1", 3, 0.9) is S and hb.trials_to_stop() == ["t3"]  # all three ranked: t5 wins
    # As the folders say: t5 paused (the last run did not resume it before it died); a
    # trial this scheduler ended stays ended, whatever they say.
    hb.on_trial_restore("t5", {}, paused=True)
    hb.on_trial_restore("t3", {}, paused=False)
    assert hb.choose_trial_to_resume() == "t5"
    assert hb.on_result("t3", 4, 0.1) is S


def test_a_trial_running_again_after_reaching_the_milestone_is_ranked_and_a_loss_stops_it():
    """After a resume, a trial whose pause the last run decided but never recorded runs again
    (its folder says RUNNING) though it reached the milestone: it is ranked with the
    others, and as a loser it gets STOP at its next report instead of running to the end."""
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    ids = [f"t{i}" for i in range(9)]
    for t in ids:
        hb.on_trial_add(t)
    for t, v in zip(ids[:-1], [5, 3, 8, 1, 9, 2, 7, 4]):
        hb.on_result(t, 1, float(v))
    hb.on_trial_restore("t4", {}, paused=False)  # value 9: a loser once the round closes
    assert hb.on_result("t8", 1, 6.0) is S
    assert "t4" not in hb.trials_to_stop()  # not paused: nothing to stop now
    assert hb.on_result("t4", 2, 0.1) is S


def test_a_partly_filled_bracket_is_closed_by_on_search_finished():
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    for t, v in [("a", 3.0), ("b", 1.0)]:
        hb.on_trial_add(t)
        assert hb.on_result(t, 1, v) is P
    assert hb.choose_trial_to_resume() is None
    hb.on_search_finished()
    # max(1, floor(2/3)) = 1 survivor: a partly filled bracket still runs its best to R.
    assert hb.trials_to_stop() == ["a"]
    assert hb.choose_trial_to_resume() == "b"
    assert hb.on_result("b", 3, 0.5) is C  # alone in its round: it closes it and wins
    assert hb.on_result("b", 9, 0.2) is Decision.COMPLETE


def test_trials_that_end_early_do_not_hold_up_the_round():
    hb = HyperbandScheduler(max_resource=3, reduction_factor=3)  # brackets (3 @ 1), (2 @ 3)
    for t in "abc":
        hb.on_trial_add(t)
    assert hb.on_result("a", 1, 2.0) is P
    hb.on_trial_error("b")
    assert hb.choose_trial_to_resume() is None
    # floor(3/3) = 1 of the 3 that entered: c, which closes the round and goes on.
    assert hb.on_result("c", 1, 1.0) is C
    assert hb.trials_to_stop() == ["a"]
    assert hb.choose_trial_to_resume() is None


def test_a_winner_removed_while_waiting_is_skipped():
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    for i in range(9):
        hb.on_trial_add(f"t{i}")
        hb.on_result(f"t{i}", 1, float(i))
    hb.on_trial_remove("t0")
    assert [hb.choose_trial_to_resume() for _ in range(3)] == ["t1", "t2", None]


def test_new_trials_after_search_finished_get_a_closed_bracket_each():
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    hb.on_search_finished()
    hb.on_trial_add("late")
    assert hb.bracket_of("late") == (0, 2)
    assert hb.on_result("late", 1, 1.0) is C
    assert hb.decision_point("late", 1) == 3


def test_brackets_fill_largest_n_first_then_cycle():
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
    for i in range(9 + 5 + 3 + 1):
        hb.on_trial_add(f"t{i}")
    assert [hb.bracket_of(f"t{i}")[1] for i in (0, 8, 9, 13, 14, 16, 17)] == [2, 2, 1, 1, 0, 0, 2]


def test_nan_ranks_worst():
    hb = HyperbandScheduler(max_resource=3, reduction_factor=3)
    for t, v in [("a", float("nan")), ("b", 5.0), ("c", 9.0)]:
        hb.on_trial_add(t)
        hb.on_result(t, 1, v)
    assert hb.choose_trial_to_resume() == "b"


PAIRS = [
    (r, eta)
    for eta in (2, 3, 4)
    for r in (1, 2, 3, 4, 5, 8, 9, 10, 16, 27, 30, 64, 81, 100)
]


@pytest.mark.parametrize(("max_resource", "eta"), PAIRS)
def test_end_to_end_every_trial_ends_and_brackets_match_the_plan(sim, curves, max_resource, eta):
    make = lambda: HyperbandScheduler(max_resource=max_resource, reduction_factor=eta)  # noqa: E731
    plan = make().plan()
    full = sum(b.n for b in plan)
    # One full Hyperband iteration plus a partly filled bracket that on_search_finished closes.
    extra = max(1, plan[0].n // 2)
    run = sim(make, curves(max_resource * 10 + eta), full + extra, slots=4)
    assert all(t.status in ("completed", "stopped") for t in run.trials.values())
    brackets: dict[int, list[str]] = {}
    for trial_id in run.trials:
        brackets.setdefault(run.scheduler.bracket_of(trial_id)[0], []).append(trial_id)
    assert [len(brackets[k]) for k in sorted(brackets)] == [b.n for b in plan] + [extra]
    for k, b in enumerate(plan):
        # Exactly n_i trials reach r_i in every round of a full bracket.
        reached = [
            sum(run.max_resource_of(t) >= r_i for t in brackets[k]) for _, r_i in b.rounds
        ]
        assert reached == [n_i for n_i, _ in b.rounds], (k, b)
        assert max(run.max_resource_of(t) for t in brackets[k]) == max_resource
    # Resumed trials continue their count: every history goes 1, 2, 3, ... without restarts.
    for trial in run.trials.values():
        assert [r for r, _ in trial.history] == list(range(1, trial.resource + 1))


@pytest.mark.parametrize("slots", [1, 3, 50])
def test_no_stall_with_failures_and_any_number_of_slots(sim, iid, slots):
    make = lambda: HyperbandScheduler(max_resource=27, reduction_factor=3)  # noqa: E731
    run = sim(make, iid(slots), 70, slots=slots, length=20)  # trainables end before R
    assert all(t.status in ("completed", "stopped") for t in run.trials.values())
    assert any(t.status == "completed" for t in run.trials.values())


def test_after_a_reopened_search_new_trials_fill_a_new_bracket_normally():
    hb = HyperbandScheduler(max_resource=9, reduction_factor=3)  # brackets (9 @ 1), (5 @ 3), (3 @ 9)
    for t, v in [("a", 3.0), ("b", 1.0)]:
        hb.on_trial_add(t)
        assert hb.on_result(t, 1, v) is P
    hb.on_search_finished()  # closes bracket 0 with 2 of its 9: b wins, a stops
    assert hb.trials_to_stop() == ["a"]
    hb.on_search_reopened()
    # The closed bracket stays closed (its round was judged); the new trials fill the next
    # one of the plan, s = 1: 5 trials from r = 3, not a closed bracket each.
    new = ["c", "d", "e", "f", "g"]
    for t in new:
        hb.on_trial_add(t)
    assert [hb.bracket_of(t) for t in new] == [(1, 1)] * 5
    hb.on_trial_add("h")  # the bracket is full: the next plan, s = 0
    assert hb.bracket_of("h") == (2, 0)
    assert hb.choose_trial_to_resume() == "b"
    # The round waits for all 5, then floor(5/3) = 1 best (e) resumes; the rest stop.
    values = {"c": 4.0, "d": 2.0, "e": 1.0, "f": 5.0, "g": 3.0}
    assert [hb.on_result(t, 3, values[t]) for t in new] == [P, P, P, P, S]
    assert sorted(hb.trials_to_stop()) == ["c", "d", "f"]
    assert hb.choose_trial_to_resume() == "e"
