"""What validate_space refuses before any trial: entries the results would show under one
column, and values a config cannot carry through JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raytuner.errors import ConfigError
from raytuner.search import choice, grid, loguniform, quniform, uniform, validate_space


@pytest.mark.parametrize(
    ("space", "first", "second", "column"),
    [
        ({"a/b": uniform(0, 1), "a": {"b": uniform(5, 6)}}, "space['a/b']", "space['a']['b']", "a/b"),
        ({"a": {"b": 1}, "a/b": 2}, "space['a']['b']", "space['a/b']", "a/b"),  # constants too
        ({"a": {"b/c": 1}, "a/b": {"c": uniform(0, 1)}}, "space['a']['b/c']", "space['a/b']['c']", "a/b/c"),
        ({"opt": choice([{"name": "sgd"}, {"name": "adam"}]), "opt/name": "x"},
         "space['opt'].options[0]['name']", "space['opt/name']", "opt/name"),
        ({"opt": choice([{"m/x": 1, "m": {"x": uniform(0, 1)}}])},
         "space['opt'].options[0]['m/x']", "space['opt'].options[0]['m']['x']", "opt/m/x"),
        ({"g": grid([{"b": 1}, {"b": 2}]), "g/b": 3}, "space['g'].values[0]['b']", "space['g/b']", "g/b"),
    ],
)
def test_two_entries_shown_under_one_column_are_refused(space, first, second, column):
    with pytest.raises(ConfigError) as info:
        validate_space(space)
    message = str(info.value)
    assert f"{first} and {second} are both shown as {column!r}" in message
    assert message.endswith("Rename one.")


@pytest.mark.parametrize(
    "space",
    [
        {"a/b": uniform(0, 1), "c": {"d": 1}},  # a lone key with '/'
        {"a": 1, "a/b": 2},  # 'a' and 'a/b' are two columns
        {"a": {}, "a/b": 2},  # an empty dict is a value, shown as 'a'
        {"opt": choice([{"name": "sgd", "m": uniform(0, 1)}, {"name": "adam"}])},  # options share 'opt/name'
        {"opt": choice([{"a/b": 1}, {"a": {"b": 2}}])},  # different options: never in one config
        {"x": choice([1, {"y": 2}]), "x/z": 3},
    ],
)
def test_entries_in_distinct_columns_are_accepted(space):
    validate_space(space)


class Adam:
    pass


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"lr": loguniform}, r"space\['lr'\]: loguniform is the domain constructor itself, not a domain\. "
                             r"Did you mean rt\.loguniform\(low, high\)\?"),
        ({"q": {"step": quniform}}, r"space\['q'\]\['step'\]: .*Did you mean rt\.quniform\(low, high, q\)\?"),
        ({"c": choice}, r"Did you mean rt\.choice\(options\)\?"),
        ({"opt": Adam}, r"space\['opt'\]: <class .*Adam'> \(type\) is not a value JSON can hold\. Config values "
                        r"are recorded as JSON .*resumed or retried trial gets them back from there.*"
                        r"Pass a name instead and build the object inside the trainable, e\.g\. 'opt': "
                        r"choice\(\['adam', 'sgd'\]\)"),
        ({"f": len}, r"space\['f'\]: <built-in function len> \(builtin_function_or_method\) is not a value JSON"),
        ({"f": lambda x: x}, r"space\['f'\]: <function .*\(function\) is not a value JSON can hold"),
        ({"s": {2, 1}}, r"space\['s'\]: \{1, 2\} \(set\) is not a value JSON can hold\. .*would be a string\. "
                        r"Pass a list instead: \[1, 2\]\."),
        ({"a": np.arange(3)}, r"space\['a'\]: array\(\[0, 1, 2\]\) \(ndarray\) .*Pass a list instead: \[0, 1, 2\]\."),
        ({"o": object()}, r"space\['o'\]: <object object at .*> \(object\) is not a value JSON can hold"),
        ({"opt": choice(["sgd", Adam])}, r"space\['opt'\]\.options\[1\]: <class"),
        ({"g": grid([1, {3}])}, r"space\['g'\]\.values\[1\]: \{3\} \(set\)"),
        ({"l": [1, [2, object()]]}, r"space\['l'\]\[1\]\[1\]: <object"),
        ({"l": [{"k": Adam}]}, r"space\['l'\]\[0\]\['k'\]: <class"),
        ({"l": [{1: "x"}]}, r"space\['l'\]\[0\]: key 1 is of type int, but the keys of a dict in a config must be "
                            r"str .*Use '1'\."),
        ({"t": (1, b"x")}, r"space\['t'\]\[1\]: b'x' \(bytes\)"),
    ],
)
def test_values_json_cannot_hold_are_refused(space, expected):
    with pytest.raises(ConfigError, match=expected):
        validate_space(space)


def test_json_values_numpy_scalars_paths_domains_and_hyperopt_expressions_are_accepted():
    from hyperopt import hp

    validate_space({
        "none": None, "flag": True, "n": 3, "x": 0.5, "s": "relu", "nan": float("nan"),
        "shape": (3, [4, 5]), "layers": [{"units": 64, "act": "relu"}], "nested": {"a": {"b": [1, 2]}},
        "np": np.float32(0.5), "npi": np.int64(3), "npb": np.bool_(True), "path": Path("/data/x"),
        "opt": choice(["adam", "sgd", None, (1, 2)]), "g": grid([np.int64(1), 2, [3, 4]]),
        "u": uniform(0, 1), "h": hp.uniform("h", 0, 1),
    })
