"""PB2: the time-varying kernel and the UCB against known answers, the data it learns from,
and its explore step on a synthetic stream."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor

from raytuner.schedulers import PB2Scheduler, from_config
from raytuner.schedulers._pb2 import _from_unit
from raytuner.schedulers._pb2_gp import TimeVaryingKernel, beta, condition, select, ucb
from raytuner.errors import ConfigError
from raytuner.search import choice, loguniform, quniform, randint, uniform
from raytuner.search._domains import Range


def test_the_kernel_is_the_product_of_a_squared_exponential_and_the_forgetting_factor():
    kernel = TimeVaryingKernel(variance=2.0, length_scale=0.5, epsilon=0.19)
    X = np.array([[0.0, 0.2, 0.5], [2.0, 0.7, 0.5], [2.0, 0.2, 0.5]])
    K = kernel(X)
    # ||z - z'||^2 = 0.25, |t - t'| = 2: 2 exp(-0.25 / (2 * 0.25)) (1 - 0.19)^(2 / 2).
    assert K[0, 1] == pytest.approx(2.0 * math.exp(-0.5) * 0.81)
    assert K[0, 2] == pytest.approx(2.0 * 0.81)  # same place, two steps of time apart
    assert K[1, 2] == pytest.approx(2.0 * math.exp(-0.5))  # same time
    assert np.allclose(np.diag(K), 2.0) and np.allclose(kernel.diag(X), 2.0) and np.allclose(K, K.T)
    assert not kernel.is_stationary()


def test_the_kernel_gradient_in_the_log_hyperparameters_matches_finite_differences():
    kernel = TimeVaryingKernel(variance=1.3, length_scale=0.4, epsilon=0.2)
    X = np.random.default_rng(0).random((5, 3)) * [4, 1, 1]
    _, gradient = kernel(X, eval_gradient=True)
    step = 1e-6
    for i in range(3):
        theta = kernel.theta.copy()
        theta[i] += step
        up = kernel.clone_with_theta(theta)(X)
        theta[i] -= 2 * step
        down = kernel.clone_with_theta(theta)(X)
        assert np.allclose(gradient[:, :, i], (up - down) / (2 * step), atol=1e-6)


def test_beta_and_the_ucb_have_the_known_values():
    assert beta(1) == pytest.approx(0.2)  # log(0.4) < 0: the max with 0
    assert beta(5) == pytest.approx(0.2 + math.log(2.0))
    assert ucb(np.array([0.5]), np.array([0.3]), 5)[0] == pytest.approx(0.5 + math.sqrt(0.2 + math.log(2.0)) * 0.3)


def test_the_ucb_of_a_one_point_posterior_is_the_closed_form():
    kernel = TimeVaryingKernel(variance=1.0, length_scale=0.3, epsilon=0.1)
    x0, y0, noise = np.array([[0.0, 0.5, 0.2]]), np.array([1.5]), 1e-4
    model = GaussianProcessRegressor(kernel=kernel, alpha=noise, optimizer=None).fit(x0, y0)
    x = np.array([[1.0, 0.5, 0.6]])
    k = 1.0 * math.exp(-0.16 / (2 * 0.09)) * 0.9 ** 0.5
    mean = k / (1.0 + noise) * 1.5
    var = 1.0 - k * k / (1.0 + noise)
    mu, sigma = model.predict(x, return_std=True)
    assert (mu[0], sigma[0]) == pytest.approx((mean, math.sqrt(var)))
    assert ucb(mu, sigma, 1)[0] == pytest.approx(mean + math.sqrt(0.2) * math.sqrt(var))


def test_points_chosen_in_the_round_shrink_the_variance_there_not_the_mean():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.zeros(6), rng.random(6), rng.random(6)])
    y = X[:, 2] - 0.5
    model = GaussianProcessRegressor(kernel=TimeVaryingKernel(), alpha=1e-4, optimizer=None).fit(X, y)
    pending = np.array([[0.0, 0.5, 0.9]])
    spread = condition(model, X, y, pending)
    _, before = model.predict(pending, return_std=True)
    _, after = spread.predict(pending, return_std=True)
    assert after[0] < 0.1 * before[0]


def test_select_finds_the_hyperparameters_with_the_largest_gain():
    rng = np.random.default_rng(2)
    h = rng.random(20)
    rows = np.column_stack([np.repeat([2.0, 4.0], 10), rng.random(20), h])
    gain = -((h - 0.3) ** 2)  # the reward grows fastest at h = 0.3
    best = select(rows, gain, (4.0, 0.5), np.empty((0, 1)), np.random.default_rng(0), seed=0)
    assert best.shape == (1,) and abs(best[0] - 0.3) < 0.1


def test_unit_points_map_back_to_the_mutations_scale():
    assert _from_unit(loguniform(1e-4, 1e-0), 0.5) == pytest.approx(1e-2)  # log space: the middle decade
    assert _from_unit(uniform(0, 10), 0.25) == pytest.approx(2.5)
    assert _from_unit(randint(1, 5), 1.0) == 4 and isinstance(_from_unit(randint(1, 5), 0.4), int)


def pb2(**kwargs):
    scheduler = PB2Scheduler(2, {"lr": loguniform(1e-4, 1e-1), "act": ["relu", "tanh"]}, seed=0, **kwargs)
    for i in range(4):
        scheduler.on_trial_add(f"t{i}")
        scheduler.on_trial_config(f"t{i}", {"lr": 10.0 ** -(i + 1), "act": "relu"})
    scheduler.on_search_finished()
    return scheduler


def test_each_interval_under_the_same_values_is_one_observation_of_the_gain():
    scheduler = pb2()
    for t, v in [("t0", 1.0), ("t1", 0.9), ("t2", 0.8), ("t3", 0.7)]:
        scheduler.on_result(t, 2, v)
    assert scheduler._rows == []
    scheduler.on_result("t3", 4, 0.3)
    # From (t = 2, R = -0.7) under lr = 1e-4 (the unit point 0): (0.7 - 0.3) / 2 gained per unit.
    assert scheduler._rows == [[2, -0.7, 0.0, pytest.approx(0.2)]]


def test_the_clone_gets_numeric_values_in_bounds_and_categorical_ones_by_pbts_rule():
    scheduler = pb2()
    for step in (2, 4, 6, 8):
        for i in range(4):
            scheduler.on_result(f"t{i}", step, (4 - i) * 0.1 - 0.01 * step)
            scheduler.choose_trial_to_resume()
    exploits = scheduler.exploits()
    assert len(exploits) >= 2 and len(scheduler._rows) >= 2
    for exploit in exploits:
        assert 1e-4 <= exploit.config["lr"] <= 1e-1 and exploit.config["act"] in ("relu", "tanh")


def test_pb2_state_and_config_round_trip():
    scheduler = pb2(synch=True)
    for i in range(4):
        scheduler.on_result(f"t{i}", 2, 1.0 / (i + 1))
    stored = json.loads(json.dumps(scheduler.config()))
    assert "perturbation_factors" not in stored
    again = from_config(stored)
    again.restore(pickle.loads(pickle.dumps(scheduler.state())))
    assert again.state() == scheduler.state()


def test_pb2_without_numeric_mutations_explores_like_pbt():
    scheduler = PB2Scheduler(2, {"act": choice(["relu", "tanh"])})
    assert scheduler._numeric == []


@pytest.mark.parametrize(("mutation", "message"), [
    (randint(2, 3), r"`mutations\['layers'\]` is randint\(2, 3\), but must be a mutation of two or more values\. "
                    r"randint\(2, 3\) excludes its upper bound, so it takes 2 only: .*ZeroDivisionError.* "
                    r"space=\{'layers': 2, \.\.\.\}, and leave 'layers' out of `mutations`, or give randint\(2, 4\)"),
    (Range(0.1, 0.15, q=0.1), r"`mutations\['layers'\]` is quniform\(0.1, 0.15, q=0.1\), .* only multiple of q=0.1 "
                              r"in the range is 0.1.*quniform\(0.1, 0.3, 0.1\)"),
    (choice([3]), r"`mutations\['layers'\]` is choice\(\[3\]\), .* holds one value.*space=\{'layers': 3, \.\.\.\}"),
    ([64], r"`mutations\['layers'\]` is \(64,\), .* holds one value"),
])
def test_a_mutation_of_one_value_is_refused_when_pb2_is_built(mutation, message):
    with pytest.raises(ConfigError, match=message):
        PB2Scheduler(2, {"lr": uniform(0.01, 0.1), "layers": mutation})


def test_two_values_are_enough_and_the_clone_gets_one_of_them():
    scheduler = PB2Scheduler(2, {"layers": randint(2, 4), "q": quniform(0.1, 0.2, 0.1)}, seed=0)
    for i in range(4):
        scheduler.on_trial_add(f"t{i}")
        scheduler.on_trial_config(f"t{i}", {"layers": 2 + i % 2, "q": 0.1})
    scheduler.on_search_finished()
    for step in (2, 4, 6):
        for i in range(4):
            scheduler.on_result(f"t{i}", step, (4 - i) * 0.1 - 0.01 * step)
            scheduler.choose_trial_to_resume()
    exploits = scheduler.exploits()
    assert exploits and all(e.config["layers"] in (2, 3) and e.config["q"] in (0.1, 0.2) for e in exploits)


def test_ray_tunes_bounds_as_a_list_are_refused_pointing_to_a_domain():
    from raytuner.search import RandomSearcher

    space = {"lr": loguniform(1e-4, 1e-1), "bs": choice([32, 64]), "width": 16, "q": quniform(0, 1, 0.1)}
    bounds = PB2Scheduler(2, {"lr": [1e-4, 1e-1]})
    with pytest.raises(ConfigError, match=(
            r"PB2Scheduler: `mutations\['lr'\]` is \[0.0001, 0.1\], but must be a domain for a range's bounds\. "
            r"A list holds the values to move between, so PB2 would set 'lr' to 0.0001 or 0.1 only.*never with its "
            r"GP; the space's 'lr' is loguniform\(0.0001, 0.1\), a range\. Ray Tune's PB2 takes hyperparam_bounds="
            r"\{'lr': \[low, high\]\}; here the bounds are written as a domain: "
            r"mutations=\{'lr': rt.loguniform\(0.0001, 0.1\)\}")):
        bounds.check_experiment(space, RandomSearcher(), 4)
    with pytest.raises(ConfigError, match=r"mutations=\{'q': rt.quniform\(0.2, 0.6, 0.1\)\}"):
        PB2Scheduler(2, {"q": (0.6, 0.2)}).check_experiment(space, RandomSearcher(), 4)
    # Without a space to look at, two numbers are taken for bounds.
    with pytest.raises(ConfigError, match=r"the space is not known here.*rt.loguniform\(0.0001, 0.1\)"):
        bounds.check_experiment(None, RandomSearcher(), 4)
    # Categorical lists of the space's choices and constants, and longer lists, stay as they were.
    PB2Scheduler(2, {"bs": [32, 64], "width": [16, 32], "q": [0.1, 0.2, 0.3]}).check_experiment(
        space, RandomSearcher(), 4)
    PB2Scheduler(2, {"act": ["relu", "tanh"]}).check_experiment({"act": "relu"}, RandomSearcher(), 4)
