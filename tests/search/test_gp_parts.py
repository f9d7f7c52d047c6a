"""The parts of GPSearcher on cases with known answers: expected improvement, its
maximiser, the GP fit, and the unit-cube encoding of categorical, integer and log domains."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from raytuner.errors import ConfigError
from raytuner.search import choice, grid, loguniform, qloguniform, quniform, randint, uniform
from raytuner.search._domains import Range
from raytuner.search._acquisition import expected_improvement, maximize
from raytuner.search._gp_encoding import DROPPED, INACTIVE, MISSING, Encoding
from raytuner.search._gp_model import _Matern, fantasize, fit
from tests._helpers import EVERY_KIND

# --- expected improvement ---------------------------------------------------------------


def test_ei_at_the_incumbent_is_sigma_times_the_normal_density_at_zero():
    # z = 0: EI = 0 * Phi(0) + sigma * phi(0) = sigma / sqrt(2 pi).
    assert expected_improvement(np.array([2.0]), np.array([3.0]), best=2.0)[0] == pytest.approx(
        3.0 / math.sqrt(2 * math.pi)
    )


@pytest.mark.parametrize(("mu", "sigma", "best", "xi"), [(0.3, 0.5, 0.0, 0.0), (-1.0, 0.2, 0.0, 0.1),
                                                          (2.0, 1.5, 1.0, 0.0), (0.0, 1e-3, 0.5, 0.0)])
def test_ei_equals_the_integral_of_the_improvement(mu, sigma, best, xi):
    # EI = integral of max(best - xi - f, 0) N(f; mu, sigma^2) df, by quadrature.
    def integrand(f):
        return max(best - xi - f, 0.0) * norm.pdf(f, mu, sigma)

    expected, _ = integrate.quad(integrand, mu - 12 * sigma, mu + 12 * sigma, points=[best - xi], limit=200)
    got = expected_improvement(np.array([mu]), np.array([sigma]), best, xi)[0]
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_ei_without_uncertainty_is_the_plain_improvement():
    got = expected_improvement(np.array([0.5, 2.0]), np.array([0.0, 0.0]), best=1.0)
    assert got.tolist() == [0.5, 0.0]


def test_ei_grows_with_sigma_and_falls_with_mu():
    sigmas = expected_improvement(np.zeros(4), np.array([0.1, 0.5, 1.0, 2.0]), best=0.0)
    mus = expected_improvement(np.array([-1.0, 0.0, 1.0, 2.0]), np.ones(4), best=0.0)
    assert np.all(np.diff(sigmas) > 0) and np.all(np.diff(mus) < 0)


# --- the maximiser ------------------------------------------------------------------------


def test_refinement_finds_the_maximum_that_random_candidates_only_approach():
    space = {"a": uniform(0, 1), "b": uniform(0, 1)}
    encoding = Encoding(space)
    peak = np.array([0.3141, 0.7182])

    def acquisition(x):
        return -np.sum((x - peak) ** 2, axis=1)

    rough = maximize(acquisition, 2, encoding.snap, encoding.free, np.random.default_rng(0), 50, n_refine=0)
    fine = maximize(acquisition, 2, encoding.snap, encoding.free, np.random.default_rng(0), 50)
    assert np.abs(rough - peak).max() > 1e-3
    assert np.abs(fine - peak).max() < 1e-4


def test_refinement_moves_only_continuous_columns_and_returns_a_snapped_point():
    space = {"x": uniform(0, 1), "n": randint(0, 10), "act": choice(["relu", "tanh"])}
    encoding = Encoding(space)

    def acquisition(x):  # best at x = 0.5 whatever the discrete columns
        return -((x[:, 0] - 0.5) ** 2)

    best = maximize(acquisition, encoding.dim, encoding.snap, encoding.free, np.random.default_rng(1), 20)
    assert best[0] == pytest.approx(0.5, abs=1e-4)
    np.testing.assert_array_equal(best, encoding.snap(best)[0])


# --- the GP ------------------------------------------------------------------------------


def test_gp_fit_recovers_a_known_smooth_function():
    rng = np.random.default_rng(0)
    x = rng.random((25, 1))

    def f(x):
        return np.sin(6 * x[:, 0]) + 0.5 * x[:, 0]

    y = f(x)
    mean, std = y.mean(), y.std()
    model = fit(x, (y - mean) / std, n_restarts=2, seed=0)
    grid_x = np.linspace(0.05, 0.95, 50)[:, None]
    mu, sigma = model.predict(grid_x, return_std=True)
    assert np.abs(mu * std + mean - f(grid_x)).max() < 0.02
    assert sigma.max() < 0.05  # noiseless data: the noise term fits near its lower bound


def test_gp_length_scales_switch_off_an_irrelevant_column():
    # Automatic relevance determination: y depends on column 0 only.
    rng = np.random.default_rng(1)
    x = rng.random((30, 2))
    y = np.sin(5 * x[:, 0])
    model = fit(x, (y - y.mean()) / y.std(), n_restarts=2, seed=0)
    length_scales = model.kernel_.k1.k2.length_scale
    assert length_scales[1] > 10 * length_scales[0]


@pytest.mark.parametrize("lie", [None, 2.0])
def test_fantasies_collapse_the_variance_at_pending_points(lie):
    rng = np.random.default_rng(2)
    x = rng.random((10, 1))
    y = np.cos(4 * x[:, 0])
    y = (y - y.mean()) / y.std()
    model = fit(x, y, n_restarts=1, seed=0)
    pending = np.array([[0.5]])
    mu_before, sigma_before = model.predict(pending, return_std=True)
    conditioned, fantasies = fantasize(model, x, y, pending, lie)
    mu_after, sigma_after = conditioned.predict(pending, return_std=True)
    assert sigma_after[0] < 0.2 * sigma_before[0]
    # The kriging believer keeps the mean; the constant liar pulls it to the lie.
    target = mu_before[0] if lie is None else lie
    assert abs(mu_after[0] - target) < abs(mu_before[0] - target) * 0.2 + 1e-3
    assert conditioned.kernel_ == model.kernel_  # hyperparameters of the real-data fit kept
    assert fantasies[0] == pytest.approx(target)


# --- the encoding -------------------------------------------------------------------------


def test_columns_of_each_domain():
    encoding = Encoding(EVERY_KIND)
    # x, lr, n, units, drop, batch, opt one-hot (2), momentum, act one-hot (3); constants take none.
    assert encoding.dim == 12
    assert [c.label for c in encoding.columns] == ["x", "lr", "n", "units", "drop", "batch", "opt[0].momentum"]
    assert [(g.label, g.size) for g in encoding.choices] == [("opt", 2), ("act", 3)]


def test_log_domains_are_linear_in_log_space():
    encoding = Encoding({"lr": loguniform(1e-4, 1e-1)})
    assert encoding.decode(np.array([0.5]))["lr"] == pytest.approx(math.sqrt(1e-4 * 1e-1))
    assert encoding.columns[0].encode(1e-3) == pytest.approx(1 / 3)
    assert encoding.decode(np.array([1.0]))["lr"] <= 0.1  # exp(log(b)) must not round above b


def test_integers_own_equal_intervals_of_the_cube():
    encoding = Encoding({"n": randint(1, 4)})
    column = encoding.columns[0]
    u = np.linspace(0, 1, 30001)[:-1]
    values = column.decode(u)
    assert sorted(set(values.tolist())) == [1.0, 2.0, 3.0]
    shares = [np.mean(values == v) for v in (1, 2, 3)]
    assert shares == pytest.approx([1 / 3] * 3, abs=1e-3)
    assert [column.encode(v) for v in (1, 2, 3)] == pytest.approx([1 / 6, 1 / 2, 5 / 6])
    assert type(encoding.decode(np.array([0.9]))["n"]) is int


def test_q_domains_round_like_the_domain_samples():
    encoding = Encoding({"u": quniform(16, 128, 16), "b": qloguniform(8, 512, 8)})
    configs = [encoding.decode(np.array([u, u])) for u in np.linspace(0, 1, 101)]
    assert {c["u"] for c in configs} == set(range(16, 129, 16))
    assert all(c["b"] % 8 == 0 and 8 <= c["b"] <= 512 for c in configs)
    assert all(type(c["u"]) is int and type(c["b"]) is int for c in configs)


def test_snap_makes_one_hot_centres_integers_and_fixes_inactive_columns():
    encoding = Encoding(EVERY_KIND)
    u = np.full(encoding.dim, 0.2)
    opt = encoding.choices[0]
    u[opt.start : opt.start + 2] = [0.1, 0.9]  # adam: momentum is inactive
    snapped = encoding.snap(u)[0]
    momentum = encoding.columns[-1]
    assert snapped[opt.start : opt.start + 2].tolist() == [0.0, 1.0]
    assert snapped[momentum.index] == INACTIVE
    act = encoding.choices[1]
    assert snapped[act.start : act.start + 3].sum() == 1.0
    n = encoding.columns[2]
    assert snapped[n.index] == pytest.approx(1 / 6)  # the centre of the interval of 1
    np.testing.assert_array_equal(encoding.snap(snapped)[0], snapped)  # idempotent
    assert encoding.free(snapped).tolist() == [0, 1]  # x and lr; momentum is inactive
    u[opt.start : opt.start + 2] = [0.9, 0.1]  # sgd: momentum becomes free
    assert encoding.free(encoding.snap(u)[0]).tolist() == [0, 1, momentum.index]


def test_decode_and_encode_are_inverse_on_snapped_points():
    encoding = Encoding(EVERY_KIND)
    points = encoding.snap(np.random.default_rng(3).random((200, encoding.dim)))
    names = set()
    for u in points:
        config = encoding.decode(u)
        names.add(config["opt"]["name"])
        assert type(config["n"]) is int and type(config["units"]) is int and type(config["x"]) is float
        assert config["act"] in ("relu", "tanh", "elu") and config["epochs"] == 5
        assert ("momentum" in config["opt"]) == (config["opt"]["name"] == "sgd")
        np.testing.assert_allclose(encoding.encode(config), u, atol=1e-12)
    assert names == {"sgd", "adam"}


def test_encode_marks_numbers_a_config_lacks_and_refuses_one_without_its_choices():
    encoding = Encoding(EVERY_KIND)
    u = encoding.snap(np.full(encoding.dim, 0.3))[0]
    good = encoding.decode(u)
    np.testing.assert_allclose(encoding.encode(good), u, atol=1e-12)
    x, lr, n = (encoding.columns[i].index for i in range(3))
    # An old trial in a fork: a number absent (MISSING), out of its new range or not an int
    # (DROPPED) is unknown, and marginalised by the kernel; the rest of the point is kept.
    for config, column, unknown in [({**good, "x": 7.0}, x, DROPPED), ({**good, "n": 2.5}, n, DROPPED),
                                    ({k: v for k, v in good.items() if k != "lr"}, lr, MISSING)]:
        point = encoding.encode(config)
        assert point[column] == unknown
        np.testing.assert_allclose(np.delete(point, column), np.delete(u, column), atol=1e-12)
    assert encoding.encode({**good, "act": "gelu"}) is None  # no such option: a one-hot block is not marginalised
    assert encoding.encode({**good, "epochs": 9}) is not None  # constants may differ
    assert encoding.encode({"z": 1}) is None  # nothing of the space


@pytest.mark.parametrize("entry", [grid([1, 2])])
def test_spaces_the_gp_cannot_model_are_refused(entry):
    with pytest.raises(ConfigError, match=r"GPSearcher cannot model 'a'.*GridSearcher"):
        Encoding({"a": entry})


def test_a_native_hyperopt_expression_is_refused():
    from hyperopt import hp

    with pytest.raises(ConfigError, match="native hyperopt expression.*HyperOptSearcher"):
        Encoding({"a": hp.uniform("a", 0, 1)})


def test_a_log_q_value_rounded_to_zero_is_placed_at_the_first_step():
    # qloguniform(1, 1000, 8), stored before bounds had to be multiples of q (Range, as
    # from_json rebuilds it), samples 0 when the draw is below 4, as hyperopt's does.
    encoding = Encoding({"b": Range(1, 1000, log=True, q=8)})
    assert encoding.encode({"b": 0}) == pytest.approx(encoding.encode({"b": 8}))


# --- the kernel over absent columns --------------------------------------------------------


def test_the_kernel_is_sklearns_matern_on_complete_points():
    from sklearn.gaussian_process.kernels import Matern

    x = np.random.default_rng(4).random((6, 3))
    x[0, 0] = -1e-6  # EI's finite differences step a hair outside the cube: still a point
    ours, theirs = _Matern([0.3, 0.5, 2.0], nu=2.5), Matern([0.3, 0.5, 2.0], nu=2.5)
    k, grad = ours(x, eval_gradient=True)
    expected_k, expected_grad = theirs(x, eval_gradient=True)
    np.testing.assert_array_equal(k, expected_k)
    np.testing.assert_array_equal(grad, expected_grad)
    np.testing.assert_array_equal(ours(x[:2], x[2:]), theirs(x[:2], x[2:]))


def test_an_absent_column_is_marginalised_under_its_uniform_prior():
    from sklearn.gaussian_process.kernels import Matern

    kernel = _Matern([0.4, 0.7], nu=2.5)
    old = np.array([[0.2, MISSING], [0.6, MISSING]])  # a fork's old trials: column 1 unknown
    new = np.array([[0.3, 0.9]])

    def by_quadrature(a, b):  # E_v k((a, v), (b_0, b_1)), v ~ U(0, 1)
        return integrate.quad(lambda v: Matern([0.4, 0.7], nu=2.5)(np.array([[a, v]]), b)[0, 0], 0, 1)[0]

    cross = kernel(old, new)
    assert cross[:, 0] == pytest.approx([by_quadrature(0.2, new), by_quadrature(0.6, new)], rel=0.02)
    # Two old trials share their unknown value: they compare on column 0 alone.
    k, grad = kernel(old, eval_gradient=True)
    assert k[0, 1] == pytest.approx(Matern(0.4, nu=2.5)(old[:1, :1], old[1:, :1])[0, 0])
    assert np.linalg.eigvalsh(kernel(np.vstack([old, new]))).min() > -1e-12  # still a kernel
    # A value of its own (DROPPED: outside the new range) is not shared: two such trials
    # compare in expectation over two independent values.
    own = np.array([[0.2, DROPPED], [0.6, DROPPED]])
    expected = integrate.dblquad(lambda v, w: Matern([0.4, 0.7], nu=2.5)(np.array([[0.2, v]]), np.array([[0.6, w]]))[0, 0],
                                 0, 1, 0, 1)[0]
    assert kernel(own)[0, 1] == pytest.approx(expected, rel=0.1)
    assert kernel(own)[0, 1] < k[0, 1] and np.diag(kernel(own)).tolist() == [1.0, 1.0]
    # The gradient is that of the average: compare with finite differences in log l.
    step = 1e-6
    for d in range(2):
        theta = kernel.theta.copy()
        theta[d] += step
        moved = kernel.clone_with_theta(theta)(old)
        np.testing.assert_allclose((moved - k) / step, grad[:, :, d], atol=1e-5)
