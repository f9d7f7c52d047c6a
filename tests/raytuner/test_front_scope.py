"""best_scope="all" with two objectives (a min, b max): every view lists a front member at
the report that put it on the front and any other trial at its last, and ranking by one
objective alone compares each trial's best report of it (no Ray: the experiment is written
straight into the storage layout)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import cli
from raytuner._objectives import Objectives
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus

NAN = math.nan
REPORTS = {
    "00000": [(1.0, 10.0), (3.0, 1.0)],  # on the front by its first report; its last is worse in both
    "00001": [(2.0, 8.0)],  # the best last `a`, but 00000 reported a lower one earlier
    "00002": [(1.5, 2.0), (6.0, 3.0)],  # never on the front: listed at its last report
    "00003": [(4.0, 50.0), (NAN, 50.0)],  # on the front by its first report; its last `a` is NaN
}
FRONT = {"00000": {"a": 1.0, "b": 10.0}, "00003": {"a": 4.0, "b": 50.0}}
LISTED = {**FRONT, "00001": {"a": 2.0, "b": 8.0}, "00002": {"a": 6.0, "b": 3.0}}


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    storage = ExperimentStorage(tmp_path / "mo")
    storage.create()
    storage.write_experiment({"name": "mo", "metric": ["a", "b"], "mode": ["min", "max"], "status": "COMPLETED",
                              "best_scope": "all", "searcher": "GridSearcher", "scheduler": "FIFOScheduler()"})
    objectives = Objectives.of(["a", "b"], ["min", "max"])
    for trial_id, points in REPORTS.items():
        storage.write_config(trial_id, {"kind": trial_id})
        trial, rows = Trial(trial_id, {"kind": trial_id}), []
        for it, (a, b) in enumerate(points, 1):
            trial.observe(it, it, {"a": a, "b": b}, objectives.signed({"a": a, "b": b}), 0.1 * it)
            rows.append({"a": a, "b": b, "iteration": it, "time_total_s": 0.1 * it, "timestamp": 0.0})
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus.COMPLETED
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def test_pareto_front_gives_each_member_the_report_that_put_it_there(experiment):
    assert {t.trial_id: t.metrics for t in rt.load(experiment).pareto_front()} == FRONT


def test_the_dashboard_table_lists_each_trial_as_raytuner_show_does(experiment):
    sys.path.insert(0, str(Path(__file__).parent))
    from dashboard_setup import _APPS, client, close

    try:
        rows = client(experiment.parent).get("/api/e/mo/trials", params={"sort": "front"}).json()["rows"]
    finally:
        while _APPS:
            close(_APPS.pop())
    assert [r["trial_id"] for r in rows if r["front"] is not None] == [t.trial_id for t in
                                                                       rt.load(experiment).pareto_front()]
    assert {r["trial_id"]: r["values"] for r in rows} == LISTED


def test_get_best_of_one_objective_under_scope_all_ranks_by_each_trials_best_report(experiment):
    results = rt.load(experiment)
    best = results.get_best(metric="a")  # the experiment's scope: "all"
    assert best.trial_id == results.get_best(metric="a", scope="all").trial_id == "00000"  # its a=1.0, not 00001's 2.0
    # As with one objective, the trial is returned as it stands: `metrics` is its last report.
    assert best.metrics == {"a": 3.0, "b": 1.0}
    assert results.get_best(metric="b").trial_id == "00003"  # its b=50 stands though its last a is NaN
    assert results.get_best(metric="a", scope="last").trial_id == "00001"


def test_raytuner_best_metric_ranks_one_objective_by_each_trials_best_report(experiment, capsys):
    assert cli.main(["best", "mo", "--root", str(experiment.parent), "--metric", "a", "--full"]) == 0
    assert json.loads(capsys.readouterr().out)["trial_id"] == "00000"


def test_raytuner_show_metric_ranks_one_objective_as_best_does(experiment, capsys):
    assert cli.main(["show", "mo", "--root", str(experiment.parent), "--metric", "a"]) == 0
    out = capsys.readouterr().out
    assert "metric a (min), ranked by each trial's best report" in out and "best a" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:5].isdigit()]
    assert rows[0][0] == "00000" and "1" in rows[0], out  # its a=1.0 first, as `best --metric a` says


def test_the_report_of_one_objective_ranks_as_best_metric_does(experiment):
    from raytuner._report._data import best_so_far, collect

    data = collect(rt.load(experiment), metric="a")
    assert data.best.trial_id == "00000"  # its best a=1.0, as `raytuner best --metric a`; not 00001's last 2.0
    assert best_so_far(data)[-1] == ("00003", 1.0)  # the history figure's best so far
    assert data.shown(data.results.trials[1]) == 2.0
