"""The Gaussian-process surrogate of :class:`GPSearcher`, on scikit-learn.

The kernel is ``s^2 Matern_5/2(r; l_1..l_D) + n^2 delta`` on the unit cube, where the
Matérn 5/2 kernel is twice differentiable, which Snoek et al. (2012) prefer to the squared
exponential's unrealistic smoothness for hyperparameter response surfaces. Bounds (on the
unit cube and standardised targets):

- ``s^2`` in [1e-2, 1e2] around the targets' unit variance;
- each ``l_d`` in [1e-2, 1e2]: from wiggles a hundredth of the range to a flat direction
  (a length scale far beyond 1 switches the column off: automatic relevance
  determination);
- ``n^2`` in [1e-6, 1]: from a noiseless function to noise as large as the signal.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel


def fit(points: np.ndarray, y: np.ndarray, n_restarts: int, seed: int) -> GaussianProcessRegressor:
    """A GP fitted to standardised ``y`` at ``points``, hyperparameters by marginal likelihood.

    Args:
        points: Shape ``(N, D)``, in the unit cube.
        y: Shape ``(N,)``, standardised (mean 0, standard deviation 1).
        n_restarts: Restarts of the likelihood optimisation from random hyperparameters.
        seed: Seed of the restarts.
    """
    dim = points.shape[1]
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
        length_scale=np.full(dim, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5
    ) + WhiteKernel(1e-3, (1e-6, 1.0))
    model = GaussianProcessRegressor(
        kernel=kernel,
        normalize_y=False,  # the caller standardises, so that fantasies share the scale
        n_restarts_optimizer=n_restarts,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # A length scale at its bound is an answer (the column does not matter), not a failure.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(points, y)
    return model


def fantasize(
    model: GaussianProcessRegressor,
    points: np.ndarray,
    y: np.ndarray,
    pending: np.ndarray,
    lie: float | None,
) -> tuple[GaussianProcessRegressor, np.ndarray]:
    """The GP conditioned also on fantasy values at ``pending``, hyperparameters kept.

    Args:
        model: A GP fitted by :func:`fit` to ``points`` and ``y``.
        points: Its training points.
        y: Its standardised targets.
        pending: Points of trials still running, shape ``(P, D)``.
        lie: The fantasy value of every pending point (constant liar), or None for the
            model's own posterior mean there (kriging believer).

    Returns:
        The conditioned GP and the fantasy values.
    """
    fantasies = model.predict(pending) if lie is None else np.full(len(pending), lie)
    conditioned = GaussianProcessRegressor(kernel=model.kernel_, optimizer=None, normalize_y=False)
    conditioned.fit(np.vstack([points, pending]), np.concatenate([y, fantasies]))
    return conditioned, fantasies
