"""search/_tpe_split.py: the good/bad split, known answers for one and several objectives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raytuner.search._tpe_split import split

INF, NAN = math.inf, math.nan

# Trials in their order. Front 0: 1, 3, 6; front 1: 0, 2, 5; front 2: 4. Trial 7 runs
# without a value (the constant liar), 8 failed, 9 diverged in one objective.
VALUES = np.array([
    (2, 5), (1, 4), (5, 2), (2, 2), (6, 6), (3, 3), (4, 1), (NAN, NAN), (INF, INF), (1, INF),
], dtype=float)
PENDING = np.array([False] * 7 + [True, False, False])
EVERY = np.ones(10, dtype=bool)


@pytest.mark.parametrize("gamma, good", [
    # ceil(γ 9): the nine that count (all but the running one) make n_good.
    (0.3, [1, 3, 6]),  # exactly front 0
    # Front 0 and one of front 1, whose reference point is (5.3, 5.3): alone, (3, 3) adds
    # 2.3^2 = 5.29, (2, 5) and (5, 2) add 3.3 * 0.3 = 0.99 each.
    (0.4, [1, 3, 5, 6]),
    # Then (2, 5) and (5, 2) each add 1 * 0.3: the earlier trial, 0, is taken.
    (0.5, [0, 1, 3, 5, 6]),
    # Front 0 does not fit: its reference point is (4.3, 4.3); (2, 2) adds the most, then
    # (1, 4) and (4, 1) add 0.3 each and the earlier trial wins.
    (0.2, [1, 3]),
    (0.1, [3]),
    (0.7, [0, 1, 2, 3, 5, 6, 4]),  # every finite trial; the non-finite ones are never good
])
def test_several_objectives_by_rank_then_hypervolume(gamma, good):
    got_good, got_bad = split(VALUES, EVERY, PENDING, gamma, max_good=25)
    assert got_good.tolist() == sorted(good)
    assert got_bad.tolist() == sorted(set(range(10)) - set(good))


def test_max_good_caps_the_good_group():
    good, _ = split(VALUES, EVERY, PENDING, 0.5, max_good=2)
    assert good.tolist() == [1, 3]


def test_the_split_is_made_among_the_rows_given():
    rows = np.array([True, False, True, False, True, True, False, True, False, False])
    # Among 0, 2, 4, 5 and the running 7: ceil(0.5 * 4) = 2 of front {0, 2, 5} by hypervolume.
    good, bad = split(VALUES, rows, PENDING, 0.5, max_good=25)
    assert good.tolist() == [0, 5] and bad.tolist() == [2, 4, 7]


def test_one_objective_takes_the_smallest_values():
    values = np.array([3.0, 1.0, NAN, 2.0, INF, 1.0])
    pending = np.array([False, False, True, False, False, False])
    # Five count (not the running trial without a value): ceil(0.5 * 5) = 3, ties by order.
    good, bad = split(values, np.ones(6, dtype=bool), pending, 0.5, max_good=25)
    assert good.tolist() == [1, 3, 5] and bad.tolist() == [0, 2, 4]


def test_at_least_one_good_and_none_without_a_finite_value():
    assert split(VALUES, EVERY, PENDING, 0.01, 25)[0].tolist() == [3]
    nothing = np.full((3, 2), INF)
    good, bad = split(nothing, np.ones(3, dtype=bool), np.zeros(3, dtype=bool), 0.5, 25)
    assert good.tolist() == [] and bad.tolist() == [0, 1, 2]
