"""Bad arguments and bad reports: ValueError naming the argument, the value and the fix."""

from __future__ import annotations

import math

import pytest

from raytuner.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperbandScheduler,
    MedianStoppingScheduler,
)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: ASHAScheduler(27, reduction_factor=1), r"`reduction_factor` is 1, but must be a finite number >= 2"),
        (lambda: ASHAScheduler(27, reduction_factor=1.5), r"`reduction_factor` is 1.5"),
        (lambda: ASHAScheduler(27, reduction_factor=True), r"`reduction_factor` is True"),
        (lambda: ASHAScheduler(27, min_resource=0), r"`min_resource` is 0, but must be a number >= 1 \(r\)"),
        (lambda: ASHAScheduler(27, min_resource=30), r"`min_resource` is 30, but must be <= max_resource \(27\)"),
        (lambda: ASHAScheduler(math.inf), r"`max_resource` is inf, but must be a finite number >= 1"),
        (lambda: ASHAScheduler(0.5), r"`max_resource` is 0.5"),
        (lambda: ASHAScheduler(27, brackets=0), r"`brackets` is 0, but must be an int >= 1. Pass brackets=1"),
        (lambda: ASHAScheduler(27, brackets=5), r"`brackets` is 5, but .* allow at most 4 .* Pass brackets=4"),
        (lambda: ASHAScheduler(27, variant="halving"), r"`variant` is 'halving', but must be one of 'stopping' or 'promotion'"),
        (lambda: ASHAScheduler(27, resource_attr=""), r"`resource_attr` is '', but must be None or a non-empty str"),
        (lambda: ASHAScheduler(27, seed=-1), r"`seed` is -1"),
        (lambda: HyperbandScheduler(0), r"HyperbandScheduler: `max_resource` is 0"),
        (lambda: HyperbandScheduler(81, reduction_factor=0), r"HyperbandScheduler: `reduction_factor` is 0"),
        (lambda: MedianStoppingScheduler(grace_period=-1), r"`grace_period` is -1"),
        (lambda: MedianStoppingScheduler(min_samples_required=0), r"`min_samples_required` is 0"),
        (lambda: FIFOScheduler(max_resource=0), r"FIFOScheduler: `max_resource` is 0"),
    ],
)
def test_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


SCHEDULERS = [
    lambda: ASHAScheduler(27),
    lambda: ASHAScheduler(27, variant="promotion"),
    lambda: HyperbandScheduler(27),
    lambda: MedianStoppingScheduler(),
    lambda: FIFOScheduler(),
]


@pytest.mark.parametrize("make", SCHEDULERS)
def test_non_increasing_resource_names_trial_previous_new_and_fix(make):
    scheduler = make()
    scheduler.on_trial_add("t7")
    scheduler.on_result("t7", 0.5, 1.0)
    name = type(scheduler).__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: trial 't7' reported resource 0.25 after 0.5; the resource must "
        r"increase .* Report a growing counter .* resource_attr=None to count reports",
    ):
        scheduler.on_result("t7", 0.25, 1.0)


@pytest.mark.parametrize("make", SCHEDULERS)
def test_non_numeric_resource(make):
    with pytest.raises(ValueError, match=r"trial 'x' reported resource 'epoch 3'; it must be a number"):
        make().on_result("x", "epoch 3", 1.0)


@pytest.mark.parametrize("make", SCHEDULERS)
def test_restore_refuses_state_of_a_differently_built_scheduler(make):
    scheduler = make()
    state = scheduler.state()
    state["config"] = {**state["config"], "resource_attr": "epoch"}
    with pytest.raises(ValueError, match=r"Build the scheduler with the same arguments"):
        make().restore(state)
