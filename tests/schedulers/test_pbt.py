"""PBTScheduler: exact decisions and exploits on synthetic result streams, synchronous and
not, with more trials than slots, state round trips, and bad input."""

from __future__ import annotations

import json
import math
import pickle

import pytest

from raytuner.errors import ConfigError, ResourceError
from raytuner.schedulers import Decision, Exploit, PBTScheduler, from_config
from raytuner.search import GridSearcher, RandomSearcher, choice, loguniform, uniform

C, P, S = Decision.CONTINUE, Decision.PAUSE, Decision.STOP


def population(n=4, *, interval=2, finished=True, **kwargs):
    """A PBT over trials t0..t{n-1} with lr = 0.1 (i + 1); doubling, never resampling."""
    kwargs = {"resample_probability": 0.0, "perturbation_factors": (2.0,), **kwargs}
    pbt = PBTScheduler(interval, {"lr": uniform(0.0, 10.0)}, **kwargs)
    for i in range(n):
        pbt.on_trial_add(f"t{i}")
        pbt.on_trial_config(f"t{i}", {"lr": 0.1 * (i + 1), "units": 8})
    if finished:
        pbt.on_search_finished()
    return pbt


def test_between_perturbations_a_trial_continues_and_the_decision_point_is_one_interval_on():
    pbt = population(interval=3)
    assert pbt.decision_point("t0", 0) == 3
    assert [pbt.on_result("t0", r, 1.0) for r in (1, 2)] == [C, C]
    assert pbt.on_result("t0", 3, 1.0) is C  # alone with a score: nothing to rank against
    assert pbt.decision_point("t0", 3) == 6
    # `>=`: a report jumping past the point is perturbed there, and the next is 3 after it.
    assert pbt.on_result("t0", 7, 1.0) is C and pbt.decision_point("t0", 7) == 10


def test_the_bottom_quantile_exploits_the_top_one_with_the_donors_config_explored():
    pbt = population(4)
    # Ranked as they arrive: t3 (0.1) best; t0 is worst once 4 are ranked (ceil(4/4) = 1).
    assert [pbt.on_result(t, 2, v) for t, v in [("t1", 0.5), ("t2", 0.4), ("t3", 0.1)]] == [C, C, C]
    assert pbt.exploits() == []
    assert pbt.on_result("t0", 2, 0.9) is P
    assert pbt.exploits() == [Exploit("t0", "t3", {"lr": pytest.approx(0.8), "units": 8})]
    assert pbt.exploits() == []  # drained on read
    # The clone restarts at its donor's checkpoint: its resource may go back, and its next
    # perturbation is one interval after the donor's last.
    assert pbt.choose_trial_to_resume() == "t0"
    assert pbt.decision_point("t0", 1) == 4
    assert pbt.on_result("t0", 2, 0.2) is C  # the donor's point: no perturbation yet
    assert pbt.on_result("t0", 3, 0.2) is C


def test_quantile_sizes_follow_ray_tune_ceil_n_q_capped_at_half():
    pbt = population(5, quantile_fraction=0.5)
    # Each arrival is the best so far: nobody exploits.
    assert [pbt.on_result(t, 2, v) for t, v in [("t0", 0.4), ("t1", 0.3), ("t2", 0.2), ("t3", 0.1)]] == [C] * 4
    # n = 5 ranked: ceil(2.5) = 3 > 5/2, so 2 in each quantile; t4 (0.25) is in the middle.
    assert pbt.on_result("t4", 2, 0.25) is C and pbt.exploits() == []
    assert pbt._quantiles() == (["t1", "t0"], ["t3", "t2"])


def test_a_nan_ranks_worst_and_a_clone_is_not_ranked_until_it_reports():
    pbt = population(4)
    for t, v in [("t1", 0.5), ("t2", 0.4), ("t3", 0.1)]:
        pbt.on_result(t, 2, v)
    assert pbt.on_result("t0", 2, math.nan) is P
    (exploit,) = pbt.exploits()
    assert exploit.trial_id == "t0"
    assert "t0" not in pbt._ranked()
    pbt.choose_trial_to_resume()
    pbt.on_result("t0", 3, 0.3)
    assert "t0" in pbt._ranked()


def test_with_more_trials_than_slots_a_trial_pauses_for_those_behind_and_the_furthest_behind_resumes():
    pbt = population(3, finished=False)
    # The population is still starting: a perturbed trial gives its slot to a new one.
    assert pbt.on_result("t0", 2, 0.1) is P
    assert pbt.choose_trial_to_resume() is None  # start the others first
    pbt.on_search_finished()
    assert pbt.on_result("t1", 2, 0.05) is C  # the best, and nobody waits further back than 2
    assert pbt.on_result("t1", 4, 0.05) is P  # t0 waits at 2
    assert pbt.choose_trial_to_resume() == "t0"
    assert pbt.choose_trial_to_resume() == "t1"
    assert pbt.choose_trial_to_resume() is None


def test_of_trials_paused_at_one_point_the_one_paused_first_resumes_first_not_a_clone_that_came_after():
    # A clone restarts at its donor's point, where others often wait. Resumed ahead of them
    # (by trial id, as before), with a value that grows with training (a loss that overfits)
    # it trained one interval, ranked worst against their older scores, was cloned back to
    # that point, and again: the trials waiting there never ran (a live sweep looped forever).
    pbt = population(3, finished=False)
    assert pbt.on_result("t2", 2, 0.1) is P  # waits for the trials not started yet
    assert pbt.on_result("t0", 2, 0.9) is P  # the worst of two: a clone of t2, at t2's point
    assert [(e.trial_id, e.donor) for e in pbt.exploits()] == [("t0", "t2")]
    pbt.on_search_finished()
    assert pbt.choose_trial_to_resume() == "t2"  # waiting since before the clone was made
    assert pbt.choose_trial_to_resume() == "t0"
    # The order survives a driver restart (the saved state).
    again = population(3, finished=False)
    again.on_result("t2", 2, 0.1), again.on_result("t0", 2, 0.9), again.exploits(), again.on_search_finished()
    restored = population(3)
    restored.restore(pickle.loads(pickle.dumps(again.state())))
    assert restored.choose_trial_to_resume() == "t2"


def test_a_reopened_search_makes_paused_trials_wait_for_the_new_members():
    pbt = population(2)
    pbt.on_search_reopened()  # num_trials raised: t2 is still to start
    assert pbt.on_result("t0", 2, 0.1) is P  # the best, yet it gives its slot to t2
    assert pbt.choose_trial_to_resume() is None  # start t2 first
    pbt.on_trial_add("t2")
    pbt.on_trial_config("t2", {"lr": 0.3, "units": 8})
    pbt.on_search_finished()
    assert pbt.choose_trial_to_resume() == "t0"
    # Without the reopen, t0 had gone on: nobody waits further back than it.
    assert population(2).on_result("t0", 2, 0.1) is C


def test_synchronous_pbt_a_reopened_search_holds_the_round_for_the_new_members():
    pbt = population(2, synch=True)
    pbt.on_search_reopened()
    assert [pbt.on_result(t, 2, v) for t, v in [("t0", 0.9), ("t1", 0.2)]] == [P, P]
    assert pbt.exploits() == []  # every live trial is at the barrier, but t2 is still to come
    pbt.on_trial_add("t2")
    pbt.on_trial_config("t2", {"lr": 0.3, "units": 8})
    assert pbt.on_result("t2", 2, 0.1) is P  # the search is open: no round yet
    pbt.on_search_finished()  # the round, over all three: ceil(3/4) = 1, t0 exploits t2
    assert pbt.exploits() == [Exploit("t0", "t2", {"lr": pytest.approx(0.6), "units": 8})]
    assert sorted(pbt.choose_trial_to_resume() for _ in range(3)) == ["t0", "t1", "t2"]


def test_synchronous_pbt_waits_for_the_whole_population_then_exploits_at_once():
    pbt = population(4, synch=True)
    assert [pbt.on_result(t, 2, v) for t, v in [("t0", 0.9), ("t1", 0.2), ("t2", 0.3)]] == [P, P, P]
    assert pbt.exploits() == [] and pbt.choose_trial_to_resume() is None  # all wait at the barrier
    assert pbt.on_result("t3", 1, 0.1) is C
    # The last to arrive (best) goes on at once; the worst (t0) exploits the best (t3).
    assert pbt.on_result("t3", 2, 0.1) is C
    assert pbt.exploits() == [Exploit("t0", "t3", {"lr": pytest.approx(0.8), "units": 8})]
    assert pbt.describe() == "population 4, 1 exploits, barrier 4"
    assert sorted(pbt.choose_trial_to_resume() for _ in range(3)) == ["t0", "t1", "t2"]
    assert pbt.choose_trial_to_resume() is None


def test_synchronous_pbt_a_trial_that_ends_before_the_barrier_releases_it():
    pbt = population(3, synch=True)
    assert [pbt.on_result(t, 2, v) for t, v in [("t0", 0.9), ("t1", 0.2)]] == [P, P]
    pbt.on_trial_complete("t2")
    assert [e.trial_id for e in pbt.exploits()] == ["t0"]
    assert sorted([pbt.choose_trial_to_resume(), pbt.choose_trial_to_resume()]) == ["t0", "t1"]


def test_synchronous_pbt_sets_the_next_barrier_past_every_trial_so_those_waiting_go_on():
    """Trials perturbed past the barrier (a resume restored the scheduler from an older
    state, so they went on from their checkpoints): the round's next barrier is one interval
    past the one furthest ahead, not at it, or the trials waiting there are never resumed."""
    pbt = population(3, synch=True)
    assert [pbt.on_result(t, 5, v) for t, v in [("t0", 0.9), ("t1", 0.2)]] == [P, P]
    assert pbt.on_result("t2", 5, 0.1) is C  # at or past the barrier (2): the round
    assert pbt.describe() == "population 3, 1 exploits, barrier 7"
    assert sorted([pbt.choose_trial_to_resume(), pbt.choose_trial_to_resume()]) == ["t0", "t1"]


def test_an_ended_trial_gets_stop_and_is_never_a_donor():
    pbt = population(3)
    pbt.on_result("t0", 2, 0.1)
    pbt.on_trial_complete("t0")
    assert pbt.on_result("t0", 3, 0.1) is S
    assert pbt.on_result("t1", 2, 0.5) is C and pbt.on_result("t2", 2, 0.9) is P
    assert [e.donor for e in pbt.exploits()] == ["t1"]


def test_resources_must_increase_except_after_a_clone_or_a_resume():
    pbt = population(2)
    pbt.on_result("t0", 2, 0.1)
    with pytest.raises(ResourceError):
        pbt.on_result("t0", 2, 0.1)
    pbt.on_trial_restore("t0", {"lr": 0.3, "units": 8}, paused=False)  # a resumed driver: it may start over
    assert pbt.on_result("t0", 1, 0.1) is C


def test_the_same_seed_gives_the_same_donors_and_configs():
    def run(seed):
        pbt = population(8, seed=seed, resample_probability=0.5, perturbation_factors=(0.8, 1.2))
        for step in (2, 4):
            for i in range(8):
                pbt.on_result(f"t{i}", step, (i * 7 % 8) / (step + 1))
                pbt.choose_trial_to_resume()
        return [(e.trial_id, e.donor, e.config["lr"]) for e in pbt.exploits()]

    assert run(3) == run(3) and run(3) != run(4)


def test_state_round_trip_mid_run_decides_the_same():
    def stream(pbt, start, stop):
        out = []
        for step in range(start, stop):
            for i in range(6):
                out.append(pbt.on_result(f"t{i}", step, ((i + step) * 5 % 6) / step))
                out.append(pbt.choose_trial_to_resume())
            out.append([(e.trial_id, e.donor, e.config) for e in pbt.exploits()])
        return out

    plain = population(6, synch=True, resample_probability=0.3, perturbation_factors=(0.8, 1.2), seed=2)
    expected = stream(plain, 1, 9)
    first = population(6, synch=True, resample_probability=0.3, perturbation_factors=(0.8, 1.2), seed=2)
    head = stream(first, 1, 5)
    again = PBTScheduler(**{k: v for k, v in json.loads(json.dumps(first.config())).items() if k != "type"})
    again.restore(pickle.loads(pickle.dumps(first.state())))
    assert head + stream(again, 5, 9) == expected


def test_config_is_json_and_rebuilds_it():
    pbt = PBTScheduler(4, {"lr": loguniform(1e-4, 1e-1), "act": choice(["relu", "tanh"]), "bs": [16, 32]},
                       quantile_fraction=0.5, synch=True, resource_attr="epoch", seed=3)
    stored = json.loads(json.dumps(pbt.config()))
    assert stored["mutations"] == {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                                   "act": {"type": "choice", "options": ["relu", "tanh"]}, "bs": [16, 32]}
    rebuilt = from_config(stored)
    assert type(rebuilt) is PBTScheduler and rebuilt.config() == stored
    assert pbt.milestones() == {"kind": "interval", "levels": [], "pauses": True, "max_resource": math.inf,
                                "interval": 4, "synch": True}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"perturbation_interval": 0}, "`perturbation_interval` is 0, but must be a finite number > 0"),
    ({"perturbation_interval": -2}, "`perturbation_interval` is -2"),
    ({"perturbation_interval": math.inf}, "`perturbation_interval` is inf"),
    ({"quantile_fraction": 0}, "`quantile_fraction` is 0, but must be a number in \\(0, 0.5\\]"),
    ({"quantile_fraction": 0.6}, "`quantile_fraction` is 0.6"),
    ({"quantile_fraction": math.nan}, "`quantile_fraction` is nan"),
    ({"resample_probability": 1.5}, "`resample_probability` is 1.5"),
    ({"perturbation_factors": ()}, "`perturbation_factors` is \\(\\)"),
    ({"perturbation_factors": (0.8, -1)}, "`perturbation_factors`"),
    ({"synch": "yes"}, "`synch` is 'yes'"),
    ({"mutations": {}}, "`mutations` is \\{\\}, but must be a non-empty dict"),
    ({"mutations": {"lr": 3}}, "`mutations\\['lr'\\]` is 3"),
    ({"mutations": {"opt": choice([{"name": "sgd"}])}}, "a choice of constants"),
])
def test_bad_arguments_are_refused_naming_the_argument_and_value(kwargs, match):
    args = {"perturbation_interval": 2, "mutations": {"lr": uniform(0, 1)}, **kwargs}
    with pytest.raises(ConfigError, match=match):
        PBTScheduler(**args)


def test_a_mutation_outside_the_space_and_a_learning_searcher_are_refused():
    pbt = PBTScheduler(2, {"lr": uniform(0, 1), "model.units": [8, 16]})
    space = {"lr": 0.1, "model": {"units": 8, "layers": 2}}
    pbt.check_experiment(space, RandomSearcher(), 8)
    pbt.check_experiment(space, GridSearcher(), 8)
    with pytest.raises(ConfigError, match=r"`mutations` has 'momentum', which is not in the search space \(its keys: "
                                          r"lr, model.layers, model.units\)"):
        PBTScheduler(2, {"momentum": [0.9]}).check_experiment(space, RandomSearcher(), 8)
    from raytuner.search import TPESearcher

    with pytest.raises(ConfigError, match="combines only with .* RandomSearcher or GridSearcher .* TPESearcher would "
                                          "learn from configs that PBT changes"):
        pbt.check_experiment(space, TPESearcher(), 8)


def test_at_max_resource_a_trial_completes_unperturbed_and_is_never_a_donor():
    pbt = population(3, interval=3, max_resource=4)
    assert pbt.decision_point("t0", 0) == 3
    assert pbt.on_result("t0", 3, 0.1) is C
    assert pbt.decision_point("t0", 3) == 4  # the next point (6) is past the budget
    assert pbt.on_result("t0", 4, 0.1) is Decision.COMPLETE
    assert pbt.on_result("t1", 3, 0.5) is C and pbt.on_result("t2", 3, 0.9) is P
    assert [e.donor for e in pbt.exploits()] == ["t1"]  # not t0, which is done


def test_a_resumed_driver_tells_a_stale_state_which_trials_wait_paused():
    pbt = population(3)
    stale = pbt.state()  # saved before anything reported
    pbt.on_result("t0", 2, 0.1)
    assert pbt.on_result("t1", 2, 0.9) is P  # exploits t0; its folder says PAUSED
    again = population(3)
    again.restore(stale)
    again.on_trial_restore("t0", {"lr": 0.1, "units": 8}, paused=False)
    again.on_trial_restore("t1", {"lr": 0.2, "units": 8}, paused=True)
    again.on_trial_restore("t2", {"lr": 0.3, "units": 8}, paused=False)
    assert again.choose_trial_to_resume() == "t1" and again.choose_trial_to_resume() is None
    assert again.on_result("t0", 1, 0.1) is C  # restarted below what the state had seen: allowed


def test_a_clone_waiting_for_its_launch_across_a_driver_restart_keeps_its_config_and_stays_unranked():
    pbt = population(4)
    for t, v in [("t1", 0.5), ("t2", 0.4), ("t3", 0.1)]:
        pbt.on_result(t, 2, v)
    assert pbt.on_result("t0", 2, 0.9) is P
    (exploit,) = pbt.exploits()
    again = population(4)
    again.restore(pickle.loads(pickle.dumps(pbt.state())))
    # The driver hands back the config each trial runs next with: for t0, its exploit's.
    again.on_trial_restore("t0", exploit.config, paused=True)
    for i in (1, 2, 3):
        again.on_trial_restore(f"t{i}", {"lr": 0.1 * (i + 1), "units": 8}, paused=False)
    assert "t0" not in again._ranked()  # its score is its old model's, as before the restart
    assert again._members["t0"].config == exploit.config
    # Given its old config instead (a state saved before the exploit), it is an ordinary member.
    stale = population(4)
    stale.restore(pickle.loads(pickle.dumps(pbt.state())))
    stale.on_trial_restore("t0", {"lr": 0.1, "units": 8}, paused=True)
    assert "t0" in stale._ranked()


def test_a_stale_state_restored_with_each_trials_resource_perturbs_one_interval_on_not_one_report_later():
    pbt = population(3)
    stale = pbt.state()  # the state is saved at most once a second: here, before the perturbations at 2
    for t, v in [("t0", 0.1), ("t1", 0.9), ("t2", 0.5)]:
        pbt.on_result(t, 2, v)
    configs = {f"t{i}": {"lr": 0.1 * (i + 1), "units": 8} for i in range(3)}
    again = population(3)
    again.restore(pickle.loads(pickle.dumps(stale)))
    for t, config in configs.items():
        again.on_trial_restore(t, config, paused=False, resource=2)  # fed up to 2 before the driver died
    assert again.decision_point("t0", 2) == 4
    assert again.on_result("t0", 3, 0.1) is C and again._members["t0"].point == 2
    assert again.on_result("t2", 3, 0.5) is C and again.exploits() == []
    # Irregular resources: the latest point a perturbation every interval reached (0 -> 4 -> 8 of 9.5).
    again.on_trial_restore("t1", configs["t1"], paused=False, resource=9.5)
    assert again._members["t1"].point == 8
    # Without the resource (the contract before), the stale point 0 perturbed t0 again at 3.
    old = population(3)
    old.restore(pickle.loads(pickle.dumps(stale)))
    for t, config in configs.items():
        old.on_trial_restore(t, config, paused=False)
    old.on_result("t0", 3, 0.1)
    assert old._members["t0"].point == 3


def test_a_stale_state_restored_with_each_trials_value_ranks_by_the_perturbations_it_missed():
    """The state predates the perturbations at 2 and 4 of the two good trials (they paused
    at 4); the poor ones restart from 0. Told each trial's value at its last fed resource,
    the resumed population ranks the good ones by it: the poor ones clone them at 4, not
    each other (before, their scores stayed None and a poor trial was a donor)."""
    pbt = population(4)
    stale = pbt.state()
    for resource in (2, 4):
        pbt.on_result("t2", resource, 0.3)
        pbt.on_result("t3", resource, 0.4)
    again = population(4)
    again.restore(pickle.loads(pickle.dumps(stale)))
    configs = {f"t{i}": {"lr": 0.1 * (i + 1), "units": 8} for i in range(4)}
    again.on_trial_restore("t2", configs["t2"], paused=True, resource=4, value=0.3)
    again.on_trial_restore("t3", configs["t3"], paused=True, resource=4, value=0.4)
    for t in ("t0", "t1"):
        again.on_trial_restore(t, configs[t], paused=False)
    assert again._ranked() == ["t2", "t3"]
    assert again.on_result("t0", 2, 2.35) is P and again.on_result("t1", 2, 2.3) is P
    assert sorted((e.trial_id, e.donor) for e in again.exploits()) == [("t0", "t2"), ("t1", "t2")]
    # Without the values (the contract before), the good trials kept no score: unranked.
    old = population(4)
    old.restore(pickle.loads(pickle.dumps(stale)))
    for t in ("t2", "t3"):
        old.on_trial_restore(t, configs[t], paused=True, resource=4)
    assert "t2" not in old._ranked() and "t3" not in old._ranked()
