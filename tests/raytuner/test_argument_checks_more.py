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
    functools.partial(two_args, b=1), functools.partial(needs_data, data=[1]), TrainerClass, decorated, max,
])
def test_a_trainable_that_takes_the_config_is_accepted(trainable, tmp_path):
    rt.Tuner(trainable, storage_path=tmp_path, **BASE)  # max: a builtin whose signature is not read, not checked


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


class _Logger(rt.Callback):
    pass


@pytest.mark.parametrize("kwargs, message", [
    ({"fail_fast": "no"}, "Tuner: `fail_fast` is 'no', but must be True or False."),
    ({"fail_fast": 1}, "Tuner: `fail_fast` is 1, but must be True or False."),
    ({"tensorboard": "off"}, "Tuner: `tensorboard` is 'off', but must be True or False."),
    ({"time_budget_s": True}, "Tuner: `time_budget_s` is True, but must be a number of seconds > 0"),
    ({"time_budget_s": float("inf")}, "Tuner: `time_budget_s` is inf, but must be a finite number of seconds above 0 "
                                      "and at most 315,576,000 (10 years)"),
    ({"time_budget_s": 1e300}, "Tuner: `time_budget_s` is 1e+300, but must be a finite number of seconds"),
    ({"time_budget_s": float("nan")}, "Tuner: `time_budget_s` is nan, but must be a finite number of seconds"),
    ({"time_budget_s": -1}, "Tuner: `time_budget_s` is -1, but must be a finite number of seconds above 0"),
    ({"max_concurrent": 10**6}, "Tuner: `max_concurrent` is 1000000, but must be a whole number from 1 to 10,000."),
    ({"num_trials": 10**8}, "Tuner: `num_trials` is 100000000, but must be a whole number from 1 to 10,000,000."),
    ({"storage_path": 5}, "Tuner: `storage_path` is 5, but must be a folder's path (str or os.PathLike) or a URI"),
    ({"storage_path": "/tmp/a\x00b"}, "Tuner: `storage_path` is '/tmp/a\\x00b', but must be a path with no NUL"),
    ({"callbacks": print}, "Tuner: `callbacks` is <built-in function print>, but must be a list of raytuner.Callback"),
    ({"callbacks": _Logger()}, "Tuner: `callbacks` is <"),
    ({"callbacks": "mlflow"}, "Tuner: `callbacks` is 'mlflow', but must be a list of raytuner.Callback"),
])
def test_arguments_of_the_wrong_kind_or_past_the_control_bounds_are_refused_at_build(kwargs, message, tmp_path):
    arguments = {**BASE, "storage_path": tmp_path / "results", **kwargs}
    with pytest.raises(ConfigError) as error:
        rt.Tuner(train, **arguments)
    assert str(error.value).startswith(message), str(error.value)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("kwargs", [
    {"time_budget_s": 3600}, {"time_budget_s": 0.5}, {"time_budget_s": 10 * 365.25 * 24 * 3600},
    {"max_concurrent": 10_000}, {"num_trials": 10_000_000}, {"fail_fast": True}, {"tensorboard": False},
    {"callbacks": ()}, {"callbacks": None}, {"callbacks": [_Logger()]}, {"callbacks": (c for c in [_Logger()])},
])
def test_arguments_within_the_bounds_are_accepted(kwargs, tmp_path):
    tuner = rt.Tuner(train, **{**BASE, "storage_path": tmp_path, **kwargs})
    if "callbacks" in kwargs:  # a generator is read once, and kept
        assert all(isinstance(c, _Logger) for c in tuner._callbacks) and len(tuner._callbacks) <= 1


def test_numpy_numbers_are_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    rt.Tuner(train, **{**BASE, "storage_path": tmp_path, "num_trials": np.int64(3)}, time_budget_s=np.float64(60),
             max_concurrent=np.int64(2))
    with pytest.raises(ConfigError, match=r"`time_budget_s` is (np\.float64\()?inf"):
        rt.Tuner(train, **{**BASE, "storage_path": tmp_path}, time_budget_s=np.float64("inf"))


@pytest.mark.parametrize("kwargs, message", [
    ({"time_budget_s": float("inf")}, "Tuner.resume: `time_budget_s` is inf"),
    ({"max_concurrent": 10**6}, "Tuner.resume: `max_concurrent` is 1000000"),
    ({"tensorboard": "off"}, "Tuner.resume: `tensorboard` is 'off', but must be True or False."),
    ({"callbacks": print}, "Tuner.resume: `callbacks` is <built-in function print>"),
])
def test_resume_refuses_them_too_before_reading_the_experiment(kwargs, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        rt.Tuner.resume(tmp_path / "no_such_experiment", **kwargs)
    assert str(error.value).startswith(message), str(error.value)


@pytest.mark.parametrize("num_trials, points, total", [(1, 25_000_000, 25_000_000), (3, 4_000_000, 12_000_000)])
def test_a_grid_of_more_trials_than_an_experiment_runs_is_refused_at_build(num_trials, points, total, tmp_path):
    side = int(points ** 0.5)
    space = {"a": rt.grid(list(range(side))), "b": rt.grid(list(range(side)))}
    with pytest.raises(ConfigError) as error:
        rt.Tuner(train, space=space, metric="loss", num_trials=num_trials, storage_path=tmp_path / "results")
    assert str(error.value).startswith(f"Tuner: `space` is a grid of {points:,} points, which with num_trials="
                                       f"{num_trials} makes {total:,} trials, more than one experiment runs "
                                       "(10,000,000)."), str(error.value)
    assert not (tmp_path / "results").exists()


def test_a_grid_of_as_many_trials_as_an_experiment_runs_is_accepted(tmp_path):
    tuner = rt.Tuner(train, space={"a": rt.grid(list(range(2_000))), "b": rt.grid(list(range(5_000)))},
                     metric="loss", storage_path=tmp_path)
    assert tuner._searcher.num_trials == 10_000_000
