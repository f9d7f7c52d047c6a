"""Several objectives in raytuner.schedulers: the contract, ASHA (stopping and promotion)
and Hyperband ranking by the Pareto order, with exact decisions on synthetic streams."""

from __future__ import annotations

import math
import pickle
import random
import time
from fractions import Fraction

import pytest

import raytuner.schedulers as schedulers
from raytuner.errors import ConfigError, ProtocolError
from raytuner.schedulers import (
    ASHAScheduler,
    Decision,
    FIFOScheduler,
    HyperbandScheduler,
    MedianStoppingScheduler,
    Scheduler,
)
from raytuner.schedulers._base import MULTI_OBJECTIVE
from raytuner.schedulers._rungs import in_pareto_top, pareto_top_size, stopping_cutoff

C, S, P, DONE = Decision.CONTINUE, Decision.STOP, Decision.PAUSE, Decision.COMPLETE
METRICS = ["val_loss", "latency"]


def two(make):
    """``make`` with two objectives."""
    def made() -> Scheduler:
        scheduler = make()
        scheduler.set_objectives(METRICS)
        return scheduler
    return made


def pairs(seed: int):
    """Two i.i.d. uniform objectives per (trial, resource), reproducible."""
    def values(trial_id: str, resource: int) -> tuple[float, float]:
        r = random.Random(f"{seed}/{trial_id}/{resource}")
        return r.random(), r.random()
    return values


# -- the contract ---------------------------------------------------------------------------


def test_the_list_of_multi_objective_schedulers_in_messages_is_the_true_one():
    takes = sorted(name for name in schedulers.__all__
                   if name.endswith("Scheduler") and name != "Scheduler"
                   and getattr(schedulers, name).supports_multi_objective)
    assert takes == sorted(MULTI_OBJECTIVE.replace(" or ", ", ").split(", "))


def test_median_stopping_refuses_several_objectives():
    with pytest.raises(ConfigError) as error:
        MedianStoppingScheduler().set_objectives(METRICS)
    assert str(error.value) == (
        "MedianStoppingScheduler is single-objective (it compares a trial's best value with the median "
        "of running means of one value); with metric=['val_loss', 'latency'] use ASHAScheduler, "
        "HyperbandScheduler or FIFOScheduler."
    )
    MedianStoppingScheduler().set_objectives(["val_loss"])


def test_a_scheduler_of_ones_own_is_single_objective_unless_it_says_so():
    class Mine(Scheduler):
        def on_result(self, trial_id, resource, value):
            return C

    with pytest.raises(ConfigError, match=r"^Mine is single-objective; with 2 objectives use ASHAScheduler"):
        Mine().set_objectives(2)
    Mine().set_objectives(1)


@pytest.mark.parametrize("objectives", [0, True, "val_loss", [], ["a", "a"], [1, 2]])
def test_a_bad_objectives_argument(objectives):
    with pytest.raises(ConfigError, match=r"ASHAScheduler: `objectives` is .*, but must be an int >= 1 or a list"):
        ASHAScheduler(9).set_objectives(objectives)


@pytest.mark.parametrize("make", [lambda: ASHAScheduler(9), lambda: HyperbandScheduler(9)])
def test_a_state_of_another_number_of_objectives_is_refused(make):
    saved = two(make)().state()
    with pytest.raises(ConfigError, match=r"the experiment has 1 objective\(s\), but the saved state has 2"):
        scheduler = make()
        scheduler.set_objectives(1)
        scheduler.restore(saved)
    restored = make()
    restored.restore(saved)
    assert restored.num_objectives == 2
    with pytest.raises(ConfigError, match=r"the saved state has 2 objective\(s\), but the experiment has 3"):
        restored.set_objectives(3)
    old = {key: value for key, value in make().state().items() if key != "objectives"}
    make().restore(old)  # a state from before several objectives has one


@pytest.mark.parametrize("make", [lambda: ASHAScheduler(9), lambda: HyperbandScheduler(9)])
def test_values_of_another_shape_are_the_controllers_bug(make):
    scheduler = two(make)()
    with pytest.raises(ProtocolError, match=r"reported value 0.5, but the experiment has 2 objectives"):
        scheduler.on_result("a", 1, 0.5)


def test_fifo_takes_several_objectives_and_ignores_them():
    fifo = two(lambda: FIFOScheduler(max_resource=2))()
    assert [fifo.on_result("a", r, (r, -r)) for r in (1, 2)] == [C, DONE]


# -- ASHA, stopping ------------------------------------------------------------------------


def test_asha_stopping_exact_decisions():
    asha = two(lambda: ASHAScheduler(max_resource=9, reduction_factor=3))()
    stream = [
        ("a", (1, 5), C),  # the first at a rung continues
        # 1 recorded: the top floor(0/3) + 1 = 1 place. (1, 5) and (5, 1) make one front
        # and add the same hypervolume: the earlier trial keeps the place.
        ("b", (5, 1), S),
        ("c", (0.5, 0.5), C),  # dominates both
        ("d", (2, 2), S),  # 3 recorded: still 1 place, c's
        # 4 recorded: floor(3/3) + 1 = 2 places. Front 0 is c and e, which add the same
        # volume, 0.11 of the box between them: c first, e second.
        ("e", (0.4, 6), C),
        ("f", (math.nan, 0), S),  # a NaN entry: diverged
        # 6 recorded: 2 places. Front 0 is now c, e and f (+inf, 0); g is dominated by c.
        ("g", (1, 1), S),
    ]
    assert [asha.on_result(t, 1, v) for t, v, _ in stream] == [d for _, _, d in stream]
    # Rung 3: c continues as the first there; a, second, is dominated by it.
    assert [asha.on_result("c", 3, (1, 1)), asha.on_result("a", 3, (2, 2))] == [C, S]
    assert asha.on_result("c", 9, (0.5, 0.5)) is DONE
    assert asha.rungs()[0].values["f"] == (math.inf, 0.0)


def test_top_size_is_the_place_of_the_single_objective_cutoff():
    assert [pareto_top_size(n, 3) for n in range(1, 11)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    assert pareto_top_size(5, Fraction(5, 2)) == 2  # floor(4 / 2.5) + 1, exactly


def test_stopping_agrees_with_the_single_objective_rule_where_it_does_not_interpolate():
    # A constant second objective leaves the first's order; without ties and at n with an
    # integral position (n - 1) / eta, the cutoff is an order statistic and the rules agree.
    rng = random.Random(0)
    for _ in range(300):
        eta = rng.choice([2, 3, 4])
        n = eta * rng.randint(0, 5) + 1
        recorded = [rng.random() for _ in range(n)]
        value = rng.random()
        single = value <= stopping_cutoff(sorted(recorded), eta)
        assert in_pareto_top([(v, 0.0) for v in recorded], (value, 0.0), eta) == single


# -- ASHA, promotion -----------------------------------------------------------------------


def test_asha_promotion_exact_decisions():
    asha = two(lambda: ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion"))()
    stream = [
        ("a", (1, 5), P),
        ("b", (5, 1), P),
        # 3 at the rung: floor(3/3) = 1 promotable. One front; with reference (5.4, 5.4), c
        # adds 3.4^2, a and b 4.4 * 0.4 each: c is the next promotion, so it goes on.
        ("c", (2, 2), C),
        ("d", (0.5, 6), P),  # 4: still 1, c (a front of four, reference (5.45, 6.5))
        ("e", (0.1, 0.1), C),  # 5: 1, e (it dominates everyone)
        ("f", (3, 3), P),  # 6: 2, e then c of the second front
        ("g", (4, 4), P),
        ("h", (4.5, 4.5), P),
        # 9: 3 promotable: e, c, then in the front a, b, c, d after c, a adds (2 - 1)(6.5 - 5)
        # = 1.5, d 0.75 and b 0.45: a, paused, is the next promotion.
        ("i", (5, 5), P),
    ]
    assert [asha.on_result(t, 1, v) for t, v, _ in stream] == [d for _, _, d in stream]
    assert asha.choose_trial_to_resume() == "a"
    assert asha.choose_trial_to_resume() is None
    assert asha.rungs()[0].ranked() == ["e", "c", "a", "b", "d", "f", "g", "h", "i"]  # then b: 0.45, d: 0.25


def test_promotion_with_a_constant_second_objective_decides_as_with_one(sim, iid):
    # (v, 0) orders as v does, ties by arrival: the same promotions, pauses and stops.
    def flat(values):
        return lambda t, r: (values(t, r), 0.0)

    for make in (lambda: ASHAScheduler(27, reduction_factor=3, variant="promotion"),
                 lambda: ASHAScheduler(81, reduction_factor=3, brackets=3, variant="promotion"),
                 lambda: HyperbandScheduler(27, reduction_factor=3)):
        one = sim(make, iid(3), 80, slots=4)
        both = sim(two(make), flat(iid(3)), 80, slots=4)
        assert both.log == one.log


# -- Hyperband -----------------------------------------------------------------------------


def test_hyperband_keeps_the_first_of_the_pareto_order():
    # R = 3, eta = 3: the first bracket runs 3 trials to 1 and keeps max(1, floor(3/3)) = 1.
    hb = two(lambda: HyperbandScheduler(max_resource=3, reduction_factor=3))()
    for trial_id in "abc":
        hb.on_trial_add(trial_id)
    # One front; c adds the most hypervolume (as in the promotion test above).
    assert [hb.on_result("a", 1, (1, 5)), hb.on_result("c", 1, (2, 2))] == [P, P]
    assert hb.on_result("b", 1, (5, 1)) is S  # closes the round, and loses it
    assert hb.trials_to_stop() == ["a"]
    assert hb.choose_trial_to_resume() == "c"


# -- whole runs ------------------------------------------------------------------------------


MAKERS = {
    "asha-stopping": lambda: ASHAScheduler(27, reduction_factor=3),
    "asha-promotion": lambda: ASHAScheduler(27, reduction_factor=3, variant="promotion"),
    "async-hyperband": lambda: ASHAScheduler(81, reduction_factor=3, brackets=3, variant="promotion"),
    "hyperband": lambda: HyperbandScheduler(27, reduction_factor=3),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_whole_runs_do_not_stall_and_a_restored_twin_decides_the_same(sim, name):
    make = two(MAKERS[name])
    plain = sim(make, pairs(1), 80, slots=3, steps=(1, 2, 5))
    restored = sim(make, pairs(1), 80, slots=3, steps=(1, 2, 5), roundtrip_every=9)
    assert restored.log == plain.log
    assert pickle.loads(pickle.dumps(plain.scheduler.state())) == plain.scheduler.state()
    reached = [t for t in plain.trials.values() if t.resource >= 27]
    assert 0 < len(reached) < 80


def test_about_one_in_eta_pass_each_rung(sim):
    run = sim(two(lambda: ASHAScheduler(9, reduction_factor=3)), pairs(2), 600, slots=4)
    at_3 = sum(t.resource >= 3 for t in run.trials.values())
    # i.i.d. values: each arrival continues with chance near 1/3 (the top third by rank).
    assert 600 / 3 * 0.75 < at_3 < 600 / 3 * 1.25


def test_a_large_rung_decides_fast():
    asha = two(lambda: ASHAScheduler(9, reduction_factor=3, variant="promotion"))()
    values = pairs(4)
    began = time.perf_counter()
    for i in range(400):
        asha.on_result(f"t{i}", 1, values(f"t{i}", 1))
        asha.choose_trial_to_resume()
    # Measured: about 0.4 s for 400 arrivals (each ranks the top of the rung anew).
    assert time.perf_counter() - began < 10
