"""PBT set up badly fails when the Tuner is built, before Ray starts or any trial runs; set
up well, it draws the first population at random."""

from __future__ import annotations

import pytest

import raytuner as rt
from raytuner.errors import ConfigError
from raytuner.search import GridSearcher, RandomSearcher


def train(config):
    rt.report({"loss": config["lr"]})


SPACE = {"lr": rt.loguniform(1e-4, 1e-1), "model": {"units": 32}}


def tuner(**kwargs):
    args = {"space": SPACE, "metric": "loss", "num_trials": 8,
            "scheduler": rt.PBTScheduler(perturbation_interval=2, mutations={"lr": rt.loguniform(1e-4, 1e-1)}),
            **kwargs}
    return rt.Tuner(train, **args)


@pytest.mark.parametrize(("searcher", "name"), [
    (lambda: rt.TPESearcher(), "TPESearcher"), (lambda: rt.HyperOptSearcher(), "HyperOptSearcher"),
    (lambda: rt.GPSearcher(), "GPSearcher"), (lambda: rt.OptunaSearcher(), "OptunaSearcher"),
])
def test_a_searcher_that_learns_from_configs_is_refused_naming_those_that_combine(searcher, name):
    with pytest.raises(ConfigError, match=f"RandomSearcher or GridSearcher .* {name} would learn from configs"):
        tuner(searcher=searcher())


def test_the_default_searcher_under_pbt_draws_at_random():
    assert type(tuner()._searcher) is RandomSearcher
    grid = tuner(space={"lr": rt.grid([1e-3, 1e-2]), "model": {"units": 32}}, num_trials=2)
    assert type(grid._searcher) is GridSearcher


@pytest.mark.parametrize(("scheduler", "match"), [
    (lambda: rt.PBTScheduler(perturbation_interval=2, mutations={"momentum": [0.9, 0.99]}),
     r"`mutations` has 'momentum', which is not in the search space \(its keys: lr, model.units\)"),
    (lambda: rt.PBTScheduler(perturbation_interval=2, mutations={"model.units": [16, 32, 64]}), None),
    (lambda: rt.PBTScheduler(perturbation_interval=0, mutations={"lr": [0.1]}), r"`perturbation_interval` is 0"),
    (lambda: rt.PBTScheduler(perturbation_interval=-1, mutations={"lr": [0.1]}), r"`perturbation_interval` is -1"),
    (lambda: rt.PBTScheduler(perturbation_interval=2, mutations={"lr": [0.1]}, quantile_fraction=0.75),
     r"`quantile_fraction` is 0.75, but must be a number in \(0, 0.5\]"),
    (lambda: rt.PB2Scheduler(perturbation_interval=2, mutations={"lr": [0.1]}, quantile_fraction=0),
     r"`quantile_fraction` is 0,"),
])
def test_bad_pbt_input_fails_before_anything_runs(scheduler, match):
    if match is None:
        tuner(scheduler=scheduler())
        return
    with pytest.raises(ConfigError, match=match):
        tuner(scheduler=scheduler())


def test_pbt_needs_a_metric():
    with pytest.raises(ConfigError, match="PBTScheduler needs a metric"):
        tuner(metric=None)
