"""A grid's points are computed one at a time: a grid of 10**8 points is set up and
searched without building them, in the order of itertools.product."""

from __future__ import annotations

import itertools
import pickle

import pytest

from raytuner.search import GridSearcher, grid, uniform
from raytuner.search._space import grid_points

HUGE = {f"a{i}": grid(list(range(10))) for i in range(8)}  # 10**8 points


def test_points_are_those_of_itertools_product_in_its_order():
    space = {"a": grid([1, 2]), "m": {"b": grid(["x", "y", "z"]), "c": grid([True, False])}, "u": uniform(0, 1)}
    points = grid_points(space)
    expected = [{"a": a, "m.b": b, "m.c": c} for a, b, c in itertools.product([1, 2], "xyz", [True, False])]
    assert len(points) == 12 and list(points) == expected
    assert points[-1] == expected[-1] and points[3:7] == expected[3:7]
    with pytest.raises(IndexError):
        points[12]


def test_a_grid_of_10_to_the_8_points_is_searched_without_building_them():
    searcher = GridSearcher(HUGE, seed=0)
    searcher.setup(None, num_trials=2)
    assert searcher.grid_size == 10**8 and searcher.num_trials == 2 * 10**8
    assert searcher.suggest("00000") == {f"a{i}": 0 for i in range(8)}
    assert searcher.suggest("00001") == {**{f"a{i}": 0 for i in range(7)}, "a7": 1}
    assert len(pickle.dumps(searcher)) < 10_000  # the Tuner pickles a searcher it cannot describe


def test_a_restored_grid_searcher_goes_on_from_the_next_point():
    first = GridSearcher(HUGE, seed=0)
    first.setup(None, num_trials=1)
    for index in range(12):
        first.suggest(f"{index:05d}")
    resumed = GridSearcher(HUGE, seed=0)
    resumed.setup(None, num_trials=1)
    resumed.restore(pickle.loads(pickle.dumps(first.state())))
    assert resumed.suggest("00012") == first.suggest("00012") == {**{f"a{i}": 0 for i in range(6)}, "a6": 1, "a7": 2}
