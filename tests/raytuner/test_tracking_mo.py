"""TensorBoard and MLflow with several objectives (no Ray): every objective is a metric of
the HParams experiment, first and in the Tuner's order; MLflow records each objective per
trial and marks the Pareto front."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_tracking import drive, mlflow_uri, read_events  # noqa: E402,F401 - mlflow_uri: a fixture

OBJECTIVES = dict(metric=["acc", "loss"], mode=["max", "min"])


def test_tensorboard_hparams_list_every_objective_first(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import metadata

    from raytuner.tracking import TensorBoardCallback

    drive(TensorBoardCallback(), tmp_path, **OBJECTIVES)
    logdir = tmp_path / "exp" / "tensorboard"
    events = [e for f in logdir.glob("events.*") for e in read_events(f)]
    value = next(v for e in events for v in e.summary.value if v.tag == "_hparams_/experiment")
    experiment = metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    assert [m.name.tag for m in experiment.metric_infos] == ["acc", "loss"]


def test_an_objective_never_logged_is_still_an_hparams_metric(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import metadata

    from raytuner.tracking import TensorBoardCallback

    drive(TensorBoardCallback(), tmp_path, metric=["params", "loss"], mode="min")
    events = [e for f in (tmp_path / "exp" / "tensorboard").glob("events.*") for e in read_events(f)]
    value = next(v for e in events for v in e.summary.value if v.tag == "_hparams_/experiment")
    tags = [m.name.tag for m in metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content).metric_infos]
    assert tags == ["params", "loss", "acc"]


def test_mlflow_records_every_objective_and_marks_the_front(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from raytuner.tracking import MLflowCallback

    results = drive(MLflowCallback(tracking_uri=mlflow_uri, experiment_name="front"), tmp_path, **OBJECTIVES)
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("front")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    front = [t.trial_id for t in results.pareto_front()]
    parent = runs["exp"]
    assert parent.data.params["metric"] == "['acc', 'loss']" and parent.data.params["mode"] == "['max', 'min']"
    assert parent.data.tags["raytuner.pareto_front"] == ",".join(front)
    assert parent.data.metrics["pareto_front_size"] == len(front) and "raytuner.best_trial_id" not in parent.data.tags
    for trial_id in ("00000", "00001", "00002"):
        run = runs[f"exp/{trial_id}"]
        assert {"acc", "loss"} <= set(run.data.metrics)
        assert (run.data.tags.get("raytuner.pareto_front") == "true") == (trial_id in front)


def test_mlflow_front_tag_leaves_the_runs_a_resume_pushed_off_the_front(tmp_path, mlflow_uri):
    """A resume that adds trials can push earlier members off the front: searching on the
    tag then returns exactly the new front, not the earlier one's members too."""
    import time

    from mlflow.tracking import MlflowClient

    from raytuner._results import Results, TrialResult
    from raytuner._trial import Trial, TrialStatus
    from raytuner.tracking import MLflowCallback

    path = tmp_path / "exp"
    path.mkdir()
    meta = {"name": "exp", "status": "COMPLETED", "start_time": time.time(), **OBJECTIVES}
    ends: list = []

    def run_trials(callback, points):
        callback.on_experiment_start(path, meta)
        for trial_id, acc, loss in points:
            trial = Trial(trial_id, {"kind": trial_id})
            callback.on_trial_start(trial_id, trial.config)
            trial.observe(1, 1, {"acc": acc, "loss": loss}, loss, 0.1)
            callback.on_trial_result(trial_id, {"acc": acc, "loss": loss, "iteration": 1, "timestamp": time.time()})
            trial.status = TrialStatus.COMPLETED
            ends.append(TrialResult.from_trial(trial, path / "trials" / trial_id))
            callback.on_trial_end(ends[-1])
        results = Results(path, list(ends), OBJECTIVES["metric"], OBJECTIVES["mode"], meta)
        callback.on_experiment_end(results)
        return results

    run_trials(MLflowCallback(tracking_uri=mlflow_uri, experiment_name="stale"), [("00000", 0.5, 1.0), ("00001", 0.6, 2.0)])
    resumed = MLflowCallback(tracking_uri=mlflow_uri, experiment_name="stale")
    results = run_trials(resumed, [("00002", 0.7, 0.5)])  # dominates both
    assert [t.trial_id for t in results.pareto_front()] == ["00002"]
    client = MlflowClient(tracking_uri=mlflow_uri)
    tagged = client.search_runs([resumed._experiment_id], filter_string="tags.`raytuner.pareto_front` = 'true'")
    assert [r.data.tags["raytuner.trial_id"] for r in tagged] == ["00002"]
    off = client.search_runs([resumed._experiment_id], filter_string="tags.`raytuner.pareto_front` = 'false'")
    assert sorted(r.data.tags["raytuner.trial_id"] for r in off) == ["00000", "00001"]
