"""Rung math shared by ASHA (both variants) and Hyperband, as small pure functions.

Symbols follow the papers:

- Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization",
  JMLR 18(185), 2018: ``R`` (maximum resource, in units of the minimum resource), ``eta``
  (reduction factor), ``s`` (bracket), ``n`` (trials in a bracket), ``r`` (their first
  resource).
- Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020 (ASHA):
  ``r`` (minimum resource), ``R`` (maximum resource), ``eta``, ``s`` (early-stopping rate:
  the first rung of bracket ``s`` is at ``r * eta**s``).

Counts and levels are computed with :class:`fractions.Fraction` so that float error cannot
drop a rung or a bracket (``math.log(243, 3)`` is 4.999...).

With several objectives a value is a tuple, and "the best n" of a rung are the first n of
the Pareto order of :mod:`raytuner._pareto` (non-dominated rank, then greedy hypervolume
contribution inside a front, then arrival): :func:`pareto_ranked` and
:func:`in_pareto_top`. numpy is imported only there, so that a single-objective run (and
every trial worker) does without it.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Sequence, Union

Number = Union[int, float]


def _exact(x: Number) -> Fraction:
    return Fraction(x)


def _plain(x: Fraction) -> Number:
    """An int where the level is integral (27, not 27.0), a float otherwise."""
    return x.numerator if x.denominator == 1 else float(x)


def floor_log(x: Number, base: Number) -> int:
    """``floor(log_base(x))`` for ``x >= 1`` and ``base > 1``, without float error."""
    x_, base_ = _exact(x), _exact(base)
    k, power = 0, base_
    while power <= x_:
        k, power = k + 1, power * base_
    return k


def rung_levels(
    min_resource: Number, max_resource: Number, reduction_factor: Number, s: int = 0
) -> list[Number]:
    """Resources at which bracket ``s`` of ASHA decides: ``r * eta**(k + s)`` for k = 0, 1, ...

    Args:
        min_resource: ``r``, the smallest resource a trial gets.
        max_resource: ``R``, the resource at which a trial is done.
        reduction_factor: ``eta``.
        s: the early-stopping rate (bracket index; 0 is the most aggressive bracket).

    Returns:
        The levels strictly below ``R``, increasing. A level equal to ``R`` is left out
        (``<``, not ``<=``): a trial that reaches ``R`` is finished, so there is nothing
        left to decide there.
    """
    r, big_r, eta = _exact(min_resource), _exact(max_resource), _exact(reduction_factor)
    levels = []
    level = r * eta**s
    while level < big_r:
        levels.append(_plain(level))
        level *= eta
    return levels


def nan_to_worst(value: float) -> float:
    """Values are minimised; a diverged trial's value ranks below everything: ``+inf`` for
    any value that is not finite.

    NaN, ``+inf`` and ``-inf`` alike: values reach a scheduler signed to minimise, so a loss
    that diverged to ``-inf`` (a Gaussian likelihood whose variance collapsed), or one that
    reached ``+inf`` under ``mode="max"``, arrives as ``-inf``, which would otherwise rank
    best and become a rung's cutoff for every later trial. The README's rule is that NaN
    and infinite values are never chosen as best.

    >>> [nan_to_worst(v) for v in (0.5, float("nan"), float("-inf"), float("inf"))]
    [0.5, inf, inf, inf]
    """
    return value if math.isfinite(value) else math.inf


def stopping_cutoff(sorted_values: Sequence[float], reduction_factor: Number) -> float | None:
    """The value a trial must not exceed to continue past a rung (stopping ASHA).

    It is the ``1/eta`` quantile of the values the rung recorded before the trial arrived,
    interpolated linearly between order statistics, which is numpy's default percentile
    and so Ray Tune's rule (Ray takes the ``1 - 1/eta`` percentile of negated values),
    except next to an infinite value, where the finite neighbour is taken.

    Args:
        sorted_values: the rung's recorded values, ascending (lower is better).
        reduction_factor: ``eta``.

    Returns:
        The cutoff, or None for an empty rung (its first trial always continues).
    """
    n = len(sorted_values)
    if n == 0:
        return None
    position = (n - 1) / reduction_factor
    lo = math.floor(position)
    fraction = position - lo
    a = sorted_values[lo]
    if fraction == 0 or lo + 1 == n:
        return a
    b = sorted_values[lo + 1]
    # No cutoff lies "a fraction of the way" to an infinite value (a NaN, i.e. a diverged
    # trial): take the lower neighbour. numpy would return inf and let everything through.
    if a == b or math.isinf(a) or math.isinf(b):
        return a
    return a + (b - a) * fraction


def pareto_top_size(n: int, reduction_factor: Number) -> int:
    """How many of a rung's ``n + 1`` values (``n`` recorded, one arriving) continue under
    stopping ASHA with several objectives: ``floor((n - 1) / eta) + 1``, the places up to
    the position of the single-objective cutoff, the ``1/eta`` quantile of the ``n``. The
    two rules agree exactly where ``(n - 1) / eta`` is an integer (no interpolation)."""
    return math.floor(Fraction(n - 1) / _exact(reduction_factor)) + 1


def in_pareto_top(recorded: Sequence[tuple[float, ...]], value: tuple[float, ...],
                  reduction_factor: Number) -> bool:
    """Whether ``value`` arriving at a rung with ``recorded`` values continues (stopping
    ASHA, several objectives): it is among the first :func:`pareto_top_size` of the Pareto
    order of the recorded values and itself, coming after them in arrival order. The first
    value at a rung always continues; a value with an infinite (diverged, NaN) entry never
    does at a rung with values, as a NaN never does with one objective."""
    n = len(recorded)
    if n == 0:
        return True
    if any(math.isinf(v) for v in value):
        return False
    from raytuner._pareto import pareto_order

    top = pareto_order([*recorded, value], limit=pareto_top_size(n, reduction_factor))
    return n in top.tolist()


def pareto_ranked(values: dict[str, tuple[float, ...]], limit: int | None = None) -> list[str]:
    """The ids of ``values`` (in arrival order), best first by the Pareto order; the first
    ``limit`` only if given."""
    from raytuner._pareto import pareto_order

    ids = list(values)
    return [ids[i] for i in pareto_order(list(values.values()), limit=limit).tolist()]


def num_promotable(n: int, reduction_factor: Number) -> int:
    """``floor(n / eta)``: how many of the ``n`` trials of a rung may ever leave it.

    Floor rather than ceil, as in both papers: a rung with fewer than ``eta`` trials
    promotes nobody yet, so a promotion always means "better than ``eta - 1`` others".
    """
    return math.floor(Fraction(n) / _exact(reduction_factor))


@dataclass(frozen=True)
class HyperbandBracket:
    """One bracket of synchronous Hyperband: ``n`` trials starting at resource ``r``.

    ``rounds`` holds ``(n_i, r_i)`` for i = 0..s: ``n_i = floor(n * eta**-i)`` trials run
    to ``r_i = r * eta**i``; the last round ends at ``R``.
    """

    s: int
    n: int
    r: Number
    rounds: tuple[tuple[int, Number], ...]


def hyperband_brackets(max_resource: Number, reduction_factor: Number) -> list[HyperbandBracket]:
    """The brackets of one Hyperband iteration, in the paper's order (s = s_max .. 0).

    ``s_max = floor(log_eta(R))``, ``B = (s_max + 1) R``, ``n = ceil((B / R) eta**s / (s + 1))``
    and ``r = R eta**-s`` (Li et al., JMLR 2018, Algorithm 1). ``R`` is in units of the
    smallest resource, so ``max_resource=81, reduction_factor=3`` gives brackets of 81, 34,
    15, 8 and 5 trials starting at 1, 3, 9, 27 and 81.
    """
    big_r, eta = _exact(max_resource), _exact(reduction_factor)
    s_max = floor_log(max_resource, reduction_factor)
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil(Fraction(s_max + 1, s + 1) * eta**s)
        r = big_r / eta**s
        rounds = tuple(
            (math.floor(n / eta**i), _plain(r * eta**i)) for i in range(s + 1)
        )
        brackets.append(HyperbandBracket(s=s, n=n, r=_plain(r), rounds=rounds))
    return brackets


def asha_bracket_weights(
    min_resource: Number, max_resource: Number, reduction_factor: Number, brackets: int
) -> list[int]:
    """Relative sizes of ASHA brackets s = 0..brackets-1 under asynchronous Hyperband.

    Bracket ``s`` of ASHA starts at ``r * eta**s``, like Hyperband's bracket
    ``s_max - s``; it gets that bracket's share of trials, ``n`` from
    :func:`hyperband_brackets` (81 : 34 : 15 : 8 : 5 for R/r = 81, eta = 3).
    """
    ratio = _exact(max_resource) / _exact(min_resource)
    sizes = [b.n for b in hyperband_brackets(ratio, reduction_factor)]
    return sizes[:brackets]


def assign_bracket(trial_id: str, seed: int, weights: Sequence[int]) -> int:
    """A bracket index drawn with probability proportional to ``weights``.

    The draw hashes ``(seed, trial_id)``, so it depends on nothing else: not on the order
    of trials, not on a random state that would need saving, not on Python's salted
    ``hash``.
    """
    digest = hashlib.sha256(f"{seed}\x00{trial_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights)
    total = 0
    for index, weight in enumerate(weights):
        total += weight
        if u < total:
            return index
    return len(weights) - 1


@dataclass
class Rung:
    """Values recorded at one resource level; shared by stopping and promotion ASHA.

    Values are floats, or with several objectives tuples (all of one kind in a rung).
    """

    level: Number
    values: dict[str, Any] = field(default_factory=dict)
    """trial id -> value, in arrival order (ties rank by arrival)."""
    promoted: set[str] = field(default_factory=set)
    _sorted: list[float] = field(default_factory=list, repr=False)
    _pareto: tuple[int, list[str]] | None = field(default=None, repr=False)
    """Several objectives: (limit, the first ``limit`` ids of the Pareto order), until the
    next value is recorded."""

    def record(self, trial_id: str, value: Any) -> None:
        self.values[trial_id] = value
        if isinstance(value, tuple):
            self._pareto = None
        else:
            bisect.insort(self._sorted, value)

    def cutoff(self, reduction_factor: Number) -> float | None:
        return stopping_cutoff(self._sorted, reduction_factor)

    def ranked(self, limit: int | None = None) -> list[str]:
        """Trial ids, best first (the first ``limit`` if given); ties keep arrival order
        (sorted() is stable). Several objectives: the Pareto order (:func:`pareto_ranked`)."""
        if not self.values or not isinstance(next(iter(self.values.values())), tuple):
            ranked = sorted(self.values, key=self.values.__getitem__)
            return ranked if limit is None else ranked[:limit]
        want = len(self.values) if limit is None else min(limit, len(self.values))
        if self._pareto is None or self._pareto[0] < want:
            self._pareto = (want, pareto_ranked(self.values, want))
        return self._pareto[1][:want]

    def promotion_candidate(
        self, reduction_factor: Number, can_resume: Callable[[str], bool]
    ) -> str | None:
        """The best trial in the current top ``floor(n/eta)`` not yet promoted and resumable.

        The paper's Algorithm 2 (``get_job``): the top ``k = floor(n/eta)`` of the rung's
        ``n`` values as they stand now, skipping trials already promoted. Promoted trials
        keep their place in that count after they moved on, so while the order of the top
        stays as it was, ``k`` promotions fill it. But a later, better trial can push a
        promoted one out of the top ``k`` and be promoted in turn, so a rung may promote
        more than ``floor(n/eta)`` trials in total: up to ``n - eta + 1`` (an integer eta,
        ``n >= eta``) when each arrival beats those before it. A trial is only ever promoted
        while it is in the top ``k``.

        >>> rung = Rung(level=1)
        >>> for trial_id, value in [("a", 5.0), ("b", 4.0), ("c", 3.0)]:
        ...     rung.record(trial_id, value)
        >>> rung.promoted.add(rung.promotion_candidate(3, lambda t: True))  # n = 3: the top 1 is c
        >>> rung.record("d", 1.0)  # n = 4, floor(4/3) = 1: the top 1 is now d, not yet promoted
        >>> rung.promotion_candidate(3, lambda t: True)
        'd'
        """
        top = self.ranked(num_promotable(len(self.values), reduction_factor))
        for trial_id in top:
            if trial_id not in self.promoted and can_resume(trial_id):
                return trial_id
        return None

    def state(self) -> dict:
        return {
            "level": self.level,
            "values": list(self.values.items()),
            "promoted": sorted(self.promoted),
        }

    @classmethod
    def from_state(cls, state: dict) -> Rung:
        rung = cls(level=state["level"], promoted=set(state["promoted"]))
        for trial_id, value in state["values"]:
            # nan_to_worst again: a state saved before it mapped -inf kept -inf as a value.
            value = tuple(map(nan_to_worst, value)) if isinstance(value, (list, tuple)) else nan_to_worst(value)
            rung.record(trial_id, value)
        return rung
