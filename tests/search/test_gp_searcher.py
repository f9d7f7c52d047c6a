"""GPSearcher driven with synthetic results, without Ray: it learns, spreads pending trials,
treats each kind of ending as documented, is deterministic, resumes, and refuses bad input."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from raytuner.errors import ConfigError
from raytuner.search import GPSearcher, Outcome, RandomSearcher, TrialEnd, choice, grid, loguniform, randint, uniform
from raytuner.search import _gp
from raytuner.search._gp_encoding import DROPPED, MISSING

SPACE = {"x": uniform(-5, 5), "y": uniform(-5, 5)}
FAST = {"n_restarts": 0, "n_candidates": 300}  # unit tests need the behaviour, not the polish


def quadratic(config):
    return (config["x"] - 1.3) ** 2 + (config["y"] + 0.7) ** 2


def run(searcher, objective, n, prefix=""):
    configs = []
    for i in range(n):
        config = searcher.suggest(f"{prefix}{i}")
        configs.append(config)
        searcher.on_trial_complete(f"{prefix}{i}", Outcome(TrialEnd.COMPLETED, objective(config)))
    return configs


def test_importing_search_does_not_import_sklearn_or_optuna():
    code = "import sys, raytuner.search; sys.exit(any(m in sys.modules for m in ('sklearn', 'optuna')))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_gp_beats_random_search_on_a_smooth_function_with_few_trials():
    # 15 trials on a 2-D quadratic, the first 5 random. Measured on seeds 0-9: the GP's best
    # is at most 0.0011 on every seed; random search's best of 15 is 0.067 to 8.3.
    for seed in range(2):
        searcher = GPSearcher(SPACE, seed=seed, n_startup=5, **FAST)
        searcher.setup(None, 15)
        best = min(quadratic(c) for c in run(searcher, quadratic, 15))
        randoms = RandomSearcher(SPACE, seed=seed)
        randoms.setup(None, 15)
        random_best = min(quadratic(randoms.suggest(str(i))) for i in range(15))
        assert best < 0.01 < random_best


def test_startup_is_random_and_counts_observations():
    searcher = GPSearcher(SPACE, seed=0, n_startup=3, **FAST)
    searcher.setup(None, 10)
    reference = RandomSearcher(SPACE, seed=0)
    reference.setup(None, 10)
    # Three trials in flight, none finished: still startup, the random searcher's draws.
    configs = [searcher.suggest(str(i)) for i in range(4)]
    assert configs == [reference.suggest(str(i)) for i in range(4)]


def test_values_are_plain_python_and_inside_their_domains():
    space = {"lr": loguniform(1e-4, 1e-1), "n": randint(1, 4), "act": choice(["relu", "tanh"]),
             "opt": choice([{"name": "sgd", "m": uniform(0, 1)}, {"name": "adam"}]), "const": [1, 2]}

    def objective(c):
        return math.log10(c["lr"]) ** 2 + c["n"] + (c["act"] == "tanh") + (c["opt"]["name"] == "adam")

    searcher = GPSearcher(space, seed=1, n_startup=4, **FAST)
    searcher.setup(None, 12)
    for config in run(searcher, objective, 12):
        assert type(config["lr"]) is float and 1e-4 <= config["lr"] <= 1e-1
        assert type(config["n"]) is int and 1 <= config["n"] <= 3
        assert config["act"] in ("relu", "tanh") and config["const"] == [1, 2]
        assert set(config["opt"]) == ({"name", "m"} if config["opt"]["name"] == "sgd" else {"name"})


@pytest.mark.parametrize("pending", ["kriging_believer", "constant_liar"])
def test_pending_trials_push_parallel_suggestions_apart(pending):
    # After 8 results, four suggestions in a row with none finished. Without the pending
    # trials in the model all four would be the same EI maximiser; with them they spread.
    searcher = GPSearcher(SPACE, seed=2, n_startup=8, pending=pending, **FAST)
    searcher.setup(None, 20)
    run(searcher, quadratic, 8)
    batch = [searcher.suggest(f"p{i}") for i in range(4)]
    points = np.array([[c["x"], c["y"]] for c in batch])
    gaps = [np.linalg.norm(points[i] - points[j]) for i in range(4) for j in range(i)]
    assert min(gaps) > 0.1

    # The control: the same state with the first trial's record removed (so no pending
    # trial, same random draws) proposes next to that first trial again.
    twin = GPSearcher(SPACE, seed=2, n_startup=8, pending=pending, **FAST)
    twin.setup(None, 20)
    run(twin, quadratic, 8)
    assert twin.suggest("p0") == batch[0]  # deterministic
    state = twin.state()
    del state["records"]["p0"]
    twin.restore(state)
    again = twin.suggest("q")
    assert np.hypot(again["x"] - batch[0]["x"], again["y"] - batch[0]["y"]) < 0.1 < min(
        np.hypot(c["x"] - batch[0]["x"], c["y"] - batch[0]["y"]) for c in batch[1:])


def observed(policy, outcomes):
    """The values the GP is fitted to after trials 0, 1, ... end with ``outcomes``."""
    searcher = GPSearcher(SPACE, seed=0, stopped_trials=policy, n_startup=2, **FAST)
    searcher.setup(None, 10)
    for i in range(len(outcomes)):
        searcher.suggest(str(i))
    for i, outcome in enumerate(outcomes):
        searcher.on_trial_complete(str(i), outcome)
    return searcher._observations()[1].tolist()


def test_stopped_and_failed_trials_by_policy():
    outcomes = [
        Outcome(TrialEnd.COMPLETED, 2.0, 9, 9),
        Outcome(TrialEnd.COMPLETED, 5.0, 9, 9),
        Outcome(TrialEnd.STOPPED, 1.0, 3, 9),  # low fidelity
        Outcome(TrialEnd.STOPPED, 1.5, 9, 9),  # full budget
        Outcome(TrialEnd.FAILED),
    ]
    # Order: full-budget ones (0, 1, 3), then stopped early (2), then failed (4).
    assert observed("penalize", outcomes) == [2.0, 5.0, 1.5, 5.0, 5.0]
    assert observed("last", outcomes) == [2.0, 5.0, 1.5, 1.0, 5.0]
    assert observed("ignore", outcomes) == [2.0, 5.0, 1.5, 5.0]


@pytest.mark.parametrize("policy", ["penalize", "last", "ignore"])
def test_a_stopped_trial_without_a_finite_value_is_observed_at_the_worst_value(policy):
    # Under ASHA a diverged trial ends STOPPED at its first rung with a NaN; it used to be left
    # out of the fit, so the GP kept proposing the region that diverges.
    outcomes = [
        Outcome(TrialEnd.COMPLETED, 2.0, 9, 9),
        Outcome(TrialEnd.STOPPED, math.nan, 1, 9),  # diverged
        Outcome(TrialEnd.STOPPED, -math.inf, 3, 9),  # diverged
        Outcome(TrialEnd.STOPPED, None, None, 9),  # stopped before its first report
        Outcome(TrialEnd.COMPLETED, 5.0, 9, 9),
    ]
    assert observed(policy, outcomes) == [2.0, 5.0, 5.0, 5.0, 5.0]


def test_a_completed_trial_without_a_finite_value_counts_as_failed():
    searcher = GPSearcher(SPACE, seed=0, **FAST)
    searcher.setup(None, 10)
    searcher.suggest("a"), searcher.suggest("b")
    searcher.on_trial_complete("a", Outcome(TrialEnd.COMPLETED, math.nan))
    assert searcher._observations()[1].tolist() == []  # nothing to be worse than yet
    searcher.on_trial_complete("b", Outcome(TrialEnd.COMPLETED, 3.0))
    assert searcher._observations()[1].tolist() == [3.0, 3.0]


def test_same_seed_same_results_same_suggestions_and_resume_continues_them():
    a = GPSearcher(SPACE, seed=5, n_startup=4, **FAST)
    a.setup(None, 20)
    run(a, quadratic, 7)
    a.suggest("pending")
    saved = a.state()
    after = run(a, quadratic, 3, prefix="late")

    b = GPSearcher(SPACE, seed=5, n_startup=4, **FAST)
    b.restore(saved)
    b.setup(None, 20)
    assert run(b, quadratic, 3, prefix="late") == after
    b.on_trial_complete("pending", Outcome(TrialEnd.COMPLETED, 1.0))  # the pending trial is known

    c = GPSearcher(SPACE, seed=5, n_startup=4, **FAST)
    c.setup(None, 20)
    d = GPSearcher(SPACE, seed=5, n_startup=4, **FAST)
    d.setup(None, 20)
    assert run(c, quadratic, 7) == run(d, quadratic, 7)


def test_warm_start_seeds_the_model_and_marginalises_what_an_old_trial_lacks():
    warm = [({"x": 1.0, "y": -1.0}, 0.1), ({"x": 9.0, "y": 0.0}, 1.0), ({"x": 0.0}, 2.0),
            ({"x": -3.0, "y": 2.0}, Outcome(TrialEnd.STOPPED, 4.0, 1, 9)), ({"x": 2.0, "y": 2.0, "z": 1}, None)]
    searcher = GPSearcher(SPACE, seed=0, n_startup=2, warm_start=warm, **FAST)
    with pytest.warns(UserWarning, match=r"fitted 5 of 5.*'y' \(1\).*'z' \(1\).*'x' \(1\)\.$"):
        searcher.setup(None, 10)
    points, values = searcher._observations()
    # Full budget first; the stopped one at max(4.0, worst full-budget 2.0); the failed one
    # at the worst, 4.0.
    assert values.tolist() == [0.1, 1.0, 2.0, 4.0, 4.0]
    # x=9.0 is outside its range (DROPPED) and {"x": 0.0} lacks y (MISSING): the kernel
    # marginalises those values; the other value of each trial still counts.
    np.testing.assert_allclose(points[:3], [[0.6, 0.4], [DROPPED, 0.5], [0.5, MISSING]])
    # n_startup=2 is met by the warm start: the first suggestion is the GP's, not a random draw.
    reference = RandomSearcher(SPACE, seed=0)
    reference.setup(None, 1)
    assert searcher.suggest("0") != reference.suggest("0")


def test_warm_start_with_conditional_parameters():
    space = {"opt": choice([{"name": "sgd", "m": uniform(0, 1)}, {"name": "adam"}]), "x": uniform(0, 1)}
    warm = [({"opt": {"name": "adam"}, "x": 0.5}, 1.0), ({"opt": {"name": "sgd", "m": 0.25}, "x": 0.1}, 2.0),
            ({"opt": {"name": "sgd"}, "x": 0.1}, 3.0),  # m absent: marginalised
            ({"x": 0.3}, 4.0)]  # opt absent: a choice is not marginalised, so left out
    searcher = GPSearcher(space, seed=0, n_startup=2, warm_start=warm, **FAST)
    with pytest.warns(UserWarning, match="left out 1 of the 4 fitted observations that lack an active choice"):
        searcher.setup(None, 4)
    assert searcher._observations()[1].tolist() == [1.0, 2.0, 3.0]
    config = searcher.suggest("0")
    assert set(config["opt"]) == ({"name", "m"} if config["opt"]["name"] == "sgd" else {"name"})


def test_a_fork_with_an_added_parameter_keeps_the_old_trials():
    # Issue 25: the old trials lack y; they used to be left out whole, so the fork started
    # from scratch. Now they inform x, and y is marginalised under its prior.
    old = [({"x": x}, (x - 1.3) ** 2) for x in np.linspace(-5, 5, 12)]
    with pytest.warns(UserWarning, match=r"fitted 12 of 12 .*'y' \(12\)\.$"):
        searcher = GPSearcher(SPACE, seed=0, warm_start=old, **FAST)
        searcher.setup(None, 10)
    points, values = searcher._observations()
    assert len(values) == 12 and np.all(points[:, 1] == MISSING)
    # Twelve observations: the GP proposes from the first suggestion, and it uses x. Five
    # random draws on [-5, 5] would all land within 1.1 of the best x with probability 0.0005.
    xs = [c["x"] for c in run(searcher, quadratic, 5)]
    assert max(abs(x - 1.3) for x in xs) < 1.1


def test_warns_once_beyond_its_comfort_zone(monkeypatch):
    monkeypatch.setattr(_gp, "COMFORT_LIMIT", 5)
    searcher = GPSearcher(SPACE, seed=0, n_startup=2, **FAST)
    searcher.setup(None, 20)
    run(searcher, quadratic, 6)
    with pytest.warns(UserWarning, match="beyond its comfort zone"):
        run(searcher, quadratic, 1, prefix="a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(searcher, quadratic, 1, prefix="b")


def test_config_describes_the_constructor():
    searcher = GPSearcher(seed=3, n_startup=5, pending="constant_liar")
    assert searcher.config() == {
        "type": "GPSearcher", "space": None, "seed": 3, "n_startup": 5, "acquisition": "ei", "xi": 0.0,
        "pending": "constant_liar", "stopped_trials": "penalize", "n_candidates": 1000, "n_restarts": 2,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"acquisition": "ucb"}, r"`acquisition` is 'ucb', but must be one of 'ei'"),
        ({"pending": "wait"}, r"`pending` is 'wait'.*'kriging_believer', 'constant_liar'"),
        ({"stopped_trials": "drop"}, r"`stopped_trials` is 'drop'"),
        ({"n_startup": 1}, r"`n_startup` is 1, but must be an int >= 2"),
        ({"n_candidates": 0}, r"`n_candidates` is 0"),
        ({"xi": -0.1}, r"`xi` is -0.1"),
        ({"seed": -1}, r"`seed` is -1"),
        ({"warm_start": [(1, 2)]}, r"`warm_start\[0\]` is \(1, 2\)"),
        ({"space": {"a": grid([1, 2])}}, r"grid\(\) axes.*GridSearcher"),
    ],
)
def test_bad_input_is_refused_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GPSearcher(**kwargs)


def test_a_trial_corrected_after_a_resume_is_fitted_at_the_config_it_ran():
    searcher = GPSearcher(SPACE, seed=0, n_startup=2, **FAST)
    searcher.setup(None, num_trials=10)
    run(searcher, quadratic, 2)
    proposed = searcher.suggest("2")  # pending: a resume found trial 2 had run another config
    ran = {"x": 1.3, "y": -0.7}
    assert proposed != ran and searcher.correct_config("2", ran)
    assert searcher.state()["records"]["2"]["config"] == ran
    # The point the GP is fitted at is the config's, not the proposal's.
    assert np.array_equal(searcher._point(searcher._records["2"]), searcher._encoding.encode(ran))
    searcher.on_trial_complete("2", Outcome(TrialEnd.COMPLETED, quadratic(ran)))
    assert not searcher.correct_config("2", ran)  # ended: it keeps what it was credited with
    assert not searcher.correct_config("3", ran)  # never proposed
    searcher.suggest("3")
    assert not searcher.correct_config("3", {"x": 50.0, "y": 0.0})  # outside the space
