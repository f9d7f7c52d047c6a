"""Schedulers described as data: config() rebuilds them, milestones() says where they decide."""

from __future__ import annotations

import json
import math

import pytest

from raytuner.errors import ConfigError
from raytuner.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperbandScheduler,
    MedianStoppingScheduler,
    from_config,
)

BUILT = [
    ASHAScheduler(max_resource=81, min_resource=3, reduction_factor=3, brackets=2, variant="promotion",
                  resource_attr="epoch", seed=4),
    ASHAScheduler(max_resource=27),
    HyperbandScheduler(max_resource=27, reduction_factor=3, resource_attr="step"),
    MedianStoppingScheduler(grace_period=2, min_samples_required=4),
    FIFOScheduler(),
    FIFOScheduler(max_resource=10, resource_attr="epoch"),
]


@pytest.mark.parametrize("scheduler", BUILT, ids=repr)
def test_config_is_json_and_rebuilds_the_same_scheduler(scheduler):
    stored = json.loads(json.dumps(scheduler.config()))  # as experiment.json holds it
    rebuilt = from_config(stored)
    assert type(rebuilt) is type(scheduler) and stored["type"] == type(scheduler).__name__
    assert rebuilt.config() == stored == scheduler.config()
    # The state of the one restores into the other: same arguments, same rungs.
    rebuilt.restore(scheduler.state())


def test_config_names_every_constructor_argument():
    assert ASHAScheduler(max_resource=9, seed=2).config() == {
        "type": "ASHAScheduler", "max_resource": 9, "min_resource": 1, "reduction_factor": 3, "brackets": 1,
        "variant": "stopping", "resource_attr": None, "seed": 2,
    }
    assert FIFOScheduler().config() == {"type": "FIFOScheduler", "max_resource": math.inf, "resource_attr": None}


def test_asha_milestones_are_its_rungs_per_bracket():
    assert ASHAScheduler(max_resource=27, brackets=3, variant="promotion").milestones() == {
        "kind": "rungs", "levels": [1, 3, 9], "pauses": True, "max_resource": 27,
        "brackets": [[1, 3, 9], [3, 9], [9]],
    }
    assert ASHAScheduler(max_resource=30, min_resource=2, reduction_factor=2).milestones()["levels"] == [2, 4, 8, 16]


def test_hyperband_milestones_are_its_brackets_with_n_i_and_r_i():
    milestones = HyperbandScheduler(max_resource=81).milestones()
    assert milestones["kind"] == "brackets" and milestones["pauses"] is True
    assert [(b["s"], b["n"], b["r"]) for b in milestones["brackets"]] == [
        (4, 81, 1), (3, 34, 3), (2, 15, 9), (1, 8, 27), (0, 5, 81)]
    assert milestones["brackets"][0]["rounds"] == [[81, 1], [27, 3], [9, 9], [3, 27], [1, 81]]
    assert milestones["levels"] == [1, 3, 9, 27]  # R itself ends a trial: nothing left to decide


def test_schedulers_without_rungs_say_so():
    assert FIFOScheduler().milestones() == {"kind": "none", "levels": [], "pauses": False, "max_resource": math.inf}
    assert MedianStoppingScheduler(grace_period=5).milestones()["grace_period"] == 5


class MyScheduler(FIFOScheduler):
    """A user's subclass inherits config() under its own name, which from_config does not know."""


@pytest.mark.parametrize("config", [MyScheduler().config(), {"max_resource": 3}, "ASHAScheduler", None])
def test_from_config_refuses_what_is_not_a_built_in_scheduler(config):
    with pytest.raises(ConfigError, match=r"must be the config\(\) of a built-in scheduler.*pickle it instead"):
        from_config(config)
