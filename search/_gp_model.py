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

**Absent columns.** A fork's old trial may lack a parameter added since (its column holds
``MISSING``, see ``_gp_encoding``). Its value was not recorded, but it was one fixed value
``v`` for the whole old experiment, which did not vary it; the kernel of a pair of points
is therefore taken in expectation over ``v`` under the parameter's prior, uniform on the
column: ``k(x, x') = E_v[k(x|v, x'|v)]``, where ``x|v`` fills the absent columns of ``x``
with ``v`` (the same ``v`` in both points). Two old trials then compare on the columns they
have, and an old and a new one through the average over ``v``: the old trial informs the
parameters it has and says nothing about the added one, as TPE's prior kernel does in a
fork (``_parzen``). A value an old trial held outside its new range (``DROPPED``) was its
own: there each point takes its own ``v_i``, ``k(x, x') = E[k(x|v_i, x'|v_j)]`` with
``v_i``, ``v_j`` independent. Either way the matrix is an average of kernel matrices with
positive weights, so the fit stays a GP. The expectation is taken on :data:`_NODES` points
of a scrambled Sobol set, the same sequence for shared values and a permutation of it per
row for a row's own (row ``r`` of a matrix is the same trial in every call: the
training points keep their order).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from ._gp_encoding import DROPPED, MISSING

_NODES = 16  # points of the expectation over absent columns; a power of two (Sobol)


@functools.cache
def _nodes(dims: int) -> np.ndarray:
    from scipy.stats import qmc

    return qmc.Sobol(dims, scramble=True, seed=0).random(_NODES)


@functools.cache
def _own_order(rows: int) -> np.ndarray:
    """Row r's order of the nodes for its own unknown values: a permutation seeded by r,
    so that two rows rarely take the same node at once (nearly independent values)."""
    return np.array([np.random.default_rng(r).permutation(_NODES) for r in range(rows)]).reshape(rows, _NODES)


class _Matern(Matern):
    """The Matérn 5/2 kernel, marginalised over absent columns (see the module docstring).

    On points without absent columns it is scikit-learn's ``Matern(nu=2.5)`` itself. With
    them, ``k`` and its gradient in the log length scales are averaged over the nodes,
    with scikit-learn's formulas: ``D_d = (x_d - x'_d)^2 / l_d^2``, ``t = sqrt(5 sum_d D_d)``,
    ``k = (1 + t + t^2 / 3) exp(-t)``, ``dk/dlog l_d = 5/3 D_d (1 + t) exp(-t)``; only the
    absent columns' terms change from node to node.
    """

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None, eval_gradient: bool = False):  # type: ignore[no-untyped-def]
        X = np.atleast_2d(X)
        Y = None if Y is None else np.atleast_2d(Y)
        # Only the sentinels themselves: EI's finite differences step a hair outside the cube.
        absent = np.any(_unknown(X), axis=0)
        if Y is not None:
            absent |= np.any(_unknown(Y), axis=0)
        columns = np.flatnonzero(absent)
        if not len(columns) or self.nu != 2.5 or (eval_gradient and Y is not None):
            return super().__call__(X, Y, eval_gradient)  # the last: scikit-learn refuses it
        Y = X if Y is None else Y
        scale = np.broadcast_to(np.asarray(self.length_scale, dtype=float), (X.shape[1],))
        squares = (X[:, None, :] - Y[None, :, :]) ** 2 / scale**2
        nodes = _nodes(len(columns))
        fill = [_Holes(Z[:, columns], nodes) for Z in (X, Y)]
        kernel = np.zeros(squares.shape[:2])
        gradient = np.zeros(squares.shape) if eval_gradient else None
        for k in range(_NODES):
            a, b = fill[0](k), fill[1](k)
            squares[:, :, columns] = (a[:, None, :] - b[None, :, :]) ** 2 / scale[columns] ** 2
            t = np.sqrt(5.0 * squares.sum(-1))
            decay = np.exp(-t)
            kernel += (1.0 + t + t**2 / 3.0) * decay / _NODES
            if gradient is not None:
                gradient += 5.0 / 3.0 * squares * ((1.0 + t) * decay)[..., None] / _NODES
        if gradient is None:
            return kernel
        if self.hyperparameter_length_scale.fixed:
            return kernel, np.empty(kernel.shape + (0,))
        if not self.anisotropic:
            gradient = gradient.sum(-1, keepdims=True)
        return kernel, gradient


def _unknown(Z: np.ndarray) -> np.ndarray:
    return (Z == MISSING) | (Z == DROPPED)


class _Holes:
    """The absent columns of a matrix, filled for the k-th node: a shared value the same
    in every row, a row's own value from its own order of the nodes."""

    def __init__(self, Z: np.ndarray, nodes: np.ndarray) -> None:
        self.Z, self.nodes = Z, nodes
        self.shared, self.own = Z == MISSING, Z == DROPPED
        self.order = _own_order(len(Z)) if self.own.any() else None

    def __call__(self, k: int) -> np.ndarray:
        filled = np.where(self.shared, self.nodes[k], self.Z)
        if self.order is not None:
            filled = np.where(self.own, self.nodes[self.order[:, k]], filled)
        return filled


def fit(points: np.ndarray, y: np.ndarray, n_restarts: int, seed: int) -> GaussianProcessRegressor:
    """A GP fitted to standardised ``y`` at ``points``, hyperparameters by marginal likelihood.

    Args:
        points: Shape ``(N, D)``, in the unit cube.
        y: Shape ``(N,)``, standardised (mean 0, standard deviation 1).
        n_restarts: Restarts of the likelihood optimisation from random hyperparameters.
        seed: Seed of the restarts.
    """
    dim = points.shape[1]
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * _Matern(
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
