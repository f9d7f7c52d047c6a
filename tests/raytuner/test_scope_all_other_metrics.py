"""scope="all" ranks any reported metric by each trial's best kept report, not only the
Tuner's (hunt10: get_best(metric="loss", scope="all") said no trial had a finite loss when
only the last reports were infinite). No Ray: the experiment is written into the layout."""

from __future__ import annotations

import math

import raytuner as rt
from raytuner import cli
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus

REPORTS = {"00000": [(0.5, 3.0), (0.4, math.inf)], "00001": [(0.45, 1.0), (0.45, 2.0)]}  # (score, loss)


def make(tmp_path, scope: str):
    storage = ExperimentStorage(tmp_path / "other")
    storage.create()
    storage.write_experiment({"name": "other", "metric": "score", "mode": "max", "status": "COMPLETED",
                              "best_scope": scope})
    for trial_id, points in REPORTS.items():
        storage.write_config(trial_id, {"k": trial_id})
        trial, rows = Trial(trial_id, {"k": trial_id}), []
        for it, (score, loss) in enumerate(points, 1):
            trial.observe(it, it, {"score": score, "loss": loss}, -score, 0.1 * it)
            rows.append({"score": score, "loss": loss, "iteration": it, "time_total_s": 0.1 * it, "timestamp": 0.0})
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus.COMPLETED
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def test_another_metric_under_scope_all_is_ranked_by_each_trials_best_report(tmp_path, capsys):
    path = make(tmp_path, "all")
    results = rt.load(path)
    assert results.get_best(metric="loss", mode="min").trial_id == "00001"  # its loss 1.0; 00000's best is 3.0
    assert results.get_best(metric="loss", mode="max").trial_id == "00000"  # inf never counts: its 3.0
    assert results.get_best(metric="loss", mode="min", scope="last").trial_id == "00001"  # 2.0; 00000's last is inf
    assert cli.main(["best", "other", "--root", str(tmp_path), "--metric", "loss", "--mode", "max"]) == 0
    assert '"k": "00000"' in capsys.readouterr().out  # its config
    assert cli.main(["show", "other", "--root", str(tmp_path), "--metric", "loss", "--mode", "max"]) == 0
    assert "ranked by each trial's best report" in capsys.readouterr().out
