"""Expected improvement and its maximisation over the unit cube.

**Expected improvement** (Jones, Schonlau and Welch, "Efficient global optimization of
expensive black-box functions", J. Global Optimization 1998, eq. 15). With a Gaussian
posterior ``f(x) ~ N(mu(x), sigma(x)^2)`` and the best value observed so far ``f*``
(minimising), the improvement is ``I(x) = max(f* - xi - f(x), 0)`` and

    EI(x) = (f* - xi - mu) Phi(z) + sigma phi(z),    z = (f* - xi - mu) / sigma,

with ``Phi`` and ``phi`` the standard normal CDF and density; ``EI = max(f* - xi - mu, 0)``
where ``sigma = 0``. ``xi >= 0`` asks for an improvement of at least ``xi`` (0 in Jones et
al.; larger values explore more). EI is large where the mean is low (exploitation) or the
uncertainty high (exploration).

**Maximisation.** EI is multimodal and cheap to evaluate, so it is maximised in two steps,
as in Snoek, Larochelle and Adams ("Practical Bayesian optimization of machine learning
algorithms", NeurIPS 2012) and scikit-optimize: EI on many random points of the cube
(snapped to configs that can run, see :mod:`._gp_encoding`), then L-BFGS-B (scipy) from the
best few, over the continuous columns only, the discrete ones held at the start point's
values (EI is piecewise constant in them, so a gradient says nothing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

def expected_improvement(
    mu: np.ndarray, sigma: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """EI of points with posterior mean ``mu`` and standard deviation ``sigma`` (minimising).

    Args:
        mu: Posterior means, any shape.
        sigma: Posterior standard deviations, the same shape, ``>= 0``.
        best: ``f*``, the best (lowest) value observed.
        xi: Required improvement margin, ``>= 0``.

    Returns:
        ``EI`` elementwise, ``>= 0``.
    """
    mu = np.asarray(mu, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    gain = best - xi - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, gain / sigma, 0.0)
    ei = gain * norm.cdf(z) + sigma * norm.pdf(z)
    return np.where(sigma > 0, np.maximum(ei, 0.0), np.maximum(gain, 0.0))


def maximize(
    acquisition: Callable[[np.ndarray], np.ndarray],
    dim: int,
    snap: Callable[[np.ndarray], np.ndarray],
    free: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    n_candidates: int = 1000,
    n_refine: int = 5,
    maxiter: int = 25,
) -> np.ndarray:
    """The point of the cube with the largest acquisition value found.

    Args:
        acquisition: Vectorised: points of shape ``(n, dim)`` to values of shape ``(n,)``.
        dim: Columns of the cube.
        snap: Maps points to the points that configs encode to (``Encoding.snap``).
        free: The columns L-BFGS-B may move from a snapped point: its active continuous
            columns (``Encoding.free``); moving an inactive one would change what the GP
            sees but not the config.
        rng: Draws the random candidates.
        n_candidates: Random candidates scored before refinement.
        n_refine: Best candidates refined by L-BFGS-B (0: none).
        maxiter: L-BFGS-B iterations per refinement.

    Returns:
        One snapped point of shape ``(dim,)``.
    """
    candidates = snap(rng.random((n_candidates, dim)))
    scores = acquisition(candidates)
    best = int(np.argmax(scores))
    best_x, best_score = candidates[best], float(scores[best])
    for start in np.argsort(-scores)[:n_refine]:
        x0 = candidates[start]
        columns = free(x0)
        if len(columns) == 0:
            continue
        x, score = _refine(acquisition, snap, x0, columns, maxiter)
        if score > best_score:
            best_x, best_score = x, score
    return best_x


def _refine(
    acquisition: Callable[[np.ndarray], np.ndarray],
    snap: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    free: np.ndarray,
    maxiter: int,
) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the ``free`` columns of ``x0``; gradients by central differences.

    The ``2k + 1`` points of one value-and-gradient evaluation go to ``acquisition`` in one
    batch: one GP prediction per iteration instead of ``2k + 1``.
    """
    step = 1e-6

    def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
        k = len(z)
        points = np.repeat(x0[None, :], 2 * k + 1, axis=0)
        points[:, free] = z
        offsets = np.eye(k) * step
        points[1 : k + 1, free] += offsets
        points[k + 1 :, free] -= offsets
        values = acquisition(points)
        grad = (values[1 : k + 1] - values[k + 1 :]) / (2 * step)
        return -float(values[0]), -grad

    result = minimize(
        negative,
        x0[free],
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * len(free),
        options={"maxiter": maxiter},
    )
    x = x0.copy()
    x[free] = result.x
    x = snap(x)[0]
    return x, float(acquisition(x[None, :])[0])
