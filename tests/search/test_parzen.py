"""Kernels and the multivariate Parzen estimator (search/_parzen.py), on known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from raytuner.search import loguniform, qloguniform, quniform, randint, uniform
from raytuner.search._domains import Range
from raytuner.search._parzen import CategoricalDim, NumericDim, ParzenEstimator, log_mass
from raytuner.search._tpe_space import dim_of


def test_log_mass_matches_scipy_and_keeps_the_upper_tail():
    a, b = np.array([-1.0, 0.5, 9.0]), np.array([1.0, 2.0, 10.0])
    expected = np.log(stats.norm.sf(a) - stats.norm.sf(b))
    # Φ(10) - Φ(9) is 0 in float; log_mass takes Φ(-9) - Φ(-10), the same mass, instead.
    assert log_mass(a, b) == pytest.approx(expected)


def truncnorm_pdf(x, mu, sigma, lo, hi):
    return stats.truncnorm.pdf(x, (lo - mu) / sigma, (hi - mu) / sigma, loc=mu, scale=sigma)


@pytest.mark.parametrize("observed", [0.3, 0.0, 0.95, 1.0])
def test_each_continuous_kernel_is_the_gaussian_truncated_to_the_bounds(observed):
    # One observation and the prior, weights 1/2 each: scipy's truncated normals, by hand.
    est = _estimator([dim_of(uniform(0, 1))], [[observed]])
    sigma = 0.2 * 1 ** (-1 / 5)
    x = np.linspace(0, 1, 101)
    by_hand = (truncnorm_pdf(x, observed, sigma, 0, 1) + truncnorm_pdf(x, 0.5, 1.0, 0, 1)) / 2
    assert np.exp(est.log_pdf(x[:, None])) == pytest.approx(by_hand)


def _estimator(dims, observations, prior_weight=1.0):
    observations = np.asarray(observations, dtype=float).reshape(-1, len(dims))
    return ParzenEstimator(list(dims), observations, np.ones(len(observations)), prior_weight, 0.2)


def test_a_continuous_mixture_integrates_to_one_and_matches_the_kernels():
    dim = dim_of(uniform(-2, 3))
    est = _estimator([dim], [[-1.9], [0.5], [2.9]])
    grid = np.linspace(-2, 3, 20001)[:, None]
    density = np.exp(est.log_pdf(grid))
    assert np.trapezoid(density, grid[:, 0]) == pytest.approx(1.0, abs=1e-4)
    # By hand: weights 1/4 each; three kernels with Scott's sigma and the prior kernel.
    sigma = 0.2 * 5 * 3 ** (-1 / 5)
    by_hand = sum(truncnorm_pdf(0.0, mu, sigma, -2, 3) for mu in (-1.9, 0.5, 2.9))
    by_hand += truncnorm_pdf(0.0, 0.5, 5.0, -2, 3)
    assert np.exp(est.log_pdf(np.array([[0.0]])))[0] == pytest.approx(by_hand / 4)


def test_a_discrete_mixture_sums_to_one_and_samples_land_on_allowed_values():
    for domain, allowed in [(randint(1, 6), np.arange(1, 6.0)),
                            (quniform(0, 1, 0.25), np.arange(0, 1.01, 0.25)),
                            (qloguniform(10, 1000, 10), np.arange(10, 1001, 10.0)),
                            # Stored before bounds had to be multiples of q (Range, as from_json
                            # rebuilds them). 20, ..., 100: the bins are cut by [10, 100], so 0's is empty
                            (Range(10, 100, q=20), np.arange(20, 101, 20.0)),
                            (Range(1, 1000, log=True, q=10), np.arange(0, 1001, 10.0))]:
        dim = dim_of(domain)
        est = _estimator([dim], [[allowed[1]], [allowed[-1]]])
        assert np.exp(est.log_pdf(allowed[:, None])).sum() == pytest.approx(1.0)
        draws = est.sample(np.random.default_rng(0), 500)[:, 0]
        assert np.isin(draws, allowed).all()


def test_log_domains_are_modelled_in_log_space_and_stay_in_bounds():
    dim = dim_of(loguniform(1e-5, 1e-1))
    est = _estimator([dim], [[np.log(1e-3)]] * 5)
    draws = np.exp(est.sample(np.random.default_rng(1), 2000)[:, 0])
    assert draws.min() >= 1e-5 and draws.max() <= 1e-1
    # Symmetric in log space around 1e-3: as many draws a decade below as above.
    below = np.mean((draws > 1e-4) & (draws < 1e-3))
    above = np.mean((draws > 1e-3) & (draws < 1e-2))
    assert below == pytest.approx(above, abs=0.05)


def test_the_categorical_kernel_favours_what_was_observed_and_keeps_mass_on_the_rest():
    est = _estimator([CategoricalDim(3)], [[0], [0], [1]])
    p = np.exp(est.log_pdf(np.array([[0.0], [1.0], [2.0]])))
    assert p.sum() == pytest.approx(1.0)
    # kappa = 1/4: rows (1.25, .25, .25)/1.75 twice, (.25, 1.25, .25)/1.75, prior 1/3; weights 1/4.
    expected = np.array([2 * 1.25 / 1.75 + 0.25 / 1.75, 2 * 0.25 / 1.75 + 1.25 / 1.75,
                         3 * 0.25 / 1.75]) / 4 + 1 / 12
    assert p == pytest.approx(expected)
    draws = est.sample(np.random.default_rng(2), 4000)[:, 0]
    assert np.bincount(draws.astype(int), minlength=3) / 4000 == pytest.approx(expected, abs=0.03)


def test_the_joint_model_keeps_interactions_that_marginals_lose():
    # Observations on the diagonal x == y: the joint density is higher on it than off it,
    # while both marginals are the same.
    dims = [dim_of(uniform(0, 1)), dim_of(uniform(0, 1))]
    est = _estimator(dims, [[v, v] for v in np.linspace(0.05, 0.95, 10)])
    on, off = np.exp(est.log_pdf(np.array([[0.2, 0.2], [0.2, 0.8]])))
    assert on > 3 * off


def test_a_missing_value_falls_back_to_the_prior_on_that_dimension():
    dims = [dim_of(uniform(0, 1)), dim_of(uniform(0, 1))]
    with_missing = _estimator(dims, [[0.3, np.nan]])
    assert with_missing.mu[1].tolist() == [0.5, 0.5] and with_missing.sigma[1].tolist() == [1.0, 1.0]
    grid = np.linspace(0, 1, 2001)
    points = np.column_stack([np.full_like(grid, 0.3), grid])
    # Conditional on x = 0.3, y is as flat as the prior kernel, not peaked anywhere.
    density = np.exp(with_missing.log_pdf(points))
    assert density.max() / density.min() < 1.7


def test_mixture_weights_are_normalised_with_the_prior():
    est = ParzenEstimator([NumericDim(0.0, 1.0)], np.array([[0.5], [0.6]]), np.array([3.0, 1.0]),
                          2.0, 0.2)
    assert np.exp(est.log_w).tolist() == pytest.approx([0.5, 1 / 6, 1 / 3])


@pytest.mark.parametrize(("num_trials", "imported"), [(100, True), (10, False)])
def test_tpe_set_up_for_a_model_imports_scipy_special_in_the_background(num_trials, imported):
    # In a fresh interpreter: scipy.special is imported while workers start, not at the first
    # model-based suggestion; a sweep that never gets past the random start-up never imports it.
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from raytuner.search import TPESearcher, uniform\n"
        "assert 'scipy.special' not in sys.modules\n"
        f"TPESearcher(n_startup=10).setup({{'x': uniform(0, 1)}}, {num_trials})\n"
        "for thread in threading.enumerate():\n"
        "    if thread.name == 'raytuner-import-scipy':\n"
        "        thread.join()\n"
        "print('scipy.special' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(imported)
