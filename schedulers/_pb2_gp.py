"""PB2's model: a Gaussian process with a time-varying kernel, and its UCB acquisition.

Population Based Bandits (Parker-Holder, Nguyen and Roberts, "Provably Efficient Online
Hyperparameter Optimization with Population-Based Bandits", NeurIPS 2020) choose the
explored config of a clone by a GP bandit over the *change in reward* per unit of
resource, on the scikit-learn/scipy stack of :class:`raytuner.search.GPSearcher`.

**Data.** Each time a trial is perturbed at resource ``t'`` after its previous
perturbation at ``t`` with the same hyperparameters ``h``, it gives one observation
``x = (t, R, h)`` with ``y = (R' - R) / (t' - t)``: the reward gained per unit of
resource from the state ``(t, R)`` under ``h`` (rewards are negated values, higher is
better). A clone's interval starts from its donor's ``(t, R)``. Every column is scaled to
[0, 1] (``t`` and ``R`` by the range seen; ``h`` by the mutation's bounds, in log space
for a log domain); ``y`` is standardised and clipped to [-2, 2] (as in the paper's code).

**Kernel** (the time-varying squared exponential of Bogunovic, Scarlett and Cevher,
"Time-Varying Gaussian Process Bandit Optimization", AISTATS 2016, used by PB2): with
``z = (R, h)``,

    k(x, x') = s^2 exp(-||z - z'||^2 / (2 l^2)) (1 - eps)^(|t - t'| / 2)

``s^2`` the signal variance, ``l`` the length scale, ``eps`` in (0, 1) how fast old
observations are forgotten (``eps`` -> 0: a stationary kernel; large: only recent
intervals inform the present), plus white noise ``n^2`` on the diagonal. ``s^2``, ``l``,
``eps`` and ``n^2`` maximise the marginal likelihood (L-BFGS-B in log space, with the
analytic gradients of :class:`TimeVaryingKernel`).

**Acquisition** (GP-UCB, Srinivas et al. 2010, as PB2 uses it): at the clone's start
``(t_c, R_c)`` (its donor's last perturbation), over ``h`` in the unit cube,

    UCB(h) = mu(t_c, R_c, h) + sqrt(beta_N) sigma(t_c, R_c, h),  beta_N = c1 + max(0, log(c2 N))

with ``N`` observations, ``c1 = 0.2``, ``c2 = 0.4`` (the constants of the paper's code),
``mu`` from the GP on the data and ``sigma`` from the same GP also conditioned on the
points already chosen in this round of clones (their ``y`` does not matter: a posterior
variance depends only on where the points are), so that clones chosen together spread
out (GP-BUCB, Desautels, Krause and Burdick, JMLR 2014). The paper's code adds the
variance instead of the standard deviation; here it is the standard deviation, as in
GP-UCB. The UCB is maximised over random points of the cube refined by L-BFGS-B
(:func:`raytuner.search._acquisition.maximize`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel, WhiteKernel

C1, C2 = 0.2, 0.4


class TimeVaryingKernel(Kernel):
    """``s^2 exp(-||z - z'||^2 / (2 l^2)) (1 - eps)^(|t - t'| / 2)`` over rows ``(t, z...)``:
    the first column is the time, the rest the space (module docstring)."""

    def __init__(self, variance: float = 1.0, length_scale: float = 0.5, epsilon: float = 0.1,
                 variance_bounds: tuple[float, float] = (1e-2, 1e2),
                 length_scale_bounds: tuple[float, float] = (1e-2, 1e2),
                 epsilon_bounds: tuple[float, float] = (1e-5, 0.5)) -> None:
        self.variance = variance
        self.length_scale = length_scale
        self.epsilon = epsilon
        self.variance_bounds = variance_bounds
        self.length_scale_bounds = length_scale_bounds
        self.epsilon_bounds = epsilon_bounds

    @property
    def hyperparameter_variance(self) -> Hyperparameter:
        return Hyperparameter("variance", "numeric", self.variance_bounds)

    @property
    def hyperparameter_length_scale(self) -> Hyperparameter:
        return Hyperparameter("length_scale", "numeric", self.length_scale_bounds)

    @property
    def hyperparameter_epsilon(self) -> Hyperparameter:
        return Hyperparameter("epsilon", "numeric", self.epsilon_bounds)

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None, eval_gradient: bool = False) -> Any:
        X = np.atleast_2d(X)
        Y = X if Y is None else np.atleast_2d(Y)
        gaps = np.abs(X[:, :1] - Y[:, :1].T)
        squares = ((X[:, None, 1:] - Y[None, :, 1:]) ** 2).sum(-1)
        forget = (1.0 - self.epsilon) ** (gaps / 2.0)
        K = self.variance * np.exp(-squares / (2.0 * self.length_scale**2)) * forget
        if not eval_gradient:
            return K
        # Derivatives in the log hyperparameters (scikit-learn optimises log theta), in the
        # order of theta: scikit-learn lists hyperparameters by name (epsilon, length_scale,
        # variance).
        d_variance = K
        d_length = K * squares / self.length_scale**2
        d_epsilon = -K * gaps / 2.0 * self.epsilon / (1.0 - self.epsilon)
        return K, np.dstack([d_epsilon, d_length, d_variance])

    def diag(self, X: np.ndarray) -> np.ndarray:
        return np.full(np.atleast_2d(X).shape[0], self.variance, dtype=float)

    def is_stationary(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"TimeVarying(s^2={self.variance:.3g}, l={self.length_scale:.3g}, eps={self.epsilon:.3g})"


def beta(n: int) -> float:
    """``beta_N = c1 + max(0, log(c2 N))``: the UCB's exploration weight is its square root."""
    return C1 + max(0.0, math.log(C2 * n)) if n > 0 else C1


def ucb(mean: np.ndarray, std: np.ndarray, n: int) -> np.ndarray:
    """``mu + sqrt(beta_N) sigma`` elementwise."""
    return np.asarray(mean, dtype=float) + math.sqrt(beta(n)) * np.asarray(std, dtype=float)


def fit(X: np.ndarray, y: np.ndarray, seed: int, restarts: int = 2) -> GaussianProcessRegressor:
    """The GP on rows ``(t, R, h...)`` scaled to [0, 1] and targets standardised."""
    kernel = TimeVaryingKernel() + WhiteKernel(1e-2, (1e-6, 1.0))
    model = GaussianProcessRegressor(kernel=kernel, normalize_y=False, n_restarts_optimizer=restarts,
                                     random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a bound reached is an answer
        model.fit(X, y)
    return model


def condition(model: GaussianProcessRegressor, X: np.ndarray, y: np.ndarray,
              pending: np.ndarray) -> GaussianProcessRegressor:
    """The same GP (hyperparameters kept) also given ``pending`` points, for its variance."""
    if not len(pending):
        return model
    conditioned = GaussianProcessRegressor(kernel=model.kernel_, optimizer=None, normalize_y=False)
    conditioned.fit(np.vstack([X, pending]), np.concatenate([y, np.zeros(len(pending))]))
    return conditioned


def scale(column: np.ndarray, low: float, high: float) -> np.ndarray:
    return (column - low) / (high - low) if high > low else np.zeros_like(column)


def standardise(y: np.ndarray) -> np.ndarray:
    """``(y - mean) / std``, clipped to [-2, 2] (one outlier interval must not rule the fit)."""
    std = y.std()
    return np.clip((y - y.mean()) / (std if std > 0 else 1.0), -2.0, 2.0)


def select(rows: np.ndarray, y: np.ndarray, start: tuple[float, float], pending: np.ndarray,
           rng: np.random.Generator, seed: int) -> np.ndarray:
    """The hyperparameters (in the unit cube) that maximise the UCB from ``start``.

    Args:
        rows: Observations ``(t, R, h...)`` with ``h`` already in [0, 1], shape ``(N, 2 + d)``.
        y: Their reward changes per unit of resource, shape ``(N,)``.
        start: ``(t, R)`` where the clone starts.
        pending: Hyperparameters (in [0, 1]) chosen in this round already, shape ``(P, d)``.
        rng, seed: For the candidates and the likelihood's restarts.
    """
    from raytuner.search._acquisition import maximize

    t_low, t_high = min(rows[:, 0].min(), start[0]), max(rows[:, 0].max(), start[0])
    r_low, r_high = min(rows[:, 1].min(), start[1]), max(rows[:, 1].max(), start[1])
    X = np.column_stack([scale(rows[:, 0], t_low, t_high), scale(rows[:, 1], r_low, r_high), rows[:, 2:]])
    fixed = np.array([scale(np.array(start[0]), t_low, t_high), scale(np.array(start[1]), r_low, r_high)])
    targets = standardise(y)
    model = fit(X, targets, seed)
    spread = condition(model, X, targets, np.column_stack([np.tile(fixed, (len(pending), 1)), pending])
                       if len(pending) else np.empty((0, X.shape[1])))
    dim = rows.shape[1] - 2

    def acquisition(h: np.ndarray) -> np.ndarray:
        points = np.column_stack([np.tile(fixed, (len(h), 1)), h])
        _, std = spread.predict(points, return_std=True)
        return ucb(model.predict(points), std, len(y))

    return maximize(acquisition, dim, lambda h: np.clip(np.atleast_2d(h), 0.0, 1.0),
                    lambda h: np.arange(dim), rng, n_candidates=500, n_refine=3)
