"""Bad arguments and bad reports: raytuner errors naming the argument, the value and the fix."""

from __future__ import annotations

import math

import pytest

from raytuner.errors import ConfigError, ReportError, ResourceError, is_fatal
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
        (lambda: ASHAScheduler(27, brackets=5), r"`brackets` is 5, but must be at most 4: .* allow .* = 4. Pass brackets=4"),
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
    with pytest.raises(ConfigError, match=pattern) as raised:
        make()
    assert not is_fatal(raised.value)  # only a report error ends the experiment


SCHEDULERS = [
    lambda: ASHAScheduler(27, resource_attr="epoch"),
    lambda: ASHAScheduler(27, variant="promotion", resource_attr="epoch"),
    lambda: HyperbandScheduler(27, resource_attr="epoch"),
    lambda: MedianStoppingScheduler(resource_attr="epoch"),
    lambda: FIFOScheduler(resource_attr="epoch"),
]


@pytest.mark.parametrize("make", SCHEDULERS)
def test_non_increasing_resource_names_trial_attribute_previous_new_and_fix(make):
    scheduler = make()
    scheduler.on_trial_add("t7")
    scheduler.on_result("t7", 0.5, 1.0)
    name = type(scheduler).__name__
    with pytest.raises(
        ResourceError,
        match=rf"{name}: trial 't7' reported resource 0.25 after 0.5 \(resource_attr='epoch'\); the "
        r"resource must increase .* Report a growing counter .* as `epoch`, or pass resource_attr=None",
    ) as raised:
        scheduler.on_result("t7", 0.25, 1.0)
    # A report error: the script reports this way in every trial, so it ends the experiment.
    assert isinstance(raised.value, ReportError) and is_fatal(raised.value)


def test_counted_reports_name_the_report_count():
    fifo = FIFOScheduler()
    fifo.on_result("a", 2, 0.0)
    with pytest.raises(ResourceError, match=r"\(resource_attr=None\).* the resource is the trial's report count") as raised:
        fifo.on_result("a", 2, 0.0)
    assert "pass resource_attr=None" not in str(raised.value)  # it is None already


@pytest.mark.parametrize("make", SCHEDULERS)
def test_non_numeric_resource(make):
    with pytest.raises(ResourceError, match=r"trial 'x' reported resource 'epoch 3' \(resource_attr='epoch'\); it must be a number"):
        make().on_result("x", "epoch 3", 1.0)


@pytest.mark.parametrize("make", SCHEDULERS)
def test_restore_refuses_state_of_a_differently_built_scheduler(make):
    scheduler = make()
    state = scheduler.state()
    state["config"] = {**state["config"], "resource_attr": "step"}
    with pytest.raises(ConfigError, match=r"Build the scheduler with the same arguments"):
        make().restore(state)
