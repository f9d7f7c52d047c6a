"""The Pareto views of a multi-objective experiment, read from its folder (no Ray): the
HTML report's front, objective histories and hypervolume over time, and the dashboard's
summary, table and figures. User strings (a metric named like markup) arrive escaped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import raytuner as rt
from raytuner._objectives import Objectives
from raytuner._pareto import hypervolume, reference_point
from raytuner._report import _data, _pareto_figures

from tests.raytuner.mo_experiment import EVIL_METRIC, brute_front, final_points, write_mo_experiment

pytest.importorskip("plotly")
sys.path.insert(0, str(Path(__file__).parent))
from test_report import external_resources, figure_specs  # noqa: E402


def test_the_report_draws_the_front_among_all_trials_first(tmp_path):
    path = write_mo_experiment(tmp_path, n=30)
    results = rt.load(path)
    html = results.report().read_text()
    specs = figure_specs(html)
    assert list(specs)[:3] == ["front", "objective_histories", "hypervolume"]
    assert "history" in specs and external_resources(html) == []
    front = [t.trial_id for t in results.pareto_front()]
    traces = {trace["name"]: trace for trace in specs["front"]["data"]}
    members = traces["Pareto front"]
    assert list(zip(members["x"], members["y"])) == [(results[i].metrics["loss"], results[i].metrics["score"])
                                                     for i in front]
    assert len(traces["other trials"]["x"]) == 30 - len(front)
    assert specs["front"]["layout"]["xaxis"]["title"]["text"] == "loss (min)"
    # the page names the front in its header, and marks it in the table
    assert len(front) > 2 and f"{len(front)} trials (last reports)" in html and f"{front[0]} (front)" in html


def test_the_hypervolume_only_rises_to_that_of_the_final_front(tmp_path):
    path = write_mo_experiment(tmp_path, n=25, failed=(4,))
    data = _data.collect(rt.load(path))
    times, volumes, z = _pareto_figures.hypervolume_series(data)
    assert times == sorted(times) and volumes == sorted(volumes) and volumes[-1] > 0
    # The points of the front's trials: finished, finite, and not FAILED (00004) while others have values.
    finals = final_points(path)
    signed_z = reference_point(list(finals.values()))
    assert z == list(Objectives.of(["loss", "score"], ["min", "max"]).unsigned(signed_z))
    assert volumes[-1] == pytest.approx(hypervolume([finals[k] for k in brute_front(finals)], signed_z))


def test_three_objectives_are_drawn_pairwise_and_names_are_escaped(tmp_path):
    path = write_mo_experiment(tmp_path, n=20, metrics=("loss", "score", EVIL_METRIC), modes=("min", "max", "min"))
    html = rt.load(path).report().read_text()
    specs = figure_specs(html)
    splom = specs["front"]["data"][0]
    assert splom["type"] == "splom" and len(splom["dimensions"]) == 3
    assert splom["dimensions"][2]["label"] == "&lt;b&gt;size&lt;/b&gt;&amp; (min)"
    assert EVIL_METRIC not in html and EVIL_METRIC not in json.dumps(specs)


def test_a_single_objective_report_has_no_pareto_figures(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import write_experiment

    specs = figure_specs(rt.load(write_experiment(tmp_path)).report().read_text())
    assert not {"front", "objective_histories", "hypervolume"} & set(specs)


# -- the dashboard -----------------------------------------------------------------------------
@pytest.fixture
def dashboard():
    """A client of the real dashboard app; its figure builder stopped afterwards."""
    from dashboard_setup import _APPS, client, close

    yield client
    while _APPS:
        close(_APPS.pop())


def test_the_dashboard_shows_the_front_in_summary_table_and_figures(tmp_path, dashboard):
    client = dashboard
    root = tmp_path / "results"
    root.mkdir()
    path = write_mo_experiment(root, n=20)
    write_mo_experiment(root, "all", n=20, scope="all")
    front = [t.trial_id for t in rt.load(path).pareto_front()]
    c = client(root)
    summary = c.get("/api/e/mo").json()
    assert summary["front"] == {"size": len(front), "trial_ids": front} and summary["best"] is None
    assert c.get("/api/e/all").json()["front"]["trial_ids"] == [t.trial_id for t in rt.load(root / "all").pareto_front()]
    listing = {e["name"]: e for e in c.get("/api/experiments").json()["experiments"]}
    assert listing["mo"]["front"]["size"] == len(front)
    table = c.get("/api/e/mo/trials", params={"sort": "front", "limit": 100}).json()
    assert table["objectives"] == ["loss", "score"]
    assert [r["trial_id"] for r in table["rows"][: len(front)]] == front
    assert [r["front"] for r in table["rows"]] == list(range(len(front))) + [None] * (20 - len(front))
    row = table["rows"][0]
    assert row["values"] == {"loss": rt.load(path)[row["trial_id"]].metrics["loss"],
                             "score": rt.load(path)[row["trial_id"]].metrics["score"]}
    by_score = c.get("/api/e/mo/trials", params={"sort": "objective.score", "order": "desc"}).json()
    scores = [r["values"]["score"] for r in by_score["rows"]]
    assert scores == sorted(scores, reverse=True)
    figures = c.get("/api/e/mo/figures").json()
    assert [f["key"] for f in figures["figures"]][:3] == ["front", "objective_histories", "hypervolume"]


#: Each trial's (loss, score) reports and how it ended. 00002 failed with the best of both
#: and is never the best so far; 00000's best loss (0.1) and 00001's best score (9) are not
#: their last reports, so the best so far differs by best_scope.
CURVES = {"00000": ([(0.9, 1.0), (0.1, 2.0), (0.5, 3.0)], "STOPPED"),
          "00001": ([(0.8, 5.0), (0.4, 9.0), (0.3, 4.0)], "COMPLETED"),
          "00002": ([(0.05, 20.0), (0.01, 30.0)], "FAILED"),
          "00003": ([(0.7, 6.0), (0.6, 7.0)], "COMPLETED")}


def write_curves(root: Path, scope: str) -> Path:
    from raytuner._storage.experiment import ExperimentStorage
    from raytuner._trial import Trial, TrialStatus

    storage = ExperimentStorage(root / "mo")
    storage.create()
    storage.write_experiment({"name": "mo", "metric": ["loss", "score"], "mode": ["min", "max"], "status": "COMPLETED",
                              "searcher": "RandomSearcher", "scheduler": "FIFOScheduler()", "start_time": 0.0,
                              "end_time": 10.0, "best_scope": scope})
    objectives = Objectives.of(["loss", "score"], ["min", "max"])
    for trial_id, (reports, end) in CURVES.items():
        trial = Trial(trial_id, {"x": int(trial_id)})
        storage.write_config(trial_id, trial.config)
        rows = []
        for it, (loss, score) in enumerate(reports, 1):
            trial.observe(it, it, {"loss": loss, "score": score}, objectives.signed({"loss": loss, "score": score}),
                          0.1 * it)
            rows.append({"loss": loss, "score": score, "iteration": it, "time_total_s": 0.1 * it, "timestamp": 1.0 + it,
                         "attempt": 1})
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus(end)
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def panels(figure, name: str) -> dict[str, dict[str, float]]:
    """Each objective's panel ("y": loss, "y2": score): the traces called ``name``, trial id -> y."""
    out: dict[str, dict[str, float]] = {"y": {}, "y2": {}}
    for trace in figure.data:
        if trace.name == name:
            out[trace.yaxis].update(zip(trace.x, trace.y))
    return out


@pytest.mark.parametrize("scope, loss, score", [
    ("last", {"00000": 0.5, "00001": 0.3, "00003": 0.3}, {"00000": 3.0, "00001": 4.0, "00003": 7.0}),
    ("all", {"00000": 0.1, "00001": 0.1, "00003": 0.1}, {"00000": 3.0, "00001": 9.0, "00003": 9.0})])
def test_each_objectives_best_so_far_follows_the_scope_and_leaves_failed_trials_out(tmp_path, scope, loss, score):
    figure = _pareto_figures.objective_histories(_data.collect(rt.load(write_curves(tmp_path, scope))))
    assert panels(figure.figure, "best so far") == {"y": loss, "y2": score}
    # Each trial's dot is the value the scope ranks it by, so the curve never runs below them all.
    dots = {axis: {**panels(figure.figure, "other trials")[axis], **panels(figure.figure, "Pareto front")[axis]}
            for axis in ("y", "y2")}
    for axis, column, best in (("y", 0, min), ("y2", 1, max)):
        choose = (lambda values: values[-1]) if scope == "last" else best
        assert dots[axis] == {trial_id: choose([r[column] for r in reports])
                              for trial_id, (reports, _) in CURVES.items()}
    assert ("best report (best_scope='all')" if scope == "all" else "last value") in figure.caption
