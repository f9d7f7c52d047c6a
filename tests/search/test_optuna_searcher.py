"""OptunaSearcher on a real Optuna, without Ray: the conversion table, the mapping of how
trials end to Optuna's states, equality with Optuna's own ask/tell loop, warm start,
state and restore, and the errors."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from raytuner.errors import ConfigError
from raytuner.search import FINISHED, OptunaSearcher, Outcome, TrialEnd, choice, grid, loguniform, qloguniform, quniform
from raytuner.search import randint, uniform
from raytuner.search._domains import Range
from raytuner.search import _optuna
from raytuner.search._optuna_space import distributions
from tests._helpers import EVERY_KIND

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_conversion_table():
    assert distributions(EVERY_KIND) == {
        "x": FloatDistribution(-5.0, 5.0),
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "n": IntDistribution(1, 3),
        "units": IntDistribution(16, 128, step=16),
        "drop": FloatDistribution(0.0, 1.0, step=0.25),  # the values round(u / q) * q takes
        "batch": FloatDistribution(8.0, 512.0, log=True),  # rounded to 8 in the config
        "act": CategoricalDistribution(["relu", "tanh", "elu"]),
        "opt": CategoricalDistribution([0, 1]),  # dict options: by index
        "opt[0].momentum": FloatDistribution(0.0, 0.99),
    }


@pytest.mark.parametrize("domain", [
    quniform(0, 0.9, 0.3), quniform(0, 2.1, 0.7),  # 3 × 0.3 = 0.8999999999999999
    quniform(0, 9, 3),  # ints: IntDistribution(0, 9, step=3)
    qloguniform(0.3, 1.2, 0.3), qloguniform(8, 48, 8),  # log: no step in Optuna, rounded in the config
    # Stored before bounds had to be multiples of q (Range, as from_json rebuilds them):
    Range(0, 1, q=0.3), Range(0, 10, q=3), Range(0.1, 1.0, log=True, q=0.3), Range(2, 50, log=True, q=8),
])
def test_every_value_a_q_range_samples_is_reachable(domain):
    rng = np.random.default_rng(0)
    values = sorted({domain.sample(rng) for _ in range(2000)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns where it shrinks a range it finds off the steps
        dist = distributions({"x": domain})["x"]
    if not domain.log:
        assert (dist.low, dist.high) == (pytest.approx(values[0], abs=1e-12), pytest.approx(values[-1], abs=1e-12))
    searcher = OptunaSearcher({"x": domain}, sampler=optuna.samplers.RandomSampler(seed=0))
    searcher.setup(None, 300)
    suggested = set()
    for i in range(300):
        suggested.add(searcher.suggest(str(i))["x"])
        searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, 0.0))
    assert sorted(suggested) == pytest.approx(values, abs=1e-12)


def test_configs_are_plain_python_inside_their_domains_and_conditional():
    searcher = OptunaSearcher(EVERY_KIND, seed=0)
    searcher.setup(None, 30)
    seen = set()
    for i in range(30):
        config = searcher.suggest(str(i))
        assert type(config["x"]) is float and type(config["n"]) is int and type(config["units"]) is int
        assert type(config["batch"]) is int and config["batch"] % 8 == 0
        assert config["units"] % 16 == 0 and config["drop"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert config["epochs"] == 5 and config["act"] in ("relu", "tanh", "elu")
        assert ("momentum" in config["opt"]) == (config["opt"]["name"] == "sgd")
        seen.add(config["opt"]["name"])
        params = searcher._study.trials[-1].params
        assert ("opt[0].momentum" in params) == (config["opt"]["name"] == "sgd")
        searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, config["x"] ** 2))
    assert seen == {"sgd", "adam"}


def test_equal_to_optunas_own_ask_tell_loop_with_the_same_seed():
    space = {"x": uniform(-5, 5), "lr": loguniform(1e-4, 1e-1), "n": randint(1, 4), "act": choice(["relu", "tanh"])}

    def objective(config):
        return (config["x"] - 1) ** 2 + math.log10(config["lr"]) ** 2 / 4 + config["n"] + (config["act"] == "tanh")

    searcher = OptunaSearcher(space, seed=7)
    searcher.setup(None, 25)
    ours = []
    for i in range(25):
        config = searcher.suggest(str(i))
        ours.append(config)
        searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, objective(config)))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7))
    theirs = []
    for _ in range(25):
        trial = study.ask()
        config = {"x": trial.suggest_float("x", -5, 5), "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                  "n": trial.suggest_int("n", 1, 3), "act": trial.suggest_categorical("act", ["relu", "tanh"])}
        theirs.append(config)
        study.tell(trial, objective(config))
    assert ours == theirs


def test_how_trials_end_in_optunas_states():
    searcher = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 10)
    for i in range(7):
        searcher.suggest(str(i))
    for step in (1, 2, 3):
        searcher.on_trial_result("1", step, 10.0 - step)
    searcher.on_trial_complete("0", Outcome(TrialEnd.COMPLETED, 0.5, 9, 9))
    searcher.on_trial_complete("1", Outcome(TrialEnd.STOPPED, 7.0, 3, 9))  # cut by the scheduler
    searcher.on_trial_complete("2", Outcome(TrialEnd.STOPPED, 0.25, 9, 9))  # stopped at full budget
    searcher.on_trial_complete("3", Outcome(TrialEnd.FAILED))
    searcher.on_trial_complete("4", Outcome(TrialEnd.COMPLETED, math.inf))
    searcher.on_trial_complete("5", Outcome(TrialEnd.STOPPED, 4.0, 2, 9))  # never reported: reported now
    trials = searcher._study.trials
    assert [(t.state, t.value) for t in trials] == [
        (TrialState.COMPLETE, 0.5),
        (TrialState.PRUNED, 7.0),
        (TrialState.COMPLETE, 0.25),
        (TrialState.FAIL, None),
        (TrialState.FAIL, None),
        (TrialState.PRUNED, 4.0),
        (TrialState.RUNNING, None),  # pending: RUNNING, as the constant liar expects
    ]
    assert trials[1].intermediate_values == {1: 9.0, 2: 8.0, 3: 7.0}
    assert trials[5].intermediate_values == {2: 4.0}


def test_a_repeated_step_after_a_resume_from_checkpoint_is_not_reported_twice():
    searcher = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 1)
    searcher.suggest("a")
    for step, value in [(1, 3.0), (2, 2.0), (2, 2.5), (3, 1.0)]:
        searcher.on_trial_result("a", step, value)
    searcher.on_trial_complete("a", Outcome(TrialEnd.STOPPED, 1.0, 3, 9))
    assert searcher._study.trials[0].intermediate_values == {1: 3.0, 2: 2.0, 3: 1.0}


def intermediate(searcher, trial_id):
    """The intermediate values Optuna holds for a trial, running or ended."""
    trial = searcher._trials[trial_id]
    return searcher._study._storage.get_trial(trial._trial_id).intermediate_values


@pytest.mark.parametrize("resources", [
    [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],  # fractional epochs: the whole ones used to be dropped
    [1, 1.5, 2, 3],  # whole at first, then not
    [0.25, 7.75, 8, 9],  # seconds, say
])
def test_each_report_is_sent_at_its_index_whatever_the_resource(resources):
    searcher = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 1)
    searcher.suggest("a")
    values = [10.0 - i for i in range(len(resources))]
    for resource, value in zip(resources, values):
        searcher.on_trial_result("a", resource, value)
    assert intermediate(searcher, "a") == {n: v for n, v in enumerate(values, start=1)}
    searcher.on_trial_complete("a", Outcome(TrialEnd.STOPPED, values[-1], resources[-1], 27))
    assert searcher._study.trials[0].state == TrialState.PRUNED
    assert searcher._study.trials[0].intermediate_values == {n: v for n, v in enumerate(values, start=1)}


def test_a_report_without_a_finite_value_keeps_its_index_and_is_not_sent():
    searcher = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 1)
    searcher.suggest("a")
    for resource, value in [(0.5, 3.0), (1.0, math.nan), (1.5, 1.0)]:
        searcher.on_trial_result("a", resource, value)
    assert intermediate(searcher, "a") == {1: 3.0, 3: 1.0}


def test_steps_go_on_after_a_restore_and_a_repeated_resource_is_not_sent():
    searcher = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 1)
    searcher.suggest("a")
    for resource, value in [(0.5, 3.0), (1.0, 2.0)]:
        searcher.on_trial_result("a", resource, value)
    twin = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    twin.restore(searcher.state())
    twin.setup(None, 1)
    for resource, value in [(1.0, 2.5), (1.5, 1.0)]:  # resumed from the checkpoint at 0.5: 1.0 again
        twin.on_trial_result("a", resource, value)
    assert intermediate(twin, "a") == {1: 3.0, 2: 2.0, 3: 1.0}


def test_a_trial_running_in_a_version_1_state_steps_on_after_its_resource_steps():
    # Version 1 sent a whole resource as the step: a trial that reported at 3, 6 and 9 has
    # steps 3, 6, 9, and its next report goes after them.
    searcher = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 1)
    searcher.suggest("a")
    trial = searcher._trials["a"]
    for step, value in [(3, 3.0), (6, 2.0), (9, 1.0)]:
        trial.report(value, step)
    payload = (searcher._study, searcher._trials, {"a": 3}, {"a": (9, 1.0)}, set())
    twin = OptunaSearcher({"x": uniform(0, 1)}, seed=0)
    twin.restore({"version": 1, "study": _optuna._dumps(payload)})
    twin.setup(None, 1)
    twin.on_trial_result("a", 12, 0.5)
    assert intermediate(twin, "a") == {3: 3.0, 6: 2.0, 9: 1.0, 10: 0.5}


def test_state_and_restore_continue_the_same_search_with_pending_trials():
    space = {"x": uniform(-5, 5), "y": uniform(-5, 5)}

    def drive(searcher, ids):
        out = []
        for trial_id in ids:
            config = searcher.suggest(trial_id)
            out.append(config)
            searcher.on_trial_complete(trial_id, Outcome(TrialEnd.COMPLETED, config["x"] ** 2 + config["y"] ** 2))
        return out

    first = OptunaSearcher(space, seed=3)
    first.setup(None, 40)
    drive(first, [str(i) for i in range(12)])
    first.suggest("pending")
    first.on_trial_result("pending", 1, 5.0)
    saved = first.state()
    after = drive(first, ["a", "b", "c"])

    resumed = OptunaSearcher(space, seed=3)
    resumed.restore(saved)
    resumed.setup(None, 40)
    assert drive(resumed, ["a", "b", "c"]) == after
    resumed.on_trial_result("pending", 2, 4.0)
    resumed.on_trial_complete("pending", Outcome(TrialEnd.STOPPED, 4.0, 2, 9))
    pending = resumed._study.trials[12]
    assert pending.state == TrialState.PRUNED and pending.intermediate_values == {1: 5.0, 2: 4.0}


def test_a_trial_corrected_after_a_resume_is_told_to_optuna_with_the_config_it_ran():
    """Optuna fixes an asked trial's parameters: the proposal gives way to a trial asked with
    the config the trial ran with, and the proposal ends FAIL, which samplers learn nothing from."""
    space = {"x": uniform(-5, 5), "k": choice(["a", "b"]), "n": randint(1, 10)}
    searcher = OptunaSearcher(space, seed=0)
    searcher.setup(None, 10)
    for i in range(3):
        config = searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, config["x"] ** 2))
    proposed = searcher.suggest("3")  # pending: a resume found trial 3 had run another config
    ran = {"x": 1.25, "k": "b", "n": 7}
    assert proposed != ran and searcher.correct_config("3", ran)
    restored = OptunaSearcher(space, seed=0)  # the correction is in the state a snapshot takes
    restored.restore(searcher.state())
    restored.setup(None, 10)
    for s in (searcher, restored):
        s.on_trial_result("3", 1, 9.0)
        s.on_trial_complete("3", Outcome(TrialEnd.STOPPED, 5.0, 2, 9))
        gave_way, took_over = s._study.trials[3:]
        assert gave_way.state == TrialState.FAIL and gave_way.params == proposed
        assert "ran with another config" in gave_way.user_attrs["raytuner"]
        assert took_over.state == TrialState.PRUNED and took_over.params == ran
        assert took_over.intermediate_values == {1: 9.0, 2: 5.0}
        assert not s.correct_config("3", ran)  # ended: it keeps what it was credited with
    searcher.suggest("4")
    assert not searcher.correct_config("5", ran)  # never proposed
    assert not searcher.correct_config("4", {"x": 50.0, "k": "a", "n": 1})  # outside the space
    searcher.on_trial_result("4", 1, 1.0)
    assert not searcher.correct_config("4", ran)  # it has reported under its proposal already


def test_warm_start_adds_trials_with_the_parameters_they_have():
    space = {"x": uniform(0, 1), "units": quniform(16, 128, 16), "opt": choice([{"name": "sgd", "m": uniform(0, 1)},
                                                                                 {"name": "adam"}])}
    warm = [
        ({"x": 0.5, "units": 32, "opt": {"name": "adam"}}, 1.0),
        ({"x": 0.2, "units": 64, "opt": {"name": "sgd", "m": 0.3}}, Outcome(TrialEnd.STOPPED, 2.0, 3, 9)),
        ({"x": 0.9, "units": 48, "opt": {"name": "adam"}}, None),
        ({"x": 7.0, "units": 16, "opt": {"name": "adam"}, "old": 1}, 3.0),  # x outside, "old" removed
    ]
    searcher = OptunaSearcher(space, seed=0, warm_start=warm)
    with pytest.warns(UserWarning, match=r"fitted 4 of 4 .*'old' \(1\).*'x' \(1\)"):
        searcher.setup(None, 5)
    trials = searcher._study.trials
    assert [(t.state, t.value) for t in trials] == [(TrialState.COMPLETE, 1.0), (TrialState.PRUNED, 2.0),
                                                    (TrialState.FAIL, None), (TrialState.COMPLETE, 3.0)]
    assert trials[0].params == {"x": 0.5, "units": 32, "opt": 1}
    assert trials[1].params == {"x": 0.2, "units": 64, "opt": 0, "opt[0].m": 0.3}
    assert trials[1].intermediate_values == {3: 2.0}
    assert trials[3].params == {"units": 16, "opt": 1}  # the value outside its domain is dropped
    config = searcher.suggest("0")
    assert set(config) == {"x", "units", "opt"}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_any_optuna_sampler():
    searcher = OptunaSearcher({"x": uniform(0, 1), "n": randint(0, 4)}, sampler=optuna.samplers.QMCSampler(seed=0))
    searcher.setup(None, 4)
    configs = [searcher.suggest(str(i)) for i in range(4)]
    assert len({c["x"] for c in configs}) == 4
    assert searcher.config() is None  # a sampler of the user's is pickled whole


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("sampler", ["grid", "brute force"])
def test_a_sampler_that_stops_the_study_ends_the_search_and_keeps_the_trial_that_ended_it(sampler):
    """GridSampler and BruteForceSampler call study.stop() once every point is taken: Optuna
    raises that outside study.optimize; here the trial is told all the same, and the search
    ends (FINISHED), also after a restore. (It raised, and the trial's end was lost.)"""
    space = {"x": choice([0.1, 0.2, 0.3])}
    if sampler == "grid":
        optuna_sampler = optuna.samplers.GridSampler({"x": [0.1, 0.2, 0.3]}, seed=0)
    else:
        optuna_sampler = optuna.samplers.BruteForceSampler(seed=0)
    searcher = OptunaSearcher(space, sampler=optuna_sampler)
    searcher.setup(None, 6)
    configs = [searcher.suggest(str(i)) for i in range(3)]
    assert sorted(c["x"] for c in configs) == [0.1, 0.2, 0.3]
    for i, config in enumerate(configs):
        searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, config["x"]))
    assert searcher.suggest("3") is FINISHED
    study = searcher._study
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert sorted(t.value for t in study.trials) == [0.1, 0.2, 0.3]
    restored = OptunaSearcher(space, sampler=optuna_sampler)
    restored.setup(None, 6)
    restored.restore(searcher.state())
    assert restored.suggest("4") is FINISHED


def test_a_grid_sampler_that_misses_a_parameter_is_refused_at_setup():
    sampler = optuna.samplers.GridSampler({"lr": [0.1, 0.2]}, seed=0)
    searcher = OptunaSearcher({"x": uniform(0, 1), "lr": choice([0.1, 0.2])}, sampler=sampler)
    with pytest.raises(ConfigError, match=r"GridSampler cannot sample this space \(parameters \['lr', 'x'\]\): "
                                          r"The parameter name, x, is not found in the given grid.*GridSearcher"):
        searcher.setup(None, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sampler": "tpe"}, r"`sampler` is 'tpe', but must be an Optuna sampler"),
        ({"sampler": optuna.samplers.TPESampler}, r"\(a class: call it\)"),
        ({"sampler": optuna.samplers.RandomSampler(), "seed": 1}, r"RandomSampler\(seed=1\)"),
        ({"seed": "0"}, r"`seed` is '0'"),
        ({"space": {"a": grid([1, 2])}}, r"grid\(\) axes.*GridSearcher"),
        ({"warm_start": [(1, 2)]}, r"`warm_start\[0\]` is \(1, 2\)"),
    ],
)
def test_bad_input_is_refused_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        OptunaSearcher(**kwargs)


def test_a_native_hyperopt_expression_is_refused_at_setup():
    from hyperopt import hp

    searcher = OptunaSearcher(seed=0)
    with pytest.raises(ConfigError, match=r"OptunaSearcher cannot read native hyperopt expressions.*HyperOptSearcher"):
        searcher.setup({"a": hp.uniform("a", 0, 1)}, 3)


def test_without_optuna_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an absent package looks like to import
    with pytest.raises(ConfigError, match=r'pip install "raytuner\[optuna\]"'):
        OptunaSearcher()
