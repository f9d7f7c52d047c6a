"""Differential tests: stopping ASHA and median stopping against Ray Tune's own schedulers.

Ray Tune's schedulers are driven directly with fake trials and result dicts; Ray itself is
never started. Both see the same interleaved random streams, reporting 1, 2, 3, ... (no
skipped rungs, no NaN: the intended differences are tested in the unit tests), and must
make the same decision at every report.
"""

from __future__ import annotations

import random

import pytest

from raytuner.schedulers import ASHAScheduler, Decision, MedianStoppingScheduler

tune_schedulers = pytest.importorskip("ray.tune.schedulers")


class FakeTrial:
    """What Ray's schedulers read from a trial: its id (and identity, as a dict key)."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


class FakeController:
    """MedianStoppingRule asks for live trials only to decide whether to yield."""

    def get_live_trials(self) -> list:
        return []


def interleaved_reports(num_trials: int, length: int, seed: int, round_to: int | None):
    """Yield (trial index, resource, loss) with trials interleaving at random."""
    rng = random.Random(seed)
    quality = [rng.random() for _ in range(num_trials)]
    progress = [0] * num_trials
    live = list(range(num_trials))
    while live:
        i = rng.choice(live)
        progress[i] += 1
        loss = quality[i] + rng.gauss(0, 0.3) / progress[i]
        if round_to is not None:
            loss = round(loss, round_to)  # many exact ties
        stop = yield i, progress[i], loss
        if stop or progress[i] == length:
            live.remove(i)


def run_both(ours, theirs, num_trials, length, seed, round_to=None, assign=None, on_differ=None):
    """Feed both schedulers the same stream; return (stopped ids, decisions compared).

    A differing decision fails the test unless ``on_differ(trial_id, resource, loss,
    ours, ray's)`` accepts it; the trial then reports no more, to either scheduler, so
    their states stay the same.
    """
    trials = [FakeTrial(f"t{i}") for i in range(num_trials)]
    controller = FakeController()
    for trial in trials:
        ours.on_trial_add(trial.trial_id)
        theirs.on_trial_add(controller, trial)
        if assign is not None:
            assign(trial.trial_id)
    stream = interleaved_reports(num_trials, length, seed, round_to)
    stopped, decisions, stop = [], 0, None
    try:
        i, resource, loss = next(stream)
        while True:
            trial = trials[i]
            mine = ours.on_result(trial.trial_id, resource, loss)
            result = {"training_iteration": resource, "loss": loss}
            ray_decision = theirs.on_trial_result(controller, trial, result)
            decisions += 1
            # Ray answers STOP at max_t where we answer COMPLETE (the full budget is reached):
            # for the training loop both end the trial now.
            stop = mine in (Decision.STOP, Decision.COMPLETE)
            if (Decision.STOP if mine is Decision.COMPLETE else mine).name != ray_decision:
                assert on_differ is not None, (trial.trial_id, resource, loss, mine, ray_decision)
                on_differ(trial.trial_id, resource, loss, mine, ray_decision)
                stop = True
            if stop:
                stopped.append(trial.trial_id)
            i, resource, loss = stream.send(stop)
    except StopIteration:
        pass
    return stopped, decisions


@pytest.mark.parametrize(
    ("max_t", "grace", "eta", "seed"),
    [(27, 1, 3, 0), (81, 1, 3, 1), (64, 2, 2, 2), (100, 1, 4, 3), (50, 3, 3, 4), (30, 1, 2.5, 5)],
)
def test_stopping_asha_stops_the_same_trials_as_ray_tune(max_t, grace, eta, seed):
    ours = ASHAScheduler(max_resource=max_t, min_resource=grace, reduction_factor=eta)
    theirs = tune_schedulers.AsyncHyperBandScheduler(
        time_attr="training_iteration", metric="loss", mode="min",
        max_t=max_t, grace_period=grace, reduction_factor=eta, brackets=1,
    )
    stopped, decisions = run_both(ours, theirs, 120, max_t, seed)
    assert decisions > 120 * eta
    assert 0 < len(stopped) <= 120


def test_on_ties_only_an_exact_tie_with_the_cutoff_differs():
    """Intended difference: a value equal to the cutoff continues here, always.

    Ray means the same (it stops on ``reward < cutoff``), but it computes the percentile's
    position as ``(1 - 1/eta) * 100 / 100 * (n - 1)``, which float error puts a few ulp past
    an order statistic (20.000000000000004 for n = 31, eta = 3), so its cutoff sits just
    inside the tied value and the tie stops. Here the position is ``(n - 1) / eta``.
    """
    ours = ASHAScheduler(max_resource=27, reduction_factor=3)
    theirs = tune_schedulers.AsyncHyperBandScheduler(
        time_attr="training_iteration", metric="loss", mode="min", max_t=27, reduction_factor=3
    )
    cutoffs = {}
    ties = []

    original = ours.on_result

    def on_result(trial_id, resource, value):
        rung = next((r for r in ours.rungs() if r.level == resource), None)
        cutoffs[trial_id, resource] = rung.cutoff(3) if rung is not None else None
        return original(trial_id, resource, value)

    ours.on_result = on_result

    def on_differ(trial_id, resource, loss, mine, ray_decision):
        assert (mine, ray_decision) == (Decision.CONTINUE, "STOP")
        assert loss == cutoffs[trial_id, resource]
        ties.append(trial_id)

    stopped, decisions = run_both(ours, theirs, 150, 27, seed=11, round_to=1, on_differ=on_differ)
    assert 0 < len(ties) < decisions / 20
    assert len(stopped) > 100


def test_several_brackets_match_given_the_same_assignment():
    ours = ASHAScheduler(max_resource=81, reduction_factor=3, brackets=3, seed=5)
    theirs = tune_schedulers.AsyncHyperBandScheduler(
        time_attr="training_iteration", metric="loss", mode="min",
        max_t=81, reduction_factor=3, brackets=3,
    )

    def assign(trial_id: str) -> None:
        # Ray draws brackets from numpy's global random state; use ours for both.
        theirs._trial_info[trial_id] = theirs._brackets[ours.bracket_of(trial_id)]

    stopped, _ = run_both(ours, theirs, 150, 81, seed=6, assign=assign)
    assert len({ours.bracket_of(t) for t in stopped}) == 3


@pytest.mark.parametrize(("grace", "min_samples", "seed"), [(1, 3, 0), (5, 3, 1), (3, 1, 2), (2, 6, 3)])
def test_median_stopping_matches_ray_tune(grace, min_samples, seed):
    ours = MedianStoppingScheduler(grace_period=grace, min_samples_required=min_samples)
    theirs = tune_schedulers.MedianStoppingRule(
        time_attr="training_iteration", metric="loss", mode="min",
        grace_period=grace, min_samples_required=min_samples,
    )
    # Trials are never completed: Ray counts a completed trial's last result twice.
    stopped, _ = run_both(ours, theirs, 40, 30, seed)
    assert 0 < len(stopped) < 40
