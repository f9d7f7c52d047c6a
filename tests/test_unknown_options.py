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
