"""Names and values no report can satisfy are refused before a trial runs; a report that uses
a column raytuner writes or shows itself is refused with the name to use instead.

No Ray: the checks run at construction (Tuner, StopCriteria, ReportCallback) or on one
report (``clean_metrics``). The trials' side is in tests/integration/test_report_names.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import raytuner as rt
from raytuner._driver.resources import normalize
from raytuner._driver.stop import StopCriteria
from raytuner._worker.session import clean_metrics
from raytuner.errors import ConfigError, ReportError


def train(config):
    rt.report({"loss": config["x"]})


SPACE = {"x": rt.uniform(0, 1)}

#: Each column raytuner writes (results.jsonl) or shows (dataframe, history), and the name
#: its refusal suggests instead.
RESERVED = [
    ("iteration", "iteration_"), ("resource", "resource_"), ("time_total_s", "time_total_s_"),
    ("timestamp", "timestamp_"), ("attempt", "attempt_"), ("checkpoint", "checkpoint_"), ("_marker", "marker_"),
    ("trial_id", "trial_id_"), ("status", "status_"), ("damaged", "damaged_"), ("pareto_front", "pareto_front_"),
    ("cloned_from", "cloned_from_"), ("cloned_iteration", "cloned_iteration_"), ("config/x", "config_x"),
    ("config/opt/lr", "config_opt_lr"), ("best_loss", "best_loss_"),
]


@pytest.mark.parametrize(("name", "instead"), RESERVED)
def test_a_report_naming_a_column_of_raytuners_is_refused_with_another_name(name, instead):
    with pytest.raises(ReportError, match=rf"trial 00004 reported a metric named '{name}', which is .*"
                                          rf"Report it under another name, e.g. '{instead}'\."):
        clean_metrics({"loss": 0.5, name: 42}, "00004", "loss")


def test_names_beside_the_reserved_ones_are_reported_as_they_are():
    metrics = {"loss": 0.5, "epoch": 3, "iterations": 2, "config": 1.0, "configx": 1.0, "best_acc": 0.9,
               "step_time_s": np.float32(0.25), "statuses": 1}
    assert clean_metrics(metrics, "00000", "loss") == {**metrics, "step_time_s": 0.25}
    assert clean_metrics({"best_loss": 0.1}, "00000", "acc") == {"best_loss": 0.1}  # not the Tuner's metric
    assert clean_metrics({"best_loss": 0.1}, "00000", ["loss", "size"]) == {"best_loss": 0.1}  # no best_ column


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": ""}, r"Tuner: `metric` is '', but must be the name of a reported metric\. Pass the name"),
        ({"metric": ["loss", ""]}, r"Tuner: `metric` is \['loss', ''\], but must be a non-empty list of metric names"),
        ({"metric": "iteration"}, r"`metric` is 'iteration', but must be the name of a metric a report may hold\. "
                                  r"'iteration' is a column raytuner writes .* e\.g\. 'iteration_'"),
        ({"metric": ["loss", "config/x"]}, r"`metric` is \['loss', 'config/x'\].*show the config's 'x'.*'config_x'"),
        ({"resource_attr": "time_total_s"}, r"`resource_attr` is 'time_total_s', but must be the name of a metric a "
                                            r"report may hold\. .*pass resource_attr=None to count reports"),
        ({"resource_attr": "best_loss"}, r"`resource_attr` is 'best_loss'.*each trial's best 'loss'"),
        ({"stop": {"loss": math.nan}}, r"Tuner: `stop\['loss'\]` is nan, but must be a finite number\. A NaN or "
                                       r"infinite threshold is never reached"),
        ({"stop": {"iteration": math.inf}}, r"`stop\['iteration'\]` is inf, but must be a finite number"),
        ({"stop": {"acc": np.float64("-inf")}}, r"`stop\['acc'\]` is -inf"),
        ({"stop": {"timestamp": 1e9}}, r"`stop` is \{'timestamp': 1000000000\.0\}, but must be keyed by reported "
                                       r"metrics, 'iteration' or 'time_total_s'"),
        ({"stop": {"config/x": 0.5}}, r"`stop` is \{'config/x': 0\.5\}.*To stop on the config, pass a function"),
        ({"resources": {"cpus": 1}}, r"Tuner: `resources\['cpus'\]` is 1, but must be under a known name \(cpu, gpu, "
                                     r"memory\) or a custom Ray resource's\. Did you mean 'cpu'\? Pass resources="
                                     r"\{'cpu': 1\}\."),
        ({"resources": {"num_gpus": 0.5}}, r"`resources\['num_gpus'\]` is 0\.5.*Did you mean 'gpu'\?"),
        ({"resources": {"GPUs": 1}}, r"`resources\['GPUs'\]` is 1.*Did you mean 'gpu'\?"),
        ({"resources": {"memroy": 2e9}}, r"`resources\['memroy'\]` is 2000000000\.0.*Did you mean 'memory'\?"),
    ],
)
def test_names_and_thresholds_no_report_can_meet_are_refused_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        rt.Tuner(train, **{"space": SPACE, "metric": "loss", **kwargs})


def test_finite_thresholds_of_any_number_type_and_custom_resources_are_accepted():
    rt.Tuner(train, space=SPACE, metric="loss", stop={"iteration": np.int64(5), "loss": np.float32(0.1)})
    assert normalize({"cpu": 1, "tpu": 1, "accelerator_type:A100": 1, "my_tag": 2}) == {
        "cpu": 1.0, "tpu": 1.0, "accelerator_type:A100": 1.0, "my_tag": 2.0}
    assert normalize({"CPU": 2, "Memory": 1e9}) == {"cpu": 2.0, "memory": 1e9}


def test_a_stop_key_no_report_of_a_trial_held_fails_it_naming_the_key_and_the_reports():
    stop = StopCriteria({"iteraton": 2, "val_acc": 0.9, "time_total_s": 60}, "loss", "min")
    stop.check_reported("00001", {"loss", "val_acc", "iteraton"})  # each reported at least once: fine
    with pytest.raises(ReportError, match=r"`stop` has a threshold for 'iteraton', but trial 00001 ended without "
                                          r"reporting it, so nothing stopped the trial by it; its reports held "
                                          r"\['loss', 'val_acc'\] and raytuner adds \['iteration', 'time_total_s'\]\. "
                                          r"Fix the key in `stop=`, or report 'iteraton'"):
        stop.check_reported("00001", {"loss", "val_acc"})
    StopCriteria({"iteration": 3}, "loss", "min").check_reported("00001", set())
    StopCriteria(lambda trial_id, result: False, "loss", "min").check_reported("00001", set())


def test_a_report_without_a_stop_key_is_not_checked_against_it():
    stop = StopCriteria({"val_acc": 0.9}, "loss", "min")
    assert not stop.reached("00000", {"loss": 0.1, "iteration": 1})
    assert stop.reached("00000", {"loss": 0.1, "val_acc": 0.95, "iteration": 2})


def test_resume_shows_the_trainable_it_was_given(tmp_path):
    with pytest.raises(ConfigError, match=r"Tuner\.resume: `trainable` is 'train', but must be the function the "
                                          r"experiment ran, or None\. Pass the function itself \(not its name\)"):
        rt.Tuner.resume(tmp_path / "no-such-experiment", trainable="train")
