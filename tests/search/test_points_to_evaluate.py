"""HyperOptSearcher(points_to_evaluate=...) refuses keys the space lacks, which hyperopt
would drop silently: a typo, or a key of another option of a choice of dicts."""

from __future__ import annotations

import pytest
from hyperopt import hp

from raytuner.errors import ConfigError
from raytuner.search import HyperOptSearcher, choice, loguniform, uniform

SPACE = {"lr": loguniform(1e-4, 1e-1), "opt": choice([{"name": "sgd", "m": uniform(0, 1)}, {"name": "adam"}]),
         "epochs": 10}


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([{"lr": 0.01, "lr_decay": 0.9, "opt": {"name": "sgd", "m": 0.9}}],
         r"points_to_evaluate\[0\] has keys the space lacks: 'lr_decay'; hyperopt would drop them"),
        ([{"lr": 0.01, "opt": {"name": "adam"}}, {"lr": 0.01, "opt": {"name": "adam", "m": 0.9}}],
         r"points_to_evaluate\[1\] has keys the space lacks: 'opt\.m';"),
        ([{"lr": 0.01, "opt": {"name": "sgd", "m": 0.5, "nesterov": True}, "x": 1}],
         r"points_to_evaluate\[0\] has keys the space lacks: 'x', 'opt\.nesterov'; hyperopt would drop them"),
    ],
)
def test_a_point_with_keys_the_space_lacks_is_refused_naming_them(points, expected):
    searcher = HyperOptSearcher(seed=0, points_to_evaluate=points)
    with pytest.raises(ConfigError, match=expected + r".*Remove them or add them to the space"):
        searcher.setup(SPACE, 4)


def test_a_native_choice_of_dicts_is_checked_the_same_way():
    space = {"opt": hp.choice("opt", [{"name": "sgd", "m": hp.uniform("m", 0, 1)}, {"name": "adam"}])}
    searcher = HyperOptSearcher(space, seed=0, points_to_evaluate=[{"opt": {"name": "adam", "m": 0.9}}])
    # Named by hyperopt's label of the option, as a native space's errors name it.
    with pytest.raises(ConfigError, match=r"points_to_evaluate\[0\] has keys the space lacks: 'opt\[1\]\.m'"):
        searcher.setup(None, 4)


def test_points_that_fit_come_first_as_given():
    points = [{"lr": 0.01, "opt": {"name": "sgd", "m": 0.9}, "epochs": 10}, {"lr": 0.001, "opt": {"name": "adam"}}]
    searcher = HyperOptSearcher(SPACE, seed=0, points_to_evaluate=points)
    searcher.setup(None, 4)
    assert searcher.suggest("00000") == points[0]
    assert searcher.suggest("00001") == {**points[1], "epochs": 10}
