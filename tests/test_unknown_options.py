"""A misspelled keyword to any public searcher or scheduler is refused when it is built, with
the class, the keyword and the parameter it likely meant; not with Python's ``TypeError:
__init__() got an unexpected keyword argument``, which names none of the valid ones.

No Ray: the constructors only are called.
"""

from __future__ import annotations

import inspect
import re

import pytest

import raytuner.schedulers as schedulers
import raytuner.search as search
from raytuner.errors import ConfigError
from raytuner.search import uniform

SPACE = {"x": uniform(0, 1)}
MUTATIONS = {"lr": uniform(1e-4, 1e-1)}

#: Every public searcher and scheduler: (the arguments that build it, a misspelled keyword,
#: the parameter it means). ASHA's and PBT's are required parameters, misspelled.
CASES = {
    "GPSearcher": ({"space": SPACE}, "n_startp", "n_startup"),
    "GridSearcher": ({"space": SPACE}, "sed", "seed"),
    "HyperOptSearcher": ({"space": SPACE}, "warmstart", "warm_start"),
    "OptunaSearcher": ({"space": SPACE}, "sampler_kw", "sampler"),
    "RandomSearcher": ({"space": SPACE}, "sed", "seed"),
    "TPESearcher": ({"space": SPACE}, "gama", "gamma"),
    "ASHAScheduler": ({}, "max_resouce", "max_resource"),
    "FIFOScheduler": ({}, "resource_atr", "resource_attr"),
    "HyperbandScheduler": ({"max_resource": 27}, "reduction_facter", "reduction_factor"),
    "MedianStoppingScheduler": ({}, "grace_perod", "grace_period"),
    "PB2Scheduler": ({"perturbation_interval": 2, "mutations": MUTATIONS}, "resample_probabilty",
                     "resample_probability"),
    "PBTReplay": ({}, "shedule", "schedule"),
    "PBTScheduler": ({"mutations": MUTATIONS}, "perturbation_intrval", "perturbation_interval"),
}


def public(package, base: type) -> set[str]:
    return {name for name in package.__all__
            if isinstance(getattr(package, name), type) and issubclass(getattr(package, name), base)
            and getattr(package, name) is not base}


def test_every_public_searcher_and_scheduler_is_covered():
    assert public(search, search.Searcher) | public(schedulers, schedulers.Scheduler) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_misspelled_keyword_names_the_class_and_the_likely_one(name):
    cls = getattr(search, name, None) or getattr(schedulers, name)
    kwargs, wrong, right = CASES[name]
    with pytest.raises(ConfigError) as error:
        cls(**kwargs, **{wrong: 3})
    assert re.fullmatch(rf"{name}: unknown option `{wrong}=3`. Did you mean `{right}`\?", str(error.value))


def test_a_keyword_like_none_lists_the_options():
    with pytest.raises(ConfigError, match=r"^FIFOScheduler: unknown option `eta=3`. Options: max_resource, "
                                          r"resource_attr.$"):
        schedulers.FIFOScheduler(eta=3)


def test_the_signature_stays_as_written():
    parameters = inspect.signature(schedulers.ASHAScheduler).parameters
    assert list(parameters)[:2] == ["max_resource", "min_resource"]
    assert all(parameter.kind is not inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())
    assert schedulers.ASHAScheduler(27, reduction_factor=2).config()["reduction_factor"] == 2


#: Ray Tune's names, which the close-match guess answered with the options or a wrong guess.
PEERS = [
    (lambda: schedulers.ASHAScheduler(max_resource=27, grace_period=2),
     r"ASHAScheduler: unknown option `grace_period=2`\. `grace_period` is Ray Tune's name; here it is `min_resource`: "
     r"pass min_resource=2\."),
    (lambda: schedulers.ASHAScheduler(max_t=27),
     r"ASHAScheduler: unknown option `max_t=27`\. `max_t` is Ray Tune's name; here it is `max_resource`: "
     r"pass max_resource=27\."),
    (lambda: schedulers.ASHAScheduler(max_resource=27, time_attr="epoch"),
     r"ASHAScheduler: unknown option `time_attr='epoch'`\. .* here it is `resource_attr`: pass resource_attr='epoch'\."),
    (lambda: schedulers.HyperbandScheduler(max_resource=81, min_resource=3),  # was "Did you mean `max_resource`?"
     r"HyperbandScheduler: unknown option `min_resource=3`\. HyperbandScheduler takes no smallest resource: .* "
     r"report the resource in units of 3 .* or use ASHAScheduler\(max_resource=\.\.\., min_resource=3, brackets=\.\.\.\)"),
    (lambda: schedulers.HyperbandScheduler(max_resource=81, grace_period=3), r"takes no smallest resource"),
    (lambda: schedulers.MedianStoppingScheduler(max_t=3),
     r"`max_t` is Ray Tune's name for `max_resource`, which MedianStoppingScheduler does not take\. Options: "),
    (lambda: schedulers.PB2Scheduler(perturbation_interval=2, hyperparam_bounds={"lr": [1e-4, 1e-1], "m": [0, 1]}),
     r"PB2Scheduler: unknown option `hyperparam_bounds=.*`\. `hyperparam_bounds` is Ray Tune's PB2 argument; here the "
     r"bounds are written as a domain in `mutations` .*: pass mutations=\{'lr': rt.loguniform\(0.0001, 0.1\), "
     r"'m': rt.uniform\(0, 1\)\}\."),
    (lambda: schedulers.ASHAScheduler(max_resource=27, metric="loss", mode="min"),
     r"ASHAScheduler: unknown option `metric='loss'`\. ASHAScheduler takes no `metric`: the Tuner gives its metric and "
     r"mode to the searcher and the scheduler .* rt.Tuner\(trainable, metric='loss', mode=\.\.\., \.\.\.\)\."),
    (lambda: search.TPESearcher(mode="max"), r"TPESearcher takes no `mode`: .* rt.Tuner\(trainable, metric=\.\.\., "
                                             r"mode='max', \.\.\.\)"),
    (lambda: search.TPESearcher(points_to_evaluate=[{"x": 0.5}]),
     r"TPESearcher takes no `points_to_evaluate`\. To continue from an earlier experiment's results, pass "
     r"warm_start=rt.load\(path\).observations\(\)\. To try given configs first, use "
     r"HyperOptSearcher\(points_to_evaluate=\[\.\.\.\]\)"),
    (lambda: search.GridSearcher(points_to_evaluate=[{"x": 0.5}]),
     r"GridSearcher takes no `points_to_evaluate`\. To try given configs first, use HyperOptSearcher"),
    (lambda: schedulers.MedianStoppingScheduler(hard_stop=False), r"never pauses one, as Ray Tune's hard_stop=True"),
    (lambda: schedulers.MedianStoppingScheduler(min_time_slice=10), r"never pauses a trial, so there is no time slice "
                                                                    r"to give it.*leave `min_time_slice` out"),
]


@pytest.mark.parametrize(("build", "match"), PEERS)
def test_ray_tunes_names_get_the_advice_for_them_before_any_close_match(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if n.endswith("Searcher")])
def test_every_searcher_sends_metric_and_mode_to_the_tuner(name):
    with pytest.raises(ConfigError, match=rf"^{name}: unknown option `metric='val_loss'`\. {name} takes no `metric`: "
                                          r".*Pass them to the Tuner"):
        getattr(search, name)(metric="val_loss", mode="min")
