"""Several objectives at the Tuner's door: metric and mode lists checked before any trial
starts (and before Ray does), values signed per objective, stop= thresholds per objective,
and the worker's check that each report holds every objective."""

from __future__ import annotations

import math
import sys

import pytest

import raytuner as rt
from raytuner._driver.stop import StopCriteria
from raytuner._objectives import Objectives, normalize
from raytuner._worker.protocol import TrialSpec
from raytuner._worker.session import Session
from raytuner.errors import ReportError
from raytuner.schedulers import ASHAScheduler, HyperbandScheduler, MedianStoppingScheduler, PB2Scheduler, PBTScheduler
from raytuner.search import GPSearcher, GridSearcher, HyperOptSearcher, OptunaSearcher, RandomSearcher, TPESearcher


def train(config):
    rt.report({"loss": config["x"], "size": 1.0})


SPACE = {"x": rt.uniform(0, 1)}
TWO = ["loss", "size"]


# -- metric and mode ---------------------------------------------------------------------------
def test_one_mode_per_metric_or_one_for_all():
    assert normalize(TWO, ["min", "max"]) == (TWO, ["min", "max"])
    assert normalize(TWO, "max") == (TWO, ["max", "max"])
    assert normalize(("loss", "size"), ("min", "min")) == (TWO, ["min", "min"])
    assert normalize(["loss"], ["max"]) == ("loss", "max")  # one metric in a list is one objective
    assert normalize("loss", "min") == ("loss", "min") and normalize(None, "min") == (None, "min")


@pytest.mark.parametrize(("metric", "mode", "match"), [
    (TWO, ["min"], r"`mode` is \['min'\], but must be one mode per metric \(2: \['loss', 'size'\]\)\. Pass a list of 2 modes"),
    (TWO, ["min", "min", "max"], r"`mode` is \['min', 'min', 'max'\], but must be one mode per metric"),
    (["loss", "size", "loss"], "min", r"`metric` is \['loss', 'size', 'loss'\], but must be a list of distinct metric "
                                      r"names\. 'loss' is given more than once"),
    ([], "min", r"`metric` is \[\], but must be a non-empty list of metric names"),
    (["loss", 3], "min", r"`metric` is \['loss', 3\], but must be a non-empty list of metric names"),
    (TWO, ["min", "maximize"], r"`mode` is \['min', 'maximize'\], but must be a list of 'min' and 'max'"),
    (TWO, 3, r"`mode` is 3, but must be 'min', 'max' or a list of them, one per metric"),
    ("loss", ["min", "max"], r"`mode` is \['min', 'max'\], but must be 'min' or 'max' with one metric"),
    ({"loss": "min"}, "min", r"`metric` is \{'loss': 'min'\}, but must be the name of a reported metric, or a list"),
])
def test_bad_metric_and_mode_lists_are_named_with_the_fix(metric, mode, match):
    with pytest.raises(rt.ConfigError, match=match):
        rt.Tuner(train, space=SPACE, metric=metric, mode=mode)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"searcher": HyperOptSearcher(SPACE)}, r"HyperOptSearcher is single-objective .*metric=\['loss', 'size'\] use "
                                            r"TPESearcher, OptunaSearcher, RandomSearcher or GridSearcher"),
    ({"searcher": GPSearcher(SPACE)}, r"GPSearcher is single-objective"),
    ({"scheduler": MedianStoppingScheduler()}, r"MedianStoppingScheduler is single-objective"),
    ({"scheduler": PBTScheduler(2, {"x": rt.uniform(0, 1)})},
     r"PBTScheduler is single-objective \(it ranks the population by one value\)"),
    ({"scheduler": PB2Scheduler(2, {"x": [0.0, 1.0]})}, r"PB2Scheduler is single-objective"),
    ({"stop": {("loss", "size"): 0.1}}, r"`stop` entry \('loss', 'size'\): 0.1 is ambiguous with several objectives"),
    ({"stop": {"loss": [0.1, 3]}}, r"stop=lambda trial_id, r: r\['loss'\] <= \.\.\. and r\['size'\] <= "),
])
def test_components_and_stop_that_cannot_take_several_objectives_fail_before_ray_starts(kwargs, match):
    import ray

    args = {"space": None if "searcher" in kwargs else SPACE, "metric": TWO, "mode": "min", **kwargs}
    started = ray.is_initialized()  # (the suite's shared local Ray may be up already)
    with pytest.raises(rt.ConfigError, match=match):
        rt.Tuner(train, **args)
    assert ray.is_initialized() == started


def test_multi_objective_components_are_accepted_and_told_the_objectives():
    for searcher in (TPESearcher(seed=0), RandomSearcher(), GridSearcher(), OptunaSearcher()):
        scheduler = ASHAScheduler(max_resource=9)
        space = {"x": rt.grid([0.1, 0.2])} if isinstance(searcher, GridSearcher) else SPACE
        tuner = rt.Tuner(train, space=space, metric=TWO, mode=["min", "max"], searcher=searcher, scheduler=scheduler)
        tuner._set_up()  # as fit() does first: the Tuner checked a copy of the searcher
        assert searcher.num_objectives == 2 and scheduler.num_objectives == 2
    hyperband = HyperbandScheduler(max_resource=9)
    rt.Tuner(train, space=SPACE, metric=TWO, scheduler=hyperband)._set_up()
    assert hyperband.num_objectives == 2


class _OldSearcher(RandomSearcher):
    """A searcher of one's own whose setup predates ``objectives=``."""

    def setup(self, space, num_trials):  # noqa: D102 - the old signature
        super().setup(space, num_trials)


def test_a_searcher_whose_setup_predates_objectives_keeps_working_with_one():
    searcher = _OldSearcher()
    rt.Tuner(train, space=SPACE, metric="loss", searcher=searcher)._set_up()  # as fit() does first
    assert searcher.space is SPACE


# -- values --------------------------------------------------------------------------------------
def test_values_are_signed_per_objective_in_metric_order_nan_kept():
    objectives = Objectives.of(["acc", "size"], ["max", "min"])
    assert objectives.signed({"size": 3, "acc": 0.9, "other": 1}) == (-0.9, 3.0)
    value = objectives.signed({"acc": math.nan, "size": 3})
    assert math.isnan(value[0]) and value[1] == 3
    assert objectives.signed({"acc": 0.9}) is None  # a missing objective: no value
    assert objectives.unsigned((-0.9, 3.0)) == (0.9, 3.0)
    assert Objectives.of("loss", "max").signed({"loss": 2}) == -2.0  # one objective: a float, as before


# -- stop= ---------------------------------------------------------------------------------------
def test_stop_thresholds_read_each_objective_in_its_own_mode():
    stop = StopCriteria({"acc": 0.9, "size": 100}, ["acc", "size"], ["max", "min"])
    assert stop.reached("t", {"acc": 0.95, "size": 500})  # acc reached (max: >=)
    assert stop.reached("t", {"acc": 0.5, "size": 50})  # size reached (min: <=)
    assert not stop.reached("t", {"acc": 0.5, "size": 500})
    assert not StopCriteria({"size": 100}, ["acc", "size"], ["max", "max"]).reached("t", {"size": 50})


# -- the worker ----------------------------------------------------------------------------------
class _Session(Session):
    def __init__(self, metric):
        self.spec = TrialSpec("00003", "exp", {}, [None], metric, None, StopCriteria(None, metric, "min"), 1.0, "/tmp", "n")


def test_each_report_must_hold_every_objective():
    session = _Session(TWO)
    session.check_metric({"loss": 1.0, "size": 3})
    with pytest.raises(ReportError, match=r"The Tuner has 2 objectives, metric=\['loss', 'size'\], and each report "
                                          r"must hold every one; trial 00003 reported \['loss'\], without 'size'"):
        session.check_metric({"loss": 1.0})
    with pytest.raises(ReportError, match=r"expects metric 'loss' in each report"):
        _Session("loss").check_metric({"size": 1.0})
    _Session(None).check_metric({})


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
