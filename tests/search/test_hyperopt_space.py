"""Translation of raytuner spaces to hyperopt, and of values both ways."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hyperopt import Domain, hp, pyll

from raytuner.search import choice, grid, loguniform, qloguniform, quniform, randint, uniform
from raytuner.search._hyperopt_space import NoFit, config_from_vals, to_hyperopt, vals_from_config


def param_node(expr):
    """Unwrap scope.int/float down to hyperopt_param; return (casts, label, dist, args)."""
    casts = []
    while expr.name in ("int", "float"):
        casts.append(expr.name)
        expr = expr.pos_args[0]
    assert expr.name == "hyperopt_param"
    dist = expr.pos_args[1]
    return casts, expr.pos_args[0].obj, dist.name, [pyll.rec_eval(a) for a in dist.pos_args]


@pytest.mark.parametrize(
    ("domain", "casts", "dist", "args"),
    [
        (uniform(-1, 2), ["float"], "uniform", [-1.0, 2.0]),
        (loguniform(1e-4, 1e-1), ["float"], "loguniform", [math.log(1e-4), math.log(1e-1)]),
        (quniform(0, 1, 0.1), ["float"], "quniform", [0, 1, 0.1]),
        (quniform(16, 256, 16), ["int", "float"], "quniform", [16, 256, 16]),
        (qloguniform(1, 100, 0.5), ["float"], "qloguniform", [0.0, math.log(100), 0.5]),
        (qloguniform(1, 100, 1), ["int", "float"], "qloguniform", [0.0, math.log(100), 1]),
        (randint(1, 4), ["int", "float"], "quniform", [0.5, 3.5, 1]),
    ],
)
def test_conversion_table(domain, casts, dist, args):
    expr = to_hyperopt({"p": domain})["p"]
    got_casts, label, got_dist, got_args = param_node(expr)
    assert (got_casts, label, got_dist) == (casts, "p", dist)
    assert got_args == pytest.approx(args)


def test_choice_becomes_hp_choice_with_dotted_labels_for_sub_spaces():
    space = {
        "lr": loguniform(1e-4, 1e-1),
        "model": {"units": randint(16, 64), "act": "relu"},
        "opt": choice([{"name": "sgd", "momentum": uniform(0, 1)}, {"name": "adam"}, uniform(5, 6)]),
    }
    expr = to_hyperopt(space)
    assert expr["opt"].name == "switch"
    assert sorted(Domain(lambda c: 0, expr).params) == [
        "lr", "model.units", "opt", "opt[0].momentum", "opt[2]",
    ]


def test_constants_and_native_expressions_pass_through():
    native = hp.uniform("native", 0, 1)
    expr = to_hyperopt({"c": [1, 2], "s": "x", "n": native})
    assert expr["c"] == [1, 2] and expr["s"] == "x" and expr["n"] is native


def test_grid_is_a_clear_error():
    with pytest.raises(ValueError, match=r"HyperOptSearcher cannot model 'm.g': it is a grid\(\) axis.*GridSearcher.*choice"):
        to_hyperopt({"m": {"g": grid([1, 2])}})


SPACE = {
    "lr": loguniform(1e-4, 1e-1),
    "units": quniform(16, 256, 16),
    "drop": quniform(0, 0.5, 0.1),
    "layers": randint(1, 4),
    "opt": choice([{"name": "sgd", "momentum": uniform(0, 1)}, {"name": "adam"}, [1, 2]]),
    "model": {"k": qloguniform(1, 100, 1), "const": [3, 4]},
    "native": hp.choice("native", [{"a": hp.uniformint("native_a", 0, 5)}, "z"]),
}


def test_config_from_vals_rebuilds_the_space_structure_with_plain_values():
    vals = {
        "lr": np.float64(0.01), "units": np.float64(96.0), "drop": 0.2, "layers": np.float64(3.0),
        "opt": np.int64(0), "opt[0].momentum": 0.9, "model.k": 7.0,
        "native": 0, "native_a": np.float64(2.0),
    }
    config = config_from_vals(SPACE, vals)
    assert config == {
        "lr": 0.01, "units": 96, "drop": 0.2, "layers": 3,
        "opt": {"name": "sgd", "momentum": 0.9}, "model": {"k": 7, "const": [3, 4]},
        "native": {"a": 2},
    }
    assert list(config) == list(SPACE)
    assert [type(config[k]) for k in ("lr", "units", "drop", "layers")] == [float, int, float, int]
    assert type(config["native"]["a"]) is int


def test_randint_rounding_edge_stays_inside_bounds():
    assert config_from_vals({"r": randint(1, 4)}, {"r": 0.5})["r"] == 1
    assert config_from_vals({"r": randint(1, 4)}, {"r": 3.5})["r"] == 3


def test_vals_from_config_inverts_config_from_vals():
    from hyperopt import Trials, rand

    domain = Domain(lambda c: 0, to_hyperopt(SPACE))
    for tid in range(40):
        (doc,) = rand.suggest([tid], domain, Trials(), seed=tid)
        vals = {k: v[0] for k, v in doc["misc"]["vals"].items() if len(v)}
        config = config_from_vals(SPACE, vals)
        assert config_from_vals(SPACE, vals_from_config(SPACE, config)) == config


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"x": 2.0, "c": "a"}, r"'x' is 2.0, outside \[0.0, 1.0\]"),
        ({"c": "a"}, r"'x' is missing"),
        ({"x": 0.5, "c": "q"}, r"'c' is 'q', which matches none of its options"),
        ({"x": "0.5", "c": "a"}, r"'x' is '0.5', not a number"),
        ({"x": 0.5, "c": "a", "n": 2.5}, r"'n' is 2.5, not an int"),
    ],
)
def test_vals_from_config_explains_a_misfit(config, reason):
    space = {"x": uniform(0, 1), "c": choice(["a", "b"]), "n": randint(0, 3)}
    config.setdefault("n", 1)
    with pytest.raises(NoFit, match=reason):
        vals_from_config(space, config)


def test_vals_from_config_ignores_changed_constants_outside_choices_only():
    space = {"epochs": 20, "opt": choice([{"name": "sgd"}, {"name": "adam"}])}
    assert vals_from_config(space, {"epochs": 10, "opt": {"name": "adam"}}) == {"opt": 1}
    assert vals_from_config(space, {"opt": {"name": "adam"}}) == {"opt": 1}
