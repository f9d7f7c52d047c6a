"""OptunaSearcher refuses a sampler whose optional package is missing when it is built,
not after the start-up trials ran (CmaEsSampler needs cmaes, GPSampler torch and scipy,
QMCSampler scipy)."""

from __future__ import annotations

import importlib.util
import pickle

import optuna
import pytest

from raytuner.errors import ConfigError
from raytuner.search import OptunaSearcher, uniform
from raytuner.search import _optuna

SPACE = {"x": uniform(-5, 5), "y": uniform(-5, 5)}


def hide(monkeypatch, *packages):
    installed = _optuna._installed
    monkeypatch.setattr(_optuna, "_installed", lambda package: package not in packages and installed(package))


@pytest.mark.parametrize(
    ("make", "hidden", "expected"),
    [
        (lambda: optuna.samplers.CmaEsSampler(seed=0), ["cmaes"],
         r"`sampler` is CmaEsSampler, which needs the `cmaes` package, not installed: .* pip install cmaes\.$"),
        (lambda: optuna.samplers.GPSampler(seed=0), ["torch"],
         r"GPSampler, which needs the `torch` package.*pip install torch"),
        (lambda: optuna.samplers.GPSampler(seed=0), ["torch", "scipy"],
         r"GPSampler, which needs the `torch` and `scipy` packages.*Install them: pip install torch scipy\.$"),
        (lambda: optuna.samplers.QMCSampler(seed=0), ["scipy"], r"QMCSampler, which needs the `scipy` package"),
        (lambda: optuna.samplers.PartialFixedSampler({"x": 0.0}, optuna.samplers.CmaEsSampler(seed=0)), ["cmaes"],
         r"`sampler` is CmaEsSampler, which needs the `cmaes` package"),
    ],
)
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_sampler_without_its_package_is_refused_when_the_searcher_is_built(monkeypatch, make, hidden, expected):
    hide(monkeypatch, *hidden)
    with pytest.raises(ConfigError, match=expected):
        OptunaSearcher(SPACE, sampler=make())


@pytest.mark.skipif(importlib.util.find_spec("cmaes") is not None, reason="cmaes is installed here")
def test_cmaes_sampler_without_cmaes_is_refused_for_real():
    with pytest.raises(ConfigError, match=r"CmaEsSampler, which needs the `cmaes` package.*pip install cmaes"):
        OptunaSearcher(SPACE, sampler=optuna.samplers.CmaEsSampler(seed=0, n_startup_trials=2))


def test_a_pickled_searcher_is_checked_again_at_setup(monkeypatch):
    searcher = pickle.loads(pickle.dumps(OptunaSearcher(SPACE, sampler=optuna.samplers.TPESampler(seed=0))))
    searcher._sampler = optuna.samplers.CmaEsSampler(seed=0)  # as a searcher pickled where cmaes was installed
    hide(monkeypatch, "cmaes")
    with pytest.raises(ConfigError, match=r"CmaEsSampler, which needs the `cmaes` package"):
        searcher.setup(None, num_trials=4)


def test_samplers_with_their_packages_are_accepted(monkeypatch):
    monkeypatch.setattr(_optuna, "_installed", lambda package: True)
    for sampler in (optuna.samplers.CmaEsSampler(seed=0), optuna.samplers.TPESampler(seed=0),
                    optuna.samplers.RandomSampler(seed=0), optuna.samplers.NSGAIISampler(seed=0)):
        OptunaSearcher(SPACE, sampler=sampler).setup(None, num_trials=4)


@pytest.mark.parametrize("seed", [2**32, 2**64, -1])
def test_a_seed_optuna_cannot_take_is_a_config_error_naming_the_range(seed):
    with pytest.raises(ConfigError, match=rf"^OptunaSearcher: `seed` is {seed}, but must be an int in "
                                          rf"\[0, 4294967295\] or None\. Pass e\.g\. seed=0"):
        OptunaSearcher(SPACE, seed=seed)


def test_the_largest_seed_optuna_takes_is_accepted():
    searcher = OptunaSearcher(SPACE, seed=2**32 - 1)
    searcher.setup(None, num_trials=2)
    assert set(searcher.suggest("00000")) == {"x", "y"}
