"""Diverged values: NaN, +inf and -inf all rank worst in every scheduler that ranks.

Values reach schedulers signed to minimise, so a loss that diverged to -inf (mode="min")
and one that reached +inf under mode="max" both arrive as -inf. Ranked as they are, they
would be the best value of a rung or a population: the cutoff every later trial must beat.
"""

from __future__ import annotations

import math

import pytest

from raytuner.schedulers import (
    ASHAScheduler,
    Decision,
    HyperbandScheduler,
    MedianStoppingScheduler,
    PB2Scheduler,
    PBTScheduler,
)
from raytuner.schedulers._rungs import Rung, nan_to_worst
from raytuner.search import uniform

C, S, P = Decision.CONTINUE, Decision.STOP, Decision.PAUSE
DIVERGED = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", DIVERGED)
def test_nan_to_worst_maps_every_non_finite_value_to_plus_inf(bad):
    assert nan_to_worst(bad) == math.inf
    assert nan_to_worst(-2.5) == -2.5


@pytest.mark.parametrize("bad", DIVERGED)
def test_stopping_asha_a_diverged_first_arrival_is_not_the_cutoff(bad):
    # The audit's stream: a trial diverges at rung 1 first, the others are finite.
    asha = ASHAScheduler(max_resource=9, reduction_factor=3)
    assert asha.on_result("neg", 1, bad) is C  # the first at a rung always continues
    assert asha.rungs()[0].values["neg"] == math.inf
    # Rung [inf]: 3.0 is not worse than a diverged trial. With -inf as the cutoff it stopped.
    assert asha.on_result("a", 1, 3.0) is C
    # [3, inf]: position 1/3 next to an infinite value: the finite neighbour, 3.0.
    assert asha.on_result("b", 1, 2.0) is C
    # [2, 3, inf]: position 2/3 -> 2 + (3 - 2) * 2/3; 1.0 passes, 4.0 does not.
    assert asha.on_result("c", 1, 1.0) is C
    assert asha.on_result("d", 1, 4.0) is S
    # And a diverged value arriving later stops, whatever its sign.
    assert asha.on_result("e", 1, bad) is S


@pytest.mark.parametrize("bad", DIVERGED)
def test_promotion_asha_never_promotes_a_diverged_trial(bad):
    asha = ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion")
    for trial_id, value in [("neg", bad), ("a", 0.5), ("b", 0.7)]:
        assert asha.on_result(trial_id, 1, value) is P
    # floor(3/3) = 1 promotion: the best finite value, not the -inf one.
    assert asha.choose_trial_to_resume() == "a"


@pytest.mark.parametrize("bad", DIVERGED)
def test_multi_objective_asha_a_diverged_entry_is_the_worst_in_its_objective(bad):
    asha = ASHAScheduler(max_resource=9, reduction_factor=3)
    asha.set_objectives(["loss", "latency"])
    assert asha.on_result("a", 1, (1.0, 1.0)) is C
    # (-inf, 2) would dominate nothing and be on the front with a; as (+inf, 2) it stops.
    assert asha.on_result("neg", 1, (bad, 2.0)) is S
    assert asha.rungs()[0].values["neg"] == (math.inf, 2.0)


@pytest.mark.parametrize("bad", DIVERGED)
def test_hyperband_resumes_a_finite_trial_over_a_diverged_one(bad):
    hb = HyperbandScheduler(max_resource=3, reduction_factor=3)
    for trial_id, value in [("neg", bad), ("b", 5.0)]:
        hb.on_trial_add(trial_id)
        assert hb.on_result(trial_id, 1, value) is P
    hb.on_trial_add("c")
    assert hb.on_result("c", 1, 9.0) is S  # closes the round: floor(3/3) = 1 goes on
    assert hb.choose_trial_to_resume() == "b"
    assert hb.trials_to_stop() == ["neg"]


@pytest.mark.parametrize("bad", DIVERGED)
def test_median_stopping_a_diverged_value_is_never_a_trials_best(bad):
    rule = MedianStoppingScheduler(grace_period=1, min_samples_required=1)
    assert rule.on_result("a", 1, 5.0) is C
    # Its best so far is the diverged value: worse than the median 5.0 (a -inf beat it).
    assert rule.on_result("neg", 1, bad) is S


@pytest.mark.parametrize("bad", DIVERGED)
@pytest.mark.parametrize("kind", [PBTScheduler, PB2Scheduler])
def test_pbt_and_pb2_rank_a_diverged_trial_last(kind, bad):
    pbt = kind(2, {"lr": uniform(0.0, 10.0)}, resample_probability=0.0, seed=0)
    for i in range(4):
        pbt.on_trial_add(f"t{i}")
        pbt.on_trial_config(f"t{i}", {"lr": 0.1 * (i + 1)})
    pbt.on_search_finished()
    for trial_id, value in [("t1", 0.5), ("t2", 0.4), ("t3", 0.1)]:
        assert pbt.on_result(trial_id, 2, value) is C
    # t0 is the bottom quantile: it exploits the top (t3), and is never a donor itself.
    assert pbt.on_result("t0", 2, bad) is P
    (exploit,) = pbt.exploits()
    assert (exploit.trial_id, exploit.donor) == ("t0", "t3")


def test_a_rung_saved_with_minus_inf_restores_it_as_the_worst():
    rung = Rung.from_state({"level": 1, "values": [("neg", -math.inf), ("a", 0.5), ("m", [-math.inf, 1.0])],
                            "promoted": []})
    assert rung.values == {"neg": math.inf, "a": 0.5, "m": (math.inf, 1.0)}


def test_pbt_and_median_states_saved_with_minus_inf_restore_it_as_the_worst():
    pbt = PBTScheduler(2, {"lr": uniform(0.0, 10.0)})
    pbt.on_trial_add("t0")
    state = pbt.state()
    state["members"]["t0"]["score"] = -math.inf
    pbt.restore(state)
    assert pbt._members["t0"].score == math.inf
    rule = MedianStoppingScheduler(grace_period=1, min_samples_required=1)
    rule.on_result("neg", 1, 1.0)
    state = rule.state()
    state["histories"]["neg"]["best"] = -math.inf
    rule.restore(state)
    assert rule._histories["neg"].best == math.inf
