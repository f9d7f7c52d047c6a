"""Arguments the Tuner refuses when it is built, before any trial starts (no Ray)."""

from __future__ import annotations

import functools

import pytest

import raytuner as rt
from raytuner.errors import ConfigError


def train(config):
    rt.report({"loss": 1.0})


def no_config():
    rt.report({"loss": 1.0})


def two_args(a, b):
    rt.report({"loss": 1.0})


def needs_data(config, *, data):
    rt.report({"loss": 1.0})


def with_default(config, data=None):
    rt.report({"loss": 1.0})


class TrainerClass:
    def __init__(self, config):
        self.config = config


class TwoArgCallable:
    def __call__(self, a, b):
        return None


def _injects_data(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, data=[1, 2], **kwargs)

    return wrapper


@_injects_data
def decorated(config, data):
    rt.report({"loss": float(len(data))})


BASE = dict(space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=1, verbose=0)


@pytest.mark.parametrize("trainable, seen", [
    (no_config, "no_config()"),
    (two_args, "two_args(a, b)"),
    (lambda: None, "<lambda>()"),
    (needs_data, "needs_data(config, *, data)"),
    (TwoArgCallable(), "TwoArgCallable(a, b)"),
])
def test_a_trainable_that_cannot_take_the_config_is_refused_naming_its_signature(trainable, seen, tmp_path):
    with pytest.raises(ConfigError) as error:
        rt.Tuner(trainable, storage_path=tmp_path, **BASE)
    message = str(error.value)
    assert message.startswith(f"Tuner: `trainable` is {seen}, but must be callable as trainable(config)"), message
    assert "def train(config)" in message
    with pytest.raises(ConfigError, match=r"Tuner\.resume: `trainable` is"):
        rt.Tuner.resume(tmp_path / "none", trainable)  # refused before the folder is read


@pytest.mark.parametrize("trainable", [
    train, with_default, lambda config: None, lambda *args: None, lambda *args, **kwargs: None,
    functools.partial(two_args, b=1), functools.partial(needs_data, data=[1]), TrainerClass, decorated, print,
])
def test_a_trainable_that_takes_the_config_is_accepted(trainable, tmp_path):
    rt.Tuner(trainable, storage_path=tmp_path, **BASE)  # print: a builtin, not checked


@pytest.mark.parametrize("stop, seen", [
    (lambda r: False, "<lambda>(r)"),
    (lambda: False, "<lambda>()"),
    (lambda trial_id, result, extra: False, "<lambda>(trial_id, result, extra)"),
])
def test_a_stop_function_of_another_arity_is_refused(stop, seen, tmp_path):
    with pytest.raises(ConfigError) as error:
        rt.Tuner(train, storage_path=tmp_path, stop=stop, **BASE)
    message = str(error.value)
    assert message.startswith(f"Tuner: `stop` is {seen}, but must be callable as stop(trial_id, result)"), message
    assert "stop=lambda trial_id, result:" in message


@pytest.mark.parametrize("stop", [
    lambda trial_id, result: False, lambda *args: False, lambda trial_id, result, extra=None: False,
    functools.partial(lambda limit, trial_id, result: False, 3),
])
def test_a_stop_function_of_trial_id_and_result_is_accepted(stop, tmp_path):
    rt.Tuner(train, storage_path=tmp_path, stop=stop, **BASE)
