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


def test_a_numeric_mutation_must_fit_the_space_it_explores():
    space = {"lr": rt.uniform(0.01, 1.0), "act": "relu", "bs": rt.choice([16, 32, 64]), "opt": {"m": 0.9},
             "heads": rt.choice(["a", 4]), "layers": rt.randint(1, 5)}

    def pbt(**mutations):
        return tuner(space=space, scheduler=rt.PBTScheduler(perturbation_interval=2, mutations=mutations))

    with pytest.raises(ConfigError, match=r"`mutations\['act'\]` is uniform\(0.0, 1.0\), which perturbs a number by a "
                                          r"factor, but the space's 'act' is 'relu', whose values are not all numbers: "
                                          r"PBT would fail at its first exploit\. List the values to move between "
                                          r"instead, e\.g\. mutations=\{'act': \[\.\.\.\]\}"):
        pbt(act=rt.uniform(0, 1))
    for key in ("opt", "heads"):
        with pytest.raises(ConfigError, match=rf"`mutations\['{key}'\]` is uniform\(0.0, 1.0\), which perturbs a number"):
            pbt(**{key: rt.uniform(0, 1)})
    with pytest.raises(ConfigError, match=r"`mutations\['bs'\]` is uniform\(0.0, 1.0\), but the space's 'bs' is "
                                          r"choice\(\[16, 32, 64\]\), whose values \(16 to 64\) are all outside it"):
        pbt(bs=rt.uniform(0, 1))
    with pytest.raises(ConfigError, match=r"the space's 'lr' is uniform\(0.01, 1.0\), whose values \(0.01 to 1\) are all "
                                          r"outside it"):
        pbt(lr=rt.uniform(5, 10))
    # Overlapping ranges, a list of values (whatever the space's), randint on randint: taken.
    pbt(lr=rt.loguniform(1e-3, 0.5), bs=rt.randint(8, 128), act=["relu", "tanh"], layers=rt.randint(2, 9))


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
