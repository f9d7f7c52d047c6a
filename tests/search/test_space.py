"""Whole spaces: sample_config, validate_space, grids and the JSON description."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hyperopt import hp

from raytuner.search import choice, grid, has_grid, loguniform, quniform, randint, sample_config, space_to_json
from raytuner.search import uniform, validate_space
from raytuner.search._space import grid_points

SPACE = {
    "lr": loguniform(1e-4, 1e-1),
    "model": {"units": quniform(16, 128, 16), "layers": randint(1, 4), "act": "relu"},
    "opt": choice([{"name": "sgd", "momentum": uniform(0, 0.99)}, {"name": "adam"}]),
    "epochs": 10,
    "sizes": [64, 32],
    "flag": True,
}


def _types(value):
    if isinstance(value, dict):
        return set().union(*(_types(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_types(v) for v in value))
    return {type(value)}


def test_sample_config_resolves_nested_dicts_and_passes_constants():
    config = sample_config(SPACE, np.random.default_rng(1))
    assert list(config) == list(SPACE)
    assert config["epochs"] == 10 and config["sizes"] == [64, 32] and config["flag"] is True
    assert config["model"]["act"] == "relu" and config["model"]["units"] % 16 == 0
    assert 1e-4 <= config["lr"] < 1e-1
    assert _types(config) <= {float, int, str, bool}


def test_sample_config_copies_constant_lists():
    config = sample_config(SPACE, np.random.default_rng(0))
    config["sizes"].append(1)
    assert SPACE["sizes"] == [64, 32]


def test_sample_config_is_deterministic_per_generator_state():
    a = [sample_config(SPACE, np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert sample_config(SPACE, np.random.default_rng(8)) != a[0]


def test_sample_config_rejects_grid_and_hyperopt_expressions():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"space\['a.b'\]: grid\(\[1, 2\]\) is a grid axis.*GridSearcher"):
        sample_config({"a": {"b": grid([1, 2])}}, rng)
    with pytest.raises(ValueError, match=r"space\['x'\]: a native hyperopt expression.*HyperOptSearcher"):
        sample_config({"x": hp.uniform("x", 0, 1)}, rng)


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ([("lr", 0.1)], r"space is \[\('lr', 0.1\)\] \(list\), but must be a dict"),
        ({"model": {3: uniform(0, 1)}}, r"space\['model'\]: key 3 is of type int, but parameter names must be str"),
        ({"model": {"units": [uniform(0, 1)]}}, r"space\['model'\]\['units'\]\[0\]: uniform\(0.0, 1.0\) is a domain inside a list"),
        ({"opt": choice([{"a": [randint(0, 2)]}])}, r"space\['opt'\].options\[0\]\['a'\]\[0\]: randint\(0, 2\) is a domain inside a list"),
    ],
)
def test_validate_space_names_the_dotted_path(space, expected):
    with pytest.raises(ValueError, match=expected):
        validate_space(space)


def test_validate_space_accepts_domains_constants_and_hyperopt_expressions():
    validate_space(SPACE)
    validate_space({"x": hp.uniform("x", 0, 1), "g": grid([1, 2]), "c": (1, "a")})


def test_has_grid_finds_nested_grids():
    assert has_grid({"a": {"b": grid([1, 2])}})
    assert not has_grid(SPACE)
    assert not has_grid({})


def test_grid_points_cross_in_key_order_first_axis_slowest():
    space = {"a": grid([1, 2]), "m": {"b": grid(["x", "y", "z"])}, "c": uniform(0, 1)}
    points = grid_points(space)
    assert [(p["a"], p["m.b"]) for p in points] == [
        (1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z"),
    ]
    assert list(grid_points({"c": uniform(0, 1)})) == [{}]
    with pytest.raises(ValueError, match=r"two grid\(\) axes have the label 'm.b'"):
        grid_points({**space, "m.b": grid([1])})


def test_space_to_json_is_json_and_describes_every_domain():
    space = {**SPACE, "g": grid([1, 2]), "r": quniform(0, 1, 0.5), "h": hp.uniform("h", 0, 1)}
    described = json.loads(json.dumps(space_to_json(space)))
    assert described["lr"] == {"type": "loguniform", "low": 0.0001, "high": 0.1}
    assert described["model"]["units"] == {"type": "quniform", "low": 16, "high": 128, "q": 16}
    assert described["model"]["layers"] == {"type": "randint", "low": 1, "high": 4}
    assert described["opt"]["type"] == "choice"
    assert described["opt"]["options"][0]["momentum"] == {"type": "uniform", "low": 0.0, "high": 0.99}
    assert described["g"] == {"type": "grid", "values": [1, 2]}
    assert described["epochs"] == 10 and described["sizes"] == [64, 32]
    assert described["h"]["type"] == "hyperopt" and "uniform" in described["h"]["expr"]
