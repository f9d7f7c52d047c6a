"""The bounds of every control value, in the one function the dashboard, the CLI and the
driver call (pure: no Ray, no storage)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytuner._control_values import (COMMANDS, MAX_CONCURRENT, MAX_NUM_TRIALS, MAX_TIME_BUDGET_S, Command,
                                      clean_command, shown)
from raytuner.errors import ConfigError


@pytest.mark.parametrize(("command", "args", "clean"), [
    ("set_limits", {"max_concurrent": 4}, {"max_concurrent": 4}),
    ("set_limits", {"max_concurrent": 4.0}, {"max_concurrent": 4}),  # JSON has one number type
    ("set_limits", {"max_concurrent": MAX_CONCURRENT}, {"max_concurrent": MAX_CONCURRENT}),
    ("set_limits", {"num_trials": MAX_NUM_TRIALS, "max_concurrent": None}, {"num_trials": MAX_NUM_TRIALS}),
    ("set_limits", {"time_budget_s": 1}, {"time_budget_s": 1.0}),
    ("set_limits", {"time_budget_s": 0.5}, {"time_budget_s": 0.5}),
    ("set_limits", {"time_budget_s": MAX_TIME_BUDGET_S}, {"time_budget_s": MAX_TIME_BUDGET_S}),
    ("stop_trial", {"trial_id": "00003"}, {"trial_id": "00003"}),
    ("retry_trial", {"trial_id": "a1"}, {"trial_id": "a1"}),
    ("end_experiment", None, {}),
    ("end_experiment", {}, {}),
])
def test_values_within_bounds_come_back_typed(command, args, clean):
    got = clean_command(command, args)
    assert got == Command(command, clean)
    assert all(type(got.args[k]) is type(clean[k]) for k in clean)


@pytest.mark.parametrize(("command", "args", "names"), [
    ("set_limits", {"max_concurrent": 1e308}, ["`max_concurrent` is 1e+308", "from 1 to 10,000"]),
    ("set_limits", {"max_concurrent": 10**400}, ["`max_concurrent` is a 401-digit integer", "Give max_concurrent"]),
    ("set_limits", {"max_concurrent": MAX_CONCURRENT + 1}, ["`max_concurrent` is 10001"]),
    ("set_limits", {"max_concurrent": 0}, ["`max_concurrent` is 0"]),
    ("set_limits", {"max_concurrent": 2.5}, ["`max_concurrent` is 2.5", "whole number"]),
    ("set_limits", {"max_concurrent": True}, ["`max_concurrent` is True", "JSON number"]),
    ("set_limits", {"max_concurrent": "4"}, ["`max_concurrent` is '4'", "JSON number"]),
    ("set_limits", {"max_concurrent": [4]}, ["`max_concurrent` is a list of 1 item"]),
    ("set_limits", {"num_trials": MAX_NUM_TRIALS + 1}, ["`num_trials` is 10000001", "10,000,000"]),
    ("set_limits", {"num_trials": -1}, ["`num_trials` is -1"]),
    ("set_limits", {"time_budget_s": math.nan}, ["`time_budget_s` is nan", "finite"]),
    ("set_limits", {"time_budget_s": math.inf}, ["`time_budget_s` is inf"]),
    ("set_limits", {"time_budget_s": 0}, ["`time_budget_s` is 0", "above 0"]),
    ("set_limits", {"time_budget_s": MAX_TIME_BUDGET_S * 2}, ["`time_budget_s` is", "(10 years)"]),
    ("set_limits", {}, ["needs at least one of max_concurrent"]),
    ("set_limits", {"max_concurrent": 2, "speed": 3}, ["'speed' is not one of its arguments", "Leave 'speed' out"]),
    ("end_experiment", {"now": True}, ["'now' is not one of its arguments; it takes no arguments"]),
    ("stop_trial", {}, ["`trial_id` is None"]),
    ("stop_trial", {"trial_id": "../00001"}, ["`trial_id` is '../00001'", "'00003'"]),
    ("stop_trial", {"trial_id": "x" * 1_000_000}, ["(1000000 characters)"]),
    ("stop_trial", {"trial_id": 3}, ["`trial_id` is 3"]),
    ("stop_trial", [["00001"]], ["`args` is a list of 1 item", "{'trial_id': ...}"]),
    (["set_limits"], {}, ["`command` is a list of 1 item", "one of stop_trial, retry_trial"]),
    ("format_disk", {}, ["`command` is 'format_disk'"]),
    (None, None, ["`command` is None"]),
])
def test_values_out_of_bounds_are_a_config_error_naming_field_value_and_fix(command, args, names):
    with pytest.raises(ConfigError) as caught:
        clean_command(command, args)
    message = str(caught.value)
    for part in names:
        assert part in message
    assert len(message) < 400  # a megabyte of value is described, never echoed


def test_a_value_is_shown_short_whatever_it_is():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    assert shown(nested) == "a list of 1 item"  # never repr'd: that would recurse 100,000 deep
    assert shown(10**5000) == "an integer of thousands of digits"  # str() of it would raise
    assert shown({"a": 1, "b": 2}) == "an object of 2 fields"
    assert shown(-7) == "-7" and shown(1.5) == "1.5" and shown(None) == "None"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(command=st.sampled_from(list(COMMANDS)) | _JSON,
       args=st.none() | st.dictionaries(st.sampled_from(["max_concurrent", "num_trials", "time_budget_s", "trial_id",
                                                         "x"]), _JSON, max_size=4) | _JSON)
def test_any_json_is_either_refused_or_within_bounds(command, args):
    try:
        got = clean_command(command, args)
    except ConfigError as exc:
        assert len(str(exc)) < 600
        return
    assert got.command in COMMANDS and set(got.args) <= set(COMMANDS[got.command])
    mc, nt, tb = (got.args.get(k) for k in ("max_concurrent", "num_trials", "time_budget_s"))
    assert mc is None or (type(mc) is int and 1 <= mc <= MAX_CONCURRENT)
    assert nt is None or (type(nt) is int and 1 <= nt <= MAX_NUM_TRIALS)
    assert tb is None or (type(tb) is float and math.isfinite(tb) and 0 < tb <= MAX_TIME_BUDGET_S)


def test_the_module_imports_neither_ray_nor_storage():
    code = ("import sys, raytuner._control_values; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'raytuner._storage'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
