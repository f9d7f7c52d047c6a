"""The one model of a search space that every searcher builds on (search/_params.py)."""

from __future__ import annotations

import numpy as np
import pytest

from raytuner.errors import ConfigError
from raytuner.search import Domain, RandomSearcher, choice, grid, loguniform, quniform, randint, uniform
from raytuner.search._params import Param, config_from_params, match_config, parameters
from raytuner.search._domains import Range

SPACE = {
    "lr": loguniform(1e-4, 1e-1),
    "net": {"units": quniform(16, 256, 16), "layers": randint(1, 4)},
    "act": choice(["relu", "tanh"]),
    "opt": choice([{"name": "sgd", "momentum": uniform(0, 0.99)}, {"name": "adam"}]),
    "epochs": 10,
}


def test_parameters_are_labelled_by_path_with_their_conditions():
    params = parameters(SPACE)
    assert list(params) == ["lr", "net.units", "net.layers", "act", "opt", "opt[0].momentum"]
    assert params["opt[0].momentum"] == Param("opt[0].momentum", SPACE["opt"].options[0]["momentum"],
                                             (("opt", 0),))
    assert params["lr"].conditions == ()
    assert params["opt[0].momentum"].is_active({"opt": 0}) and not params["opt[0].momentum"].is_active({"opt": 1})


def test_parameters_refuse_what_no_model_reads_naming_the_searcher():
    with pytest.raises(ConfigError, match=r"S cannot model 'x': it is a grid\(\) axis \(grid\(\[1, 2\]\)\).*GridSearcher"):
        parameters({"x": grid([1, 2])}, "S")

    class Mine(Domain):
        def sample(self, rng):
            return 7

        def to_json(self):
            return {"type": "mine"}

    with pytest.raises(ConfigError, match=r"S cannot model 'm.x': it is a domain of your own.*RandomSearcher"):
        parameters({"m": {"x": Mine()}}, "S")
    searcher = RandomSearcher({"m": {"x": Mine()}}, seed=0)  # which samples it, as it always did
    searcher.setup(None, 1)
    assert searcher.suggest("0") == {"m": {"x": 7}}


def test_two_entries_with_one_label_are_refused():
    # Both would read the same value from a point, and silently get the same config value.
    with pytest.raises(ConfigError, match=r"S: two entries of the space have the label 'a.b'"):
        parameters({"a.b": uniform(0, 1), "a": {"b": uniform(0, 1)}}, "S")


def test_config_from_params_clamps_randint_into_its_range():
    # hyperopt models randint(1, 4) as a rounded uniform on [0.5, 3.5]: 0.5 rounds (half to
    # even) to 0 and 3.5 to 4, outside the domain. Every searcher builds configs here.
    assert [config_from_params({"r": randint(1, 4)}, {"r": v})["r"] for v in (0.5, 1.0, 2.6, 3.5)] == [1, 1, 3, 3]
    # q ranges are not clamped: the rounding of one stored before bounds had to be multiples
    # of q (Range itself, as from_json rebuilds it) may reach just outside.
    assert config_from_params({"q": Range(10, 20, q=4)}, {"q": 8.0})["q"] == 8


def test_config_from_params_reads_only_the_active_labels_in_key_order():
    asked = []

    def value(label):
        asked.append(label)
        return {"lr": 0.01, "net.units": 64.0, "net.layers": 2.0, "act": 1, "opt": 1}[label]

    config = config_from_params(SPACE, value)
    assert config == {"lr": 0.01, "net": {"units": 64, "layers": 2}, "act": "tanh", "opt": {"name": "adam"},
                      "epochs": 10}
    assert asked == ["lr", "net.units", "net.layers", "act", "opt"]  # opt[0].momentum is inactive
    assert type(config["net"]["units"]) is int and type(config["net"]["layers"]) is int


def test_match_config_takes_a_config_apart_and_says_why_a_value_does_not_fit():
    config = {"lr": 0.5, "net": {"units": "many", "layers": 2}, "act": "gelu", "opt": {"name": "sgd"}, "gone": 1}
    match = match_config(SPACE, config)
    assert match.values == {"net.layers": 2.0, "opt": 0}
    assert match.removed == ["gone"]
    assert match.outside == {"lr": "'lr' is 0.5, outside [0.0001, 0.1]", "net.units": "'net.units' is 'many', not a number",
                             "act": "'act' is 'gelu', which matches none of its options"}
    assert match.missing == {"opt[0].momentum": "'opt[0].momentum' is missing"}


def test_the_option_that_explains_most_values_wins():
    # Option 1 has every key of option 0 and one more: its config matches both, and only
    # option 1 accounts for "b".
    space = {"m": choice([{"a": uniform(0, 1)}, {"a": uniform(0, 1), "b": uniform(0, 1)}])}
    assert match_config(space, {"m": {"a": 0.5, "b": 0.5}}).values == {"m": 1, "m[1].a": 0.5, "m[1].b": 0.5}
    assert match_config(space, {"m": {"a": 0.5}}).values == {"m": 0, "m[0].a": 0.5}


def test_a_point_round_trips_through_its_config():
    rng = np.random.default_rng(0)
    from raytuner.search import sample_config

    for _ in range(50):
        config = sample_config(SPACE, rng)
        assert config_from_params(SPACE, match_config(SPACE, config).values) == config
