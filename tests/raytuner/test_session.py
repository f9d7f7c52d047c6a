import math

import numpy as np
import pytest

import raytuner as rt
from raytuner._driver.resources import normalize, slots, stalled
from raytuner._worker.session import clean_metrics
from raytuner._driver.stop import StopCriteria
from raytuner.errors import ConfigError, NotInTrialError, ReportError


def test_trial_functions_outside_a_trial_say_where_to_call_them():
    for func in (lambda: rt.report({"loss": 1.0}), rt.get_checkpoint, rt.get_context):
        with pytest.raises(NotInTrialError, match="outside a trial"):
            func()
    assert rt.in_trial() is False


def test_metrics_become_plain_numbers():
    clean = clean_metrics({"a": np.float32(0.5), "b": np.int64(3), "c": np.array(2.0), "d": math.nan}, "00000")
    assert clean["a"] == 0.5 and type(clean["a"]) is float
    assert clean["b"] == 3 and type(clean["b"]) is int
    assert clean["c"] == 2.0 and math.isnan(clean["d"])


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        ([0.5], "expects a mapping"),
        ({"loss": "low"}, "metric 'loss' of trial 00000 is str"),
        ({"loss": None}, "not a number"),
        ({"loss": True}, "not a number"),
        ({1: 0.5}, "must be str"),
    ],
)
def test_bad_reports_name_the_problem(metrics, match):
    with pytest.raises(ReportError, match=match):
        clean_metrics(metrics, "00000")


def test_stop_criteria_follow_the_mode_for_the_metric_only():
    stop = StopCriteria({"loss": 0.1, "iteration": 5}, metric="loss", mode="min")
    assert not stop.reached("t", {"loss": 0.2, "iteration": 1})
    assert stop.reached("t", {"loss": 0.1, "iteration": 1})
    assert stop.reached("t", {"loss": 0.9, "iteration": 5})
    accuracy = StopCriteria({"acc": 0.9}, metric="acc", mode="max")
    assert accuracy.reached("t", {"acc": 0.95}) and not accuracy.reached("t", {"acc": 0.5})
    assert StopCriteria(lambda tid, r: r["iteration"] >= 2, None, "min").reached("t", {"iteration": 2})
    with pytest.raises(ConfigError, match="`stop` entries"):
        StopCriteria({"iteration": "ten"}, None, "min")
    with pytest.raises(ConfigError, match="`stop` must be"):
        StopCriteria(20, None, "min")


def test_resources_are_checked_and_counted():
    assert normalize(None) == {"cpu": 1.0}
    assert normalize({"GPU": 0.25}) == {"gpu": 0.25, "cpu": 1.0}
    assert normalize({"cpu": 0.0001, "gpu": 0.3333, "memory": 1.5e9}) == {"cpu": 0.0001, "gpu": 0.3333,
                                                                           "memory": 1.5e9}
    for bad, match in [({"cpu": -1}, "number >= 0"), ({"gpu": 1.5}, "fraction of one GPU"), ([1], "must be a dict"),
                       # Ray refuses these only when the first actor starts, with its own words.
                       ({"cpu": 1e-5}, r"multiple of 0.0001 \(Ray's precision\). Pass e.g. 0.0001"),
                       ({"gpu": 1 / 3}, r"Pass e.g. 0.3333"),
                       ({"CPU": 1, "cpu": 2}, "'cpu' is given twice")]:
        with pytest.raises(ConfigError, match=match):
            normalize(bad)
    nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 2.0}]
    assert slots({"cpu": 1.0}, nodes) == 6
    assert slots({"cpu": 1.0, "gpu": 0.25}, nodes) == 4
    assert slots({"cpu": 2.0, "gpu": 1.0}, nodes) == 1
    assert slots({"cpu": 1.0, "tpu": 1.0}, nodes) == 0


def test_a_cluster_that_lost_the_only_node_for_a_trial_is_said_to_stall():
    assert stalled({"cpu": 1.0, "wk": 1.0}, [{"CPU": 2.0, "wk": 1.0}, {"CPU": 2.0}]) is None
    reason = stalled({"cpu": 1.0, "wk": 1.0}, [{"CPU": 2.0, "memory": 1e9, "node:10.0.0.1": 1.0}])
    assert reason.startswith("no alive node of the Ray cluster can run a trial now (each needs {'cpu': 1.0, 'wk': "
                             "1.0}; alive nodes have {CPU: 2})")
    assert "`raytuner resume` continues it later" in reason
