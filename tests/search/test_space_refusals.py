"""What validate_space refuses before any trial: entries the results would show under one
column, and values a config cannot carry through JSON."""

from __future__ import annotations

import pytest

from raytuner.errors import ConfigError
from raytuner.search import choice, grid, uniform, validate_space


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
