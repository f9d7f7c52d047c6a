"""A real experiment on local Ray with every tracker on: TensorBoard (by default), MLflow,
then the report and the CLI on what it stored."""

from __future__ import annotations

import json

import pytest

import raytuner as rt
from raytuner import cli
from raytuner.schedulers import ASHAScheduler


def train(config):
    for step in range(1, 10):
        rt.report({"loss": (config["x"] - 2) ** 2 + 1 / step, "acc": step / 10})


def test_experiment_with_trackers_report_and_cli(ray_cluster, storage, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("plotly")
    from mlflow.tracking import MlflowClient

    from raytuner.tracking import MLflowCallback

    uri = f"sqlite:///{storage.parent / 'mlflow.db'}"
    results = rt.Tuner(
        train, space={"x": rt.uniform(0, 4), "opt": rt.choice(["adam", "sgd"])}, metric="loss", num_trials=6,
        scheduler=ASHAScheduler(max_resource=9, reduction_factor=3), name="tracked", storage_path=storage,
        callbacks=[MLflowCallback(tracking_uri=uri, flush_every_s=0)], verbose=0, seed=1,
    ).fit()
    assert len(results) == 6

    runs = sorted(p.name for p in (results.path / "tensorboard").iterdir() if p.is_dir())
    assert runs == [t.trial_id for t in results.trials]

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    mlflow_runs = client.search_runs([experiment.experiment_id])
    by_trial = {r.data.tags.get("raytuner.trial_id"): r for r in mlflow_runs}
    for trial in results.trials:
        run = by_trial[trial.trial_id]
        assert run.data.tags["raytuner.status"] == trial.status.value
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert steps == list(range(1, trial.iteration + 1))
    parent = by_trial[None]
    assert parent.data.tags["raytuner.best_trial_id"] == results.best.trial_id

    report = results.report()
    assert report.is_file() and "Learning curves" in report.read_text()

    assert cli.main(["best", str(results.path)]) == 0
    assert json.loads(capsys.readouterr().out) == results.best.config
    assert cli.main(["show", "tracked", "--root", str(storage)]) == 0
    assert results.best.trial_id in capsys.readouterr().out
