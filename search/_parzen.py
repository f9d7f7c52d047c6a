"""Kernels and the multivariate Parzen estimator behind :class:`search.TPESearcher`.

A Parzen estimator over a group of d parameters is a weighted mixture of product kernels,
one component per observation plus one for the prior (Bergstra et al., NeurIPS 2011;
the multivariate form of Falkner et al., BOHB, ICML 2018; Watanabe 2023, §3):

    p(x) = Σ_{i=0}^{n} w_i Π_{j=1}^{d} k_j(x_j | x_ij, σ_ij),    Σ_i w_i = 1,

where component i = n is the prior. Every kernel integrates (or sums) to one over its
domain, so p does too. Kernels by domain, in *model space* (log space for log domains):

- **Continuous** (``uniform``; ``loguniform`` in log space): a Gaussian truncated to
  [L, H],  k(x | μ, σ) = φ((x - μ)/σ) / (σ Z),  Z = Φ((H - μ)/σ) - Φ((L - μ)/σ).
- **Discrete** (``quniform``, ``qloguniform``, ``randint``): the truncated Gaussian's mass
  on the bin of each allowed value v,  P(v) = [Φ((b_v - μ)/σ) - Φ((a_v - μ)/σ)] / Z, with
  a_v = t(max(v - q/2, lo)), b_v = t(min(v + q/2, hi)), t the identity or log. The bins
  partition [lo, hi], so the masses sum to one and the prior matches the domain's own
  sampling (a uniform draw rounded to a multiple of q).
- **Categorical** (``choice``): an Aitchison-Aitken-style kernel that keeps mass κ on
  every category:  k(c | c_i) = (1[c = c_i] + κ) / (1 + K κ),  κ = w_prior / (n + 1), so the
  kernel sharpens as observations accumulate.

Bandwidths (numeric): σ_j = clip(β (H - L) n^{-1/(d+4)}, (H - L)/100, H - L), Scott's
rule with a bandwidth factor β (its own β on discrete dimensions, ``discrete_bandwidth``).
hyperopt's "magic clip" floor, (H - L)/min(100, n + 1), is *not* used: it keeps the
kernels of a small good group (n = 2..6 in a 60-trial sweep) at a quarter of the range or
wider, which cost regret on the mixed and conditional problems (benchmarks/RESULTS.md,
section "TPESearcher defaults"). The prior
component is k(x | (L + H)/2, H - L) on numeric dimensions and uniform on categorical ones.
An observation that lacks a parameter (a fork added it, see ``_fork``) uses the prior
kernel on that dimension: it says nothing about that parameter, so it marginalises to the
prior there and still informs the others.
"""

from __future__ import annotations

import functools
import sys
import threading
from dataclasses import dataclass
from types import ModuleType

import numpy as np

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


@functools.cache
def _special() -> ModuleType:
    """scipy.special (``ndtr``, ``ndtri``), imported at the first model-based suggestion:
    0.3-0.5 s that would otherwise come at ``rt.Tuner(...)``, before any worker starts."""
    import scipy.special

    return scipy.special


def preload() -> None:
    """Import scipy.special in a background thread, so that the import overlaps what comes
    before the first model-based suggestion (the workers' start, the first trials) instead of
    delaying that suggestion; a suggestion that comes first waits for the import to end."""
    if "scipy.special" not in sys.modules:
        threading.Thread(target=_special, name="raytuner-import-scipy", daemon=True).start()


@dataclass(frozen=True)
class NumericDim:
    """A numeric parameter in model space.

    Attributes:
        low, high: The bounds in the original space (for ``randint(a, b)``: a - 0.5, b - 0.5).
        log: Whether model space is log space.
        q: The step of a discrete domain, None for a continuous one.
        grid_low, grid_high: The smallest and largest allowed value (discrete only).
    """

    low: float
    high: float
    log: bool = False
    q: float | None = None
    grid_low: float = 0.0
    grid_high: float = 0.0

    @property
    def lo(self) -> float:
        """L, the lower bound in model space."""
        return float(np.log(self.low)) if self.log else self.low

    @property
    def hi(self) -> float:
        """H, the upper bound in model space."""
        return float(np.log(self.high)) if self.log else self.high

    def to_model(self, value: np.ndarray) -> np.ndarray:
        """Original values to model space (clipped into the bounds first)."""
        value = np.clip(value, self.low, self.high)
        return np.log(value) if self.log else value

    def from_model(self, x: np.ndarray) -> np.ndarray:
        """Model-space draws back to allowed values (rounded to the grid if discrete)."""
        value = np.exp(x) if self.log else x
        if self.q is None:
            return np.clip(value, self.low, self.high)
        return np.clip(np.round(value / self.q) * self.q, self.grid_low, self.grid_high)

    def bins(self, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a_v, b_v): the model-space bin of each allowed value v (discrete only)."""
        assert self.q is not None
        lower = np.maximum(value - self.q / 2, self.low)
        upper = np.minimum(value + self.q / 2, self.high)
        if self.log:
            return np.log(lower), np.log(upper)
        return lower, upper


@dataclass(frozen=True)
class CategoricalDim:
    """A ``choice`` with ``size`` options, modelled by their index."""

    size: int


Dim = NumericDim | CategoricalDim


def log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Φ(b) - Φ(a)) for a <= b: the mass of a standard Gaussian on [a, b].

    In the upper tail Φ(b) - Φ(a) cancels; Φ(-a) - Φ(-b) is the same number without it.
    Used on the (m, n) candidate-by-component grid, where it is most of the cost. A bin
    more than ~37 σ from a component's centre gets −inf, which is harmless in the mixture:
    the prior component (σ = H - L) gives every allowed value a positive mass.
    """
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    with np.errstate(divide="ignore"):
        return np.log(_special().ndtr(hi) - _special().ndtr(lo))


def truncnorm_sample(mu: np.ndarray, sigma: np.ndarray, lo: float, hi: float,
                     rng: np.random.Generator) -> np.ndarray:
    """One draw per (μ, σ) from the Gaussian truncated to [lo, hi], by inverse CDF."""
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    # Sample the mirror image where the interval lies in the upper tail, where Φ is ~1.
    flip = a > 0
    a, b = np.where(flip, -b, a), np.where(flip, -a, b)
    u = rng.uniform(_special().ndtr(a), _special().ndtr(b))
    z = _special().ndtri(u)
    z = np.where(flip, -z, z)
    return np.clip(mu + sigma * z, lo, hi)


class ParzenEstimator:
    """The mixture p(x) above, fitted to encoded observations of one parameter group.

    Args:
        dims: The group's dimensions.
        observations: (n, d) array in encoded form: model-space values for continuous
            dimensions, allowed values for discrete ones, option indices for categorical
            ones; NaN where an observation lacks the parameter.
        weights: (n,) non-negative weights of the observations (w_i before normalising).
        prior_weight: w_prior, the weight of the prior component.
        bandwidth: β, the bandwidth factor of Scott's rule.
        discrete_bandwidth: β on discrete numeric dimensions (default: ``bandwidth``).
    """

    def __init__(self, dims: list[Dim], observations: np.ndarray, weights: np.ndarray,
                 prior_weight: float, bandwidth: float, discrete_bandwidth: float | None = None) -> None:
        self.dims = dims
        n, d = observations.shape
        w = np.append(np.asarray(weights, dtype=float), prior_weight)
        self.log_w = np.log(w / w.sum())
        self._w = w / w.sum()
        self.mu: list[np.ndarray | None] = []
        self.sigma: list[np.ndarray | None] = []
        self.probs: list[np.ndarray | None] = []
        self.log_z: list[np.ndarray | None] = []  # log Z per component, numeric dims only
        self.log_probs: list[np.ndarray | None] = []
        self._inv_sigma: list[np.ndarray | None] = []
        self._const: list[np.ndarray | None] = []  # -log(sqrt(2 pi) sigma Z), continuous dims
        scott = max(n, 1) ** (-1.0 / (d + 4))
        for j, dim in enumerate(dims):
            column = observations[:, j]
            missing = np.append(np.isnan(column), True)  # the prior is "missing" everywhere
            if isinstance(dim, CategoricalDim):
                kappa = prior_weight / (n + 1)
                probs = np.full((n + 1, dim.size), kappa)
                present = np.flatnonzero(~missing)
                probs[present, column[present].astype(int)] += 1.0
                probs[missing] = 1.0
                probs /= probs.sum(axis=1, keepdims=True)
                self.probs.append(probs)
                self.log_probs.append(np.log(probs))
                self.mu.append(None)
                self.sigma.append(None)
                self.log_z.append(None)
                self._inv_sigma.append(None)
                self._const.append(None)
                continue
            lo, hi = dim.lo, dim.hi
            width = hi - lo
            centre = np.append(column, np.nan)
            if dim.q is not None:
                centre = np.where(missing, np.nan, dim.to_model(np.nan_to_num(centre, nan=dim.low)))
            beta = bandwidth if dim.q is None or discrete_bandwidth is None else discrete_bandwidth
            sigma = float(np.clip(beta * width * scott, width / 100, width))
            mu = np.where(missing, 0.5 * (lo + hi), centre)
            sigma_j = np.where(missing, width, sigma)
            self.mu.append(mu)
            self.sigma.append(sigma_j)
            # Every centre lies in [L, H], so a <= 0 <= b and Φ(b) - Φ(a) does not cancel.
            log_z = log_mass((lo - mu) / sigma_j, (hi - mu) / sigma_j)
            self.log_z.append(log_z)
            self._inv_sigma.append(1.0 / sigma_j)
            self._const.append(-_LOG_SQRT_2PI - np.log(sigma_j) - log_z)
            self.probs.append(None)
            self.log_probs.append(None)

    @property
    def size(self) -> int:
        """Number of components, the prior included."""
        return len(self.log_w)

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """m draws in encoded form, shape (m, d)."""
        index = rng.choice(self.size, size=m, p=self._w)
        out = np.empty((m, len(self.dims)))
        for j, dim in enumerate(self.dims):
            if isinstance(dim, CategoricalDim):
                cdf = np.cumsum(self.probs[j][index], axis=1)  # type: ignore[index]
                u = rng.uniform(size=(m, 1)) * cdf[:, -1:]
                out[:, j] = np.minimum((u > cdf).sum(axis=1), dim.size - 1)
                continue
            x = truncnorm_sample(self.mu[j][index], self.sigma[j][index],  # type: ignore[index]
                                 dim.lo, dim.hi, rng)
            value = dim.from_model(x)
            out[:, j] = value if dim.q is not None else dim.to_model(value)
        return out

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """log p(x) of encoded points, shape (m, d) -> (m,); vectorised over (m, n).

        Points must lie in the domain (as :meth:`sample` draws them): the density outside
        the bounds is not set to zero here.
        """
        acc = np.broadcast_to(self.log_w, (len(points), self.size)).copy()
        for j, dim in enumerate(self.dims):
            if isinstance(dim, CategoricalDim):
                acc += self.log_probs[j][:, points[:, j].astype(int)].T  # type: ignore[index]
                continue
            mu, inv_sigma, const = self.mu[j], self._inv_sigma[j], self._const[j]
            column = points[:, j][:, None]
            if dim.q is None:
                z = (column - mu) * inv_sigma
                acc += const - 0.5 * z * z
            else:
                # Candidates share few allowed values: compute each value's mass once.
                values, inverse = np.unique(points[:, j], return_inverse=True)
                a, b = dim.bins(values[:, None])
                mass = log_mass((a - mu) * inv_sigma, (b - mu) * inv_sigma) - self.log_z[j]
                acc += mass[inverse.ravel()]
        # logsumexp over components, by hand: scipy's generic one costs more than the sum.
        top = acc.max(axis=1, keepdims=True)
        top[~np.isfinite(top)] = 0.0
        return np.log(np.exp(acc - top).sum(axis=1)) + top[:, 0]
