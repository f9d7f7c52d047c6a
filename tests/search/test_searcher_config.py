"""Searchers described as data: config() rebuilds them, with their space as JSON."""

from __future__ import annotations

import json

import pytest
from hyperopt import hp

from raytuner.errors import ConfigError
from raytuner.search import (
    GPSearcher,
    GridSearcher,
    HyperOptSearcher,
    OptunaSearcher,
    Outcome,
    RandomSearcher,
    TPESearcher,
    TrialEnd,
    choice,
    from_config,
    grid,
    loguniform,
    qloguniform,
    quniform,
    randint,
    space_from_json,
    space_to_json,
    uniform,
)

SPACE = {
    "lr": loguniform(1e-4, 1e-1), "units": quniform(16, 256, 16), "batch": qloguniform(8, 512, 8),
    "layers": randint(1, 4), "opt": choice([{"name": "sgd", "momentum": uniform(0, 0.9)}, {"name": "adam"}]),
    "fixed": {"epochs": 9, "tag": "run", "sizes": [1, 2]},
}


def test_space_from_json_inverts_space_to_json():
    assert space_from_json(json.loads(json.dumps(space_to_json(SPACE)))) == SPACE
    assert space_from_json(space_to_json({"g": grid([1, 2])})) == {"g": grid([1, 2])}


def test_a_space_json_cannot_carry_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"stands for an object JSON cannot carry"):
        space_from_json(space_to_json({"x": hp.uniform("x", 0, 1)}))


SEARCHERS = [
    lambda: RandomSearcher(SPACE, seed=3),
    lambda: GridSearcher({"g": grid([1, 2]), "x": uniform(0, 1)}, seed=1),
    lambda: HyperOptSearcher(
        {"x": uniform(-5, 5), "k": choice(["a", "b"])}, n_startup=3, gamma=0.3, seed=7, stopped_trials="last",
        pending_limit=4, points_to_evaluate=[{"x": 1.0, "k": "a"}],
        warm_start=[({"x": 0.5, "k": "b"}, 0.25), ({"x": -1.0, "k": "a"}, Outcome(TrialEnd.STOPPED, 2.0, 3, 9)),
                    ({"x": 2.0, "k": "a"}, None)],
    ),
    lambda: TPESearcher({"x": uniform(-5, 5), "k": choice(["a", "b"])}, n_startup=2, gamma=0.2, seed=5),
    lambda: GPSearcher({"x": uniform(-5, 5), "k": choice(["a", "b"])}, n_startup=2, seed=5, n_candidates=50),
    lambda: OptunaSearcher({"x": uniform(-5, 5), "k": choice(["a", "b"])}, seed=5),
]


def test_searchers_with_a_warm_start_or_a_sampler_of_the_users_are_pickled_instead():
    import optuna

    old = [({"x": 0.5}, 0.25)]
    assert TPESearcher({"x": uniform(0, 1)}, warm_start=old).config() is None
    assert GPSearcher({"x": uniform(0, 1)}, warm_start=old).config() is None
    assert OptunaSearcher({"x": uniform(0, 1)}, warm_start=old).config() is None
    assert OptunaSearcher({"x": uniform(0, 1)}, sampler=optuna.samplers.RandomSampler(seed=0)).config() is None


@pytest.mark.parametrize("make", SEARCHERS)
def test_config_is_json_and_rebuilds_a_searcher_that_suggests_the_same(make):
    original = make()
    stored = json.loads(json.dumps(original.config()))  # as experiment.json holds it
    rebuilt = from_config(stored)
    assert type(rebuilt) is type(original) and rebuilt.config() == stored
    for searcher in (original, rebuilt):
        searcher.setup(None, num_trials=6)
    configs = [[s.suggest(f"{i:05d}") for i in range(4)] for s in (original, rebuilt)]
    assert configs[0] == configs[1]


def test_config_after_setup_holds_the_tuners_space():
    searcher = RandomSearcher(seed=1)
    assert searcher.config() == {"type": "RandomSearcher", "space": None, "seed": 1}
    searcher.setup({"x": uniform(0, 1)}, num_trials=2)
    assert from_config(searcher.config()).space == {"x": uniform(0, 1)}


def test_a_space_json_cannot_carry_makes_the_searcher_undescribable():
    # The Tuner then pickles it; a tuple would come back as a list, a hyperopt expression not at all.
    assert HyperOptSearcher({"x": hp.uniform("x", 0, 1)}).config() is None
    assert RandomSearcher({"x": uniform(0, 1), "shape": (3, 3)}).config() is None


class MySearcher(RandomSearcher):
    pass


@pytest.mark.parametrize("config", [MySearcher(seed=1).config(), {"type": "Searcher", "space": None},
                                    {"type": "uniform"}, {"space": None}, None])
def test_from_config_refuses_what_is_not_a_built_in_searcher(config):
    with pytest.raises(ConfigError, match=r"must be the config\(\) of a built-in searcher.*pickle it instead"):
        from_config(config)
