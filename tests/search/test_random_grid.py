"""RandomSearcher and GridSearcher."""

from __future__ import annotations

import pickle

import pytest
from hyperopt import hp

from raytuner.search import FINISHED, GridSearcher, RandomSearcher, choice, grid, randint, uniform

SPACE = {"x": uniform(0, 1), "n": randint(0, 100), "c": choice(["a", "b"])}


def run(searcher, n, start=0):
    return [searcher.suggest(f"{i:05d}") for i in range(start, start + n)]


def test_random_same_seed_same_configs_other_seed_differs():
    a, b, c = RandomSearcher(SPACE, seed=3), RandomSearcher(SPACE, seed=3), RandomSearcher(SPACE, seed=4)
    for s in (a, b, c):
        s.setup(None, 10)
    configs = run(a, 10)
    assert configs == run(b, 10)
    assert configs != run(c, 10)
    assert len({cfg["x"] for cfg in configs}) == 10


def test_random_uses_the_tuners_space_when_built_without_one():
    searcher = RandomSearcher(seed=0)
    searcher.setup(SPACE, 5)
    assert set(searcher.suggest("00000")) == {"x", "n", "c"}


def test_random_without_any_space_says_where_to_pass_it():
    with pytest.raises(ValueError, match=r"RandomSearcher has no search space: pass `space=`"):
        RandomSearcher().setup(None, 5)


def test_random_state_round_trip_continues_identically():
    searcher = RandomSearcher(SPACE, seed=0)
    searcher.setup(None, 20)
    run(searcher, 5)
    state = pickle.loads(pickle.dumps(searcher.state()))
    expected = run(searcher, 5, start=5)
    resumed = RandomSearcher(SPACE, seed=99)
    resumed.setup(None, 20)
    resumed.restore(state)
    assert run(resumed, 5, start=5) == expected


def test_random_rejects_grid_pointing_at_grid_searcher():
    with pytest.raises(ValueError, match=r"RandomSearcher cannot search a space with grid\(\).*GridSearcher"):
        RandomSearcher({"a": grid([1, 2])})
    searcher = RandomSearcher()
    with pytest.raises(ValueError, match="GridSearcher"):
        searcher.setup({"m": {"a": grid([1, 2])}}, 3)


def test_random_rejects_hyperopt_expressions_pointing_at_hyperopt_searcher():
    with pytest.raises(ValueError, match="HyperOptSearcher"):
        RandomSearcher({"x": hp.uniform("x", 0, 1)})


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_named(seed):
    with pytest.raises(ValueError, match=rf"RandomSearcher: `seed` is {seed!r}, but must be"):
        RandomSearcher(SPACE, seed=seed)


@pytest.mark.parametrize("searcher", [RandomSearcher, GridSearcher])
def test_a_warm_start_is_refused_as_one_these_searchers_cannot_learn_from(searcher):
    name = searcher.__name__
    with pytest.raises(ValueError) as error:
        searcher(SPACE, warm_start=[({"x": 0.5}, 1.0)])
    assert str(error.value) == (
        f"{name}: `warm_start` is [({{'x': 0.5}}, 1.0)], but {name} takes none: it never learns from "
        "results, so old ones would change nothing. Drop warm_start=, or fork with a searcher that learns, "
        "e.g. TPESearcher(warm_start=rt.load(path).observations())."
    )


@pytest.mark.parametrize("searcher", [RandomSearcher, GridSearcher])
def test_an_unknown_option_is_named_with_the_likely_one(searcher):
    with pytest.raises(ValueError, match=rf"^{searcher.__name__}: unknown option `sed=1`. Did you mean `seed`\?$"):
        searcher(SPACE, sed=1)


GRID_SPACE = {"a": grid([1, 2]), "m": {"b": grid(["x", "y", "z"])}, "u": uniform(0, 1)}


def test_grid_crosses_all_values_in_a_fixed_order_then_finishes():
    searcher = GridSearcher(GRID_SPACE, seed=0)
    searcher.setup(None, num_trials=1)
    assert searcher.num_trials == 6 and searcher.grid_size == 6
    configs = run(searcher, 6)
    assert [(c["a"], c["m"]["b"]) for c in configs] == [
        (1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z"),
    ]
    assert all(0 <= c["u"] < 1 for c in configs)
    assert searcher.suggest("00006") is FINISHED
    assert searcher.suggest("00007") is FINISHED


def test_grid_num_trials_repeats_the_whole_grid_with_fresh_samples():
    searcher = GridSearcher(GRID_SPACE, seed=0)
    searcher.setup(None, num_trials=3)
    assert searcher.num_trials == 18
    configs = run(searcher, 18)
    keys = [(c["a"], c["m"]["b"]) for c in configs]
    assert keys[:6] == keys[6:12] == keys[12:]
    assert len({c["u"] for c in configs}) == 18
    assert searcher.suggest("00018") is FINISHED


def test_grid_without_grid_axes_runs_num_trials_samples():
    searcher = GridSearcher({"u": uniform(0, 1)}, seed=0)
    searcher.setup(None, num_trials=4)
    assert searcher.num_trials == 4
    assert len(run(searcher, 4)) == 4 and searcher.suggest("00004") is FINISHED


def test_grid_state_round_trip_continues_identically():
    searcher = GridSearcher(GRID_SPACE, seed=1)
    searcher.setup(None, 2)
    run(searcher, 4)
    state = pickle.loads(pickle.dumps(searcher.state()))
    expected = run(searcher, 8, start=4) + [searcher.suggest("x")]
    resumed = GridSearcher(GRID_SPACE, seed=5)
    resumed.setup(None, 2)
    resumed.restore(state)
    assert run(resumed, 8, start=4) + [resumed.suggest("x")] == expected
    assert expected[-1] is FINISHED


def test_grid_suggest_before_setup_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called"):
        GridSearcher(GRID_SPACE).suggest("00000")
