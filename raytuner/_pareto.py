"""Pareto maths for multi-objective tuning: ranks, hypervolume, and an order of trials.

Pure numpy, shared by the searchers (TPESearcher's good/bad split), the schedulers (ASHA's
and Hyperband's ranking at a rung) and the results (the front). Every objective is
*minimised*: values arrive signed, as searchers and schedulers see them. A point is a
vector of k values; a NaN counts as the worst value of its objective (``+inf``).

**Dominance.** a dominates b (a ≺ b) when a_j <= b_j for every objective j and a_j < b_j for
one. Equal points do not dominate each other.

**Non-dominated sorting** (Deb et al., "A fast and elitist multiobjective genetic algorithm:
NSGA-II", IEEE TEVC 2002). Rank 0 is the Pareto front of the set; rank r + 1 is the front of
what is left once ranks 0..r are removed. Equal points share a rank.

**Hypervolume** of a set S with reference point z (Zitzler and Thiele, 1998): the Lebesgue
measure of the region dominated by S and bounded by z,

    HV(S; z) = λ( ∪_{s ∈ S} [s_1, z_1] × ... × [s_k, z_k] ),

exactly, for any k: a sweep for k = 2 (O(n log n)); for k = 3, slices along the third
objective, each a 2-D sweep (O(n^2 log n)); for k >= 4 the WFG algorithm (While,
Bradstreet and Barone, "A fast way of calculating exact hypervolumes", IEEE TEVC 2012):
HV(S) = Σ_i [ HV({s_i}) - HV(nd(limit(s_i, {s_{i+1}, ...}))) ], where limit(p, T) =
{max(p, t) : t ∈ T} (componentwise) and nd keeps the non-dominated points; it recurses down
to the 2-D sweep. Its cost grows quickly with k and the front's size: it is meant for fronts
of tens to a few hundred points in 3 to 5 objectives. Points not strictly better than z in
every objective add nothing.

**Hypervolume contribution** of s ∈ S: HV(S) - HV(S \\ {s}), the volume only s dominates (0
for a dominated point and for each of two equal points).

**Default reference point** (:func:`reference_point`): per objective, w + 0.1 (w - b), where w
and b are the worst and the best finite value among the points; if w = b, w + 0.1 |w| (or
w + 0.1 if w = 0). It lies beyond every point, so the extreme points of a front have a
positive contribution, and it moves with the data: the order below is the same after any
per-objective shift and positive scaling of the values (Optuna's rule, max(1.1 w, 0.9 w), is
not shift-invariant).

**The Pareto order** (:func:`pareto_order`): fronts by rank; inside a front, greedy
hypervolume subset selection (Guerreiro, Fonseca and Paquete, "Greedy hypervolume subset
selection in low dimensions", Evolutionary Computation 2016; as Optuna's multi-objective TPE
breaks ties): the next point is the one that adds the most hypervolume to the points of its
front already taken, with the front's own default reference point; equal gains go to the
lower index (earlier trials first). Gains are compared in units of 1e-9 of the box between
the front's best values and z, so that ties of exact arithmetic stay ties in floating point
(the two points of a front of two add the same volume, 0.11 of the box between them). The first m points of the order are what
:func:`pareto_select` returns: whole fronts, then the greedy choice in the first front that
does not fit. With one objective the order is the sorted order (ties by index).

Example:
    >>> from raytuner._pareto import hypervolume, nondominated_ranks, pareto_order
    >>> points = [(1, 3), (2, 2), (3, 1), (3, 3)]
    >>> nondominated_ranks(points).tolist()
    [0, 0, 0, 1]
    >>> hypervolume(points, [4, 4])
    6.0
    >>> pareto_order(points).tolist()  # (2, 2) adds the most to its front
    [1, 0, 2, 3]
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from raytuner.errors import ConfigError

MARGIN = 0.1
"""How far beyond the worst point the default reference point lies, in spans of the data."""


def as_points(values: Any) -> np.ndarray:
    """``values`` (n vectors of k numbers, or n numbers) as an (n, k) float array, NaN -> +inf.

    Raises:
        ConfigError: If the vectors do not all have the same length.
    """
    try:
        points = np.array(values, dtype=float)
    except ValueError:
        raise ConfigError(f"points must all have the same number of objectives; got {values!r:.200}") from None
    if points.ndim == 1:
        points = points.reshape(-1, 1) if points.size else points.reshape(0, 1)
    if points.ndim != 2:
        raise ConfigError(f"points must be a list of vectors of numbers; got an array of shape {points.shape}")
    points[np.isnan(points)] = np.inf
    return points


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` dominates ``b`` (minimising; NaN is +inf)."""
    pa, pb = as_points([a, b])
    return bool(np.all(pa <= pb) and np.any(pa < pb))


def nondominated_ranks(points: Any, limit: int | None = None) -> np.ndarray:
    """The non-dominated rank of each point (0: the Pareto front).

    ``limit``: stop once the ranked points number at least ``limit``; the others then get
    the next rank, a lower bound of their own. Exact ranks for all points otherwise.
    """
    p = as_points(points)
    n, k = p.shape
    if n == 0:
        return np.zeros(0, dtype=int)
    unique, inverse = np.unique(p, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    if k == 1:
        return inverse.astype(int)  # np.unique sorts: the index among distinct values
    if k == 2:
        ranks = _ranks_2d(unique)
    else:
        counts = np.bincount(inverse, minlength=len(unique))
        ranks = _ranks_nd(unique, counts, n if limit is None else limit)
    return ranks[inverse]


def _ranks_2d(unique: np.ndarray) -> np.ndarray:
    """Ranks of distinct lexsorted 2-D points in O(n log n).

    Every point before p in lexicographic order has x <= p.x, so p is dominated by a point
    of front f iff the least y in front f is <= p.y; those least ys never decrease with f,
    so p's front is found by bisection.
    """
    least: list[float] = []
    ranks = np.empty(len(unique), dtype=int)
    for i, y in enumerate(unique[:, 1].tolist()):
        front = bisect.bisect_right(least, y)
        if front == len(least):
            least.append(y)
        else:
            least[front] = y
        ranks[i] = front
    return ranks


def _ranks_nd(unique: np.ndarray, counts: np.ndarray, limit: int) -> np.ndarray:
    """Ranks of distinct points, peeling fronts with the dominance matrix (Deb et al.)."""
    le = np.all(unique[:, None, :] <= unique[None, :, :], axis=2)
    dominated_by = le & ~np.eye(len(unique), dtype=bool)  # distinct points: <= means dominates
    remaining = dominated_by.sum(axis=0)
    ranks = np.full(len(unique), -1, dtype=int)
    front = np.flatnonzero(remaining == 0)
    rank = taken = 0
    while front.size:
        ranks[front] = rank
        taken += int(counts[front].sum())
        rank += 1
        if taken >= limit:
            break
        remaining = remaining - dominated_by[front].sum(axis=0)
        remaining[ranks >= 0] = -1
        front = np.flatnonzero(remaining == 0)
    ranks[ranks < 0] = rank
    return ranks


def pareto_front(points: Any) -> np.ndarray:
    """Indices of the non-dominated points (rank 0), ascending."""
    return np.flatnonzero(nondominated_ranks(points, limit=1) == 0)


def reference_point(points: Any, margin: float = MARGIN) -> np.ndarray:
    """The default reference point of ``points`` (see the module docstring)."""
    p = as_points(points)
    ref = np.empty(p.shape[1])
    for j in range(p.shape[1]):
        finite = p[:, j][np.isfinite(p[:, j])]
        if not finite.size:
            ref[j] = 1.0  # every point is +inf here: no point adds volume, whatever z is
            continue
        worst, best = float(finite.max()), float(finite.min())
        span = worst - best if worst > best else (abs(worst) if worst != 0 else 1.0)
        ref[j] = worst + margin * span
    return ref


def hypervolume(points: Any, reference: Sequence[float]) -> float:
    """HV(points; reference), exactly (see the module docstring)."""
    p = as_points(points)
    z = np.asarray(reference, dtype=float)
    if p.shape[1] != z.shape[0] and len(p):
        raise ConfigError(f"the reference point has {z.shape[0]} objectives, the points {p.shape[1]}")
    p = p[np.all(p < z, axis=1)]
    if not len(p):
        return 0.0
    return _hv(_nondominated(p), z)


def _nondominated(p: np.ndarray) -> np.ndarray:
    """The distinct non-dominated points of ``p``, lexsorted."""
    p = p[np.lexsort(p.T[::-1])]
    if p.shape[1] == 1:
        return p[:1]
    if p.shape[1] == 2:
        # A later point is dominated (or equal) unless its y is below every earlier y.
        least = np.minimum.accumulate(p[:, 1])
        keep = np.ones(len(p), dtype=bool)
        keep[1:] = least[1:] < least[:-1]
        return p[keep]
    keep = np.ones(len(p), dtype=bool)
    for i in range(len(p)):
        if keep[i]:
            # Later points cannot dominate earlier ones (lexsort); drop those i dominates or equals.
            later = slice(i + 1, None)
            keep[later] &= ~np.all(p[i] <= p[later], axis=1)
    return p[keep]


def _hv(front: np.ndarray, z: np.ndarray) -> float:
    """HV of distinct, lexsorted, mutually non-dominated points, all strictly inside z."""
    n, k = front.shape
    if k == 1:
        return float(z[0] - front[0, 0])
    if k == 2:
        # x ascends and y descends along a 2-D front: a sweep of rectangles.
        right = np.append(front[1:, 0], z[0])
        return float(np.sum((right - front[:, 0]) * (z[1] - front[:, 1])))
    if n == 1:
        return float(np.prod(z - front[0]))
    if k == 3:
        # Slices between consecutive values of the third objective: each is the 2-D
        # hypervolume of the points below it, times its depth.
        front = front[np.argsort(front[:, 2], kind="stable")]
        tops = np.append(front[1:, 2], z[2])
        return float(sum((tops[i] - front[i, 2]) * _hv(_nondominated(front[: i + 1, :2]), z[:2])
                         for i in range(n) if tops[i] > front[i, 2]))
    total = 0.0
    for i in range(n):
        inclusive = float(np.prod(z - front[i]))
        rest = front[i + 1:]
        if len(rest):
            limited = np.maximum(rest, front[i])
            inclusive -= _hv(_nondominated(limited), z)
        total += inclusive
    return total


def hypervolume_contributions(points: Any, reference: Sequence[float]) -> np.ndarray:
    """HV(points) - HV(points without i), for each i (see the module docstring)."""
    p = as_points(points)
    z = np.asarray(reference, dtype=float)
    out = np.zeros(len(p))
    for i in range(len(p)):
        out[i] = _gain(p[i], np.delete(p, i, axis=0), z)
    return out


def _gain(point: np.ndarray, others: np.ndarray, z: np.ndarray) -> float:
    """HV({point} ∪ others) - HV(others): the volume dominated by ``point`` alone."""
    if not np.all(point < z):
        return 0.0
    inclusive = float(np.prod(z - point))
    if not len(others):
        return inclusive
    limited = np.maximum(others, point)
    limited = limited[np.all(limited < z, axis=1)]
    if not len(limited):
        return inclusive
    return inclusive - _hv(_nondominated(limited), z)


def hypervolume_order(points: Any, reference: Sequence[float] | None = None,
                      limit: int | None = None) -> np.ndarray:
    """Greedy hypervolume subset selection: indices in the order taken, ``limit`` of them
    (default all). Each step takes the point that adds the most hypervolume (with
    ``reference``, default :func:`reference_point`) to those taken; equal gains go to the
    lower index. Meant for the points of one front (mutually non-dominated); any points do.
    """
    p = as_points(points)
    z = reference_point(p) if reference is None else np.asarray(reference, dtype=float)
    front = p.shape[1] == 2 and len(pareto_front(p)) == len(p)
    return _order(p, z, len(p) if limit is None else limit, front)


def _order(p: np.ndarray, z: np.ndarray, limit: int, front: bool) -> np.ndarray:
    """:func:`hypervolume_order`; ``front``: ``p`` is a 2-D front (the fast gains apply)."""
    n, k = p.shape
    limit = max(0, min(limit, n))
    if k == 1:
        return np.lexsort((np.arange(n), p[:, 0]))[:limit]
    # Values near the float's limit (1e155 and up, two objectives) overflow a volume: such
    # a gain is inf, and ties with the others that overflow.
    with np.errstate(over="ignore", invalid="ignore"):
        ideal = np.array([np.min(c[np.isfinite(c)], initial=np.inf) for c in p.T])
        unit = float(np.prod(np.abs(z - ideal)))
        unit = unit if np.isfinite(unit) and unit > 0 else 1.0
        gain = _front_gain_2d(p, z) if front else lambda i, taken: _gain(p[i], p[taken], z)
        return _greedy(n, limit, lambda i, taken: _ticks(gain(i, taken), unit))


def _ticks(gain: float, unit: float) -> float:
    """``gain`` in units of 1e-9 of the box, rounded (near-ties of floating point become
    ties); one too large to round stays inf, and an undefined one (inf - inf) is 0."""
    scaled = float(gain) / unit * 1e9
    if math.isfinite(scaled):
        return round(scaled)
    return 0 if math.isnan(scaled) else scaled


def _front_gain_2d(p: np.ndarray, z: np.ndarray) -> Any:
    """What point i of a 2-D front adds to the points taken, in O(log n).

    Along the front sorted by x (y descending; equal points adjacent), it is the box from
    p_i to (x of the nearest taken point after it, y of the nearest taken point before it),
    each z if there is none. A point with an infinite value adds nothing.
    """
    order = np.lexsort((p[:, 1], p[:, 0]))
    place = np.empty(len(p), dtype=int)
    place[order] = np.arange(len(p))
    xs, ys = p[order, 0].tolist(), p[order, 1].tolist()
    z0, z1 = float(z[0]), float(z[1])
    finite = np.isfinite(p).all(axis=1).tolist()
    chosen: list[int] = []  # the places of the points taken, sorted; ``taken`` only grows

    def gain(i: int, taken: list[int]) -> float:
        for j in taken[len(chosen):]:
            bisect.insort(chosen, int(place[j]))
        if not finite[i]:
            return 0.0
        at = place[i]
        after = bisect.bisect_right(chosen, at)
        right = xs[chosen[after]] if after < len(chosen) else z0
        top = ys[chosen[after - 1]] if after > 0 else z1
        return max(right - xs[at], 0.0) * max(top - ys[at], 0.0)

    return gain


def _greedy(n: int, limit: int, gain: Any) -> np.ndarray:
    """The greedy order of n points by ``gain(i, taken)``, lazily: a gain only shrinks as
    points are taken (hypervolume is submodular), so a gain computed earlier is an upper
    bound, and only the candidate on top of the heap needs its gain computed again."""
    heap = [(-gain(i, []), i, 0) for i in range(n)]
    heapq.heapify(heap)
    taken: list[int] = []
    while len(taken) < limit:
        bound, i, when = heapq.heappop(heap)
        if when == len(taken) or not heap or (-(fresh := gain(i, taken)), i) <= heap[0][:2]:
            taken.append(i)
        else:
            heapq.heappush(heap, (-fresh, i, len(taken)))
    return np.array(taken, dtype=int)


def pareto_order(points: Any, limit: int | None = None) -> np.ndarray:
    """Indices of ``points``, best first: the first ``limit`` (default all) of the Pareto
    order (fronts by rank, greedy hypervolume order inside each; module docstring)."""
    p = as_points(points)
    n = len(p)
    limit = n if limit is None else min(limit, n)
    ranks = nondominated_ranks(p, limit=limit)
    order: list[int] = []
    rank = 0
    while len(order) < limit:
        front = np.flatnonzero(ranks == rank)
        taken = _order(p[front], reference_point(p[front]), limit - len(order), p.shape[1] == 2)
        order.extend(front[taken].tolist())
        rank += 1
    return np.array(order, dtype=int)


def pareto_select(points: Any, m: int) -> np.ndarray:
    """The m best points of the Pareto order, as sorted indices: whole fronts by rank, then
    the greedy hypervolume choice within the first front that does not fit."""
    p = as_points(points)
    m = max(0, min(m, len(p)))
    ranks = nondominated_ranks(p, limit=m)
    ranks_, counts = np.unique(ranks, return_counts=True)
    whole = ranks_[np.cumsum(counts) <= m]
    chosen = np.flatnonzero(ranks <= (whole.max() if whole.size else -1))
    if len(chosen) < m:
        last = np.flatnonzero(ranks == (whole.max() + 1 if whole.size else 0))
        extra = last[_order(p[last], reference_point(p[last]), m - len(chosen), p.shape[1] == 2)]
        chosen = np.sort(np.concatenate([chosen, extra]))
    return chosen
