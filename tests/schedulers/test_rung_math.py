"""The pure rung functions: levels, cutoffs, promotion counts, Hyperband brackets."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from raytuner.schedulers import hyperband_brackets, rung_levels
from raytuner.schedulers._rungs import (
    Rung,
    asha_bracket_weights,
    assign_bracket,
    floor_log,
    num_promotable,
    stopping_cutoff,
)


@pytest.mark.parametrize(
    ("x", "base", "expected"),
    # math.log(243, 3) == 4.999999999999999 and math.log(1000, 10) == 2.9999999999999996.
    [(243, 3, 5), (1000, 10, 3), (81, 3, 4), (80, 3, 3), (2, 3, 0), (1, 2, 0), (2**40, 2, 40),
     (15.625, 2.5, 3), (15.62, 2.5, 2)],
)
def test_floor_log_is_exact(x, base, expected):
    assert floor_log(x, base) == expected


def test_rung_levels():
    assert rung_levels(1, 81, 3) == [1, 3, 9, 27]  # R itself is not a rung: done there
    assert rung_levels(1, 82, 3) == [1, 3, 9, 27, 81]
    assert rung_levels(1, 81, 3, s=2) == [9, 27]
    assert rung_levels(2, 100, 2.5) == [2, 5, 12.5, 31.25, 78.125]
    assert rung_levels(10, 10, 2) == []
    assert all(isinstance(level, int) for level in rung_levels(1, 1000, 10))


def test_hyperband_brackets_r81_eta3():
    brackets = hyperband_brackets(81, 3)
    assert [(b.n, b.r) for b in brackets] == [(81, 1), (34, 3), (15, 9), (8, 27), (5, 81)]
    assert [b.rounds for b in brackets][1] == ((34, 3), (11, 9), (3, 27), (1, 81))


@pytest.mark.parametrize("eta", [2, 3, 4, 2.5])
@pytest.mark.parametrize("big_r", [1, 2, 3, 8, 9, 10, 27, 64, 81, 100, 243, 1000])
def test_hyperband_brackets_follow_the_paper(big_r, eta):
    brackets = hyperband_brackets(big_r, eta)
    s_max = floor_log(big_r, eta)
    assert [b.s for b in brackets] == list(range(s_max, -1, -1))
    for b in brackets:
        assert b.n == math.ceil((s_max + 1) * eta**b.s / (b.s + 1) - 1e-9)
        assert math.isclose(b.r, big_r * eta**-b.s)
        assert len(b.rounds) == b.s + 1
        assert b.rounds[-1][1] == big_r  # the last round runs to R exactly
        assert all(n_i >= 1 for n_i, _ in b.rounds)


def test_stopping_cutoff_is_numpys_linear_quantile():
    rng = random.Random(0)
    for n in range(1, 40):
        values = sorted(rng.random() for _ in range(n))
        for eta in (2, 3, 4):
            assert math.isclose(stopping_cutoff(values, eta), np.percentile(values, 100 / eta))
    assert stopping_cutoff([], 3) is None
    assert stopping_cutoff([0.5, math.inf], 3) == 0.5  # not inf: a NaN must not open the rung
    assert stopping_cutoff([math.inf, math.inf], 3) == math.inf


def test_num_promotable_is_floor():
    assert [num_promotable(n, 3) for n in range(8)] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert num_promotable(5, 2.5) == 2


def test_rung_candidates_skip_promoted_and_unresumable():
    rung = Rung(level=1)
    for t, v in [("a", 0.3), ("b", 0.1), ("c", 0.2), ("d", 0.1), ("e", 0.9), ("f", 0.8)]:
        rung.record(t, v)
    assert rung.ranked() == ["b", "d", "c", "a", "f", "e"]  # ties by arrival
    assert rung.promotion_candidate(3, lambda t: True) == "b"
    rung.promoted.add("b")
    assert rung.promotion_candidate(3, lambda t: True) == "d"
    assert rung.promotion_candidate(3, lambda t: t != "d") is None  # top 2 only


def test_bracket_assignment():
    weights = asha_bracket_weights(1, 81, 3, 5)
    assert weights == [81, 34, 15, 8, 5]
    assert asha_bracket_weights(1, 81, 3, 2) == [81, 34]
    picks = [assign_bracket(f"t{i}", 0, weights) for i in range(200)]
    assert picks == [assign_bracket(f"t{i}", 0, weights) for i in range(200)]
    assert set(picks) == {0, 1, 2, 3, 4}
    assert [assign_bracket("t", seed, [1]) for seed in range(5)] == [0] * 5
