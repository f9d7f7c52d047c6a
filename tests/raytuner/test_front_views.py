"""Every view of a multi-objective experiment's Pareto front against the brute-force
non-dominated set, with FAILED, NaN and DAMAGED trials among the trials (no Ray).

The experiment is written straight into the storage layout; then trials whose values would
dominate every other are made untrustworthy (a results.jsonl damaged before its last line,
a trial.json with a field of the wrong type, a config.json that is not JSON) or FAILED.
The expected front is computed here from the files with plain ``json`` (no raytuner
reader): the non-dominated points of the trials that are neither DAMAGED nor FAILED, each
trial's last report (best_scope "last") or every report ("all"), NaN never counting.
Results, dataframe(), the CLI's best/show/ls and summary, the report and the dashboard
must all name that set, in the same order where they show one.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import raytuner as rt
from raytuner import cli
from raytuner._pareto import hypervolume
from raytuner._report import _data, _pareto_figures
from raytuner._storage.experiment import ExperimentStorage

from tests.raytuner.mo_experiment import brute_front, write_mo_experiment
from tests.raytuner.test_damaged_records import _views

METRICS, MODES = ("loss", "score"), ("min", "max")
SIGNS = {"loss": 1.0, "score": -1.0}
N = 24
FAILED = (2, 5, 11)
NAN = (3, 7)
DAMAGED = {"00008": "results.jsonl", "00009": "trial.json", "00010": "config.json"}
TEMPTING = {"loss": -100.0, "score": 1000.0}  # dominates every value write_mo_experiment draws
FAILED_BEST = {"loss": -50.0, "score": 500.0}  # dominates all but TEMPTING


def make(root: Path, name: str, scope: str) -> Path:
    path = write_mo_experiment(root, name, n=N, scope=scope, failed=FAILED, nan=NAN)
    storage = ExperimentStorage(path)
    trials = path / "trials"
    # A FAILED trial with the best values of all: they count only when no other trial has any.
    storage.append_results("00002", [{**FAILED_BEST, "iteration": 4, "time_total_s": 1.0, "timestamp": 1.0}])
    _edit(trials / "00002/trial.json", metrics=dict(FAILED_BEST), iteration=4)
    for trial_id, file in DAMAGED.items():
        storage.append_results(trial_id, [{**TEMPTING, "iteration": 9, "time_total_s": 1.0, "timestamp": 1.0}])
        _edit(trials / trial_id / "trial.json", metrics=dict(TEMPTING), iteration=9)
        if file == "results.jsonl":  # a line damaged before the last one
            lines = (trials / trial_id / file).read_text().splitlines(keepends=True)
            (trials / trial_id / file).write_text("".join(lines[:-1]) + "{not json\n" + lines[-1])
        elif file == "trial.json":
            _edit(trials / trial_id / file, start_time="yesterday")
        else:
            (trials / trial_id / file).write_text("{not json")
    return path


def _edit(path: Path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def expected(path: Path, scope: str) -> set[str]:
    """The trials on the brute-force front."""
    return {trial_id for trial_id, _ in brute_front(points(path, scope))}


def points(path: Path, scope: str) -> dict[tuple[str, int], tuple[float, ...]]:
    """The points the front is made of, signed to minimise, read from the files with plain
    json: (trial id, report) -> values."""
    points = {}
    for folder in sorted((path / "trials").iterdir()):
        if folder.name in DAMAGED:
            continue
        record = json.loads((folder / "trial.json").read_text())
        if record["status"] == "FAILED":
            continue
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
        for n, row in enumerate(rows if scope == "all" else [record["metrics"]]):
            value = tuple(SIGNS[m] * row[m] for m in METRICS)
            if all(math.isfinite(v) for v in value):
                points[(folder.name, n)] = value
    return points


@pytest.fixture(params=["last", "all"])
def experiment(request, tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    path = make(root, "mo", request.param)
    front = expected(path, request.param)
    assert front and not front & (set(DAMAGED) | {f"{i:05d}" for i in FAILED})
    if request.param == "last":
        assert not front & {f"{i:05d}" for i in NAN}  # their last loss is NaN
    return root, path, front


def test_results_and_dataframe_name_the_brute_force_front(experiment):
    _, path, front = experiment
    results = rt.load(path)
    assert {t.trial_id for t in results.trials if t.status.value == "DAMAGED"} == set(DAMAGED)
    members = [t.trial_id for t in results.pareto_front()]
    assert set(members) == front and len(members) == len(front)
    frame = results.dataframe()
    assert set(frame.loc[frame.pareto_front, "trial_id"]) == front


def cli_run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_the_cli_names_the_brute_force_front(experiment, capsys):
    root, path, front = experiment
    order = [t.trial_id for t in rt.load(path).pareto_front()]
    assert [entry["trial_id"] for entry in json.loads(cli_run(capsys, "best", path))] == order
    shown = [line.split() for line in cli_run(capsys, "show", path, "--limit", "0").splitlines()
             if re.match(r"\d{5} ", line)]
    assert [line[0] for line in shown if line[1] == "*"] == order
    assert {line[0] for line in shown if line[1] == "damaged"} == set(DAMAGED)  # listed, never ranked
    row = next(line for line in cli_run(capsys, "ls", root).splitlines() if line.startswith("mo "))
    assert f"front of {len(front)}" in row
    from raytuner.cli._experiments import _summary

    assert f"Pareto front of {len(front)} (trials {', '.join(order[:8])}" in _summary(rt.load(path))


def test_the_report_draws_the_brute_force_front_and_leaves_damaged_trials_out(experiment):
    pytest.importorskip("plotly")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import figure_specs

    _, path, front = experiment
    results = rt.load(path)
    data = _data.collect(results)
    assert {m.trial.trial_id for m in data.front} == front
    html = results.report().read_text()
    assert set(re.findall(r"<td>(\d{5}) \(front\)</td>", html)) == front
    traces = {trace["name"]: trace for trace in figure_specs(html)["front"]["data"]}
    drawn = set(zip(traces["Pareto front"]["x"], traces["Pareto front"]["y"]))
    assert drawn == {tuple(m.values[k] for k in METRICS) for m in data.front}
    others = traces["other trials"]["x"]
    assert TEMPTING["loss"] not in others and FAILED_BEST["loss"] in others  # DAMAGED trials are not drawn
    # The hypervolume over time ends at the brute-force front's (every report on it, under "all").
    _, volumes, z = _pareto_figures.hypervolume_series(data)
    signed_z = [SIGNS[m] * v for m, v in zip(METRICS, z)]
    every = points(path, results.scope)
    assert volumes[-1] == pytest.approx(hypervolume([every[k] for k in brute_front(every)], signed_z))


@pytest.fixture
def dashboard():
    sys.path.insert(0, str(Path(__file__).parent))
    from dashboard_setup import _APPS, client, close

    yield client
    while _APPS:
        close(_APPS.pop())


def test_the_dashboard_names_the_brute_force_front(experiment, dashboard):
    root, path, front = experiment
    order = [t.trial_id for t in rt.load(path).pareto_front()]
    c = dashboard(root)
    assert c.get("/api/e/mo").json()["front"] == {"size": len(front), "trial_ids": order}
    listing = {e["name"]: e for e in c.get("/api/experiments").json()["experiments"]}
    assert listing["mo"]["front"]["size"] == len(front)
    rows = c.get("/api/e/mo/trials", params={"sort": "front", "limit": 100}).json()["rows"]
    assert [r["trial_id"] for r in rows if r["front"] is not None] == order
    assert {r["trial_id"] for r in rows if r["status"] == "DAMAGED"} == set(DAMAGED)


def test_when_every_trial_failed_the_failed_front_counts_but_the_cli_refuses_it(tmp_path, capsys):
    path = write_mo_experiment(tmp_path, "failed", n=8, failed=range(8))
    for i in range(8):
        ExperimentStorage(path).append_error(f"{i:05d}", "Traceback (most recent call last):\nValueError: boom\n")
    points = {}
    for folder in (path / "trials").iterdir():
        record = json.loads((folder / "trial.json").read_text())
        points[folder.name] = tuple(SIGNS[m] * record["metrics"][m] for m in METRICS)
    assert {t.trial_id for t in rt.load(path).pareto_front()} == brute_front(points)
    assert cli.main(["best", str(path)]) != 0
    assert "No trial of 'failed' succeeded: 8 of 8 failed" in capsys.readouterr().err


NAMES = st.sampled_from(["loss", "score", "", "x", 0, None])
METRIC = st.none() | NAMES | st.lists(NAMES, max_size=4)
MODE = st.sampled_from(["min", "max", "maximize", None]) | st.lists(st.sampled_from(["min", "max", "up", 1]), max_size=4)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    make(root, "mo", "last")
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metric=METRIC, mode=MODE)
@example(metric=["loss", "x"], mode="min")  # no trial reported every objective
@example(metric=["loss"], mode="min")  # a list of one (the Tuner writes a string)
@example(metric=["loss", "score"], mode=["min"])  # a mode short
@example(metric="loss", mode=["min", "max"])
def test_any_metric_and_mode_in_experiment_json_breaks_no_view_of_the_front(fuzz_root, capsys, metric, mode):
    path = fuzz_root / "mo" / "experiment.json"
    saved = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(saved), "metric": metric, "mode": mode}))
        _views(fuzz_root, "mo", capsys)
        results = rt.load(fuzz_root / "mo")
        if set(results.objectives.metrics) == {"loss", "score"}:  # the front as ever, whatever else is damaged
            assert results.damaged is None or "field 'mode'" in results.damaged
            assert {t.trial_id for t in results.pareto_front()} and _data.collect(results).front
    finally:
        path.write_text(saved)


def test_a_front_members_metrics_are_the_report_that_put_it_on_the_front_in_every_view(tmp_path, capsys):
    """best_scope="all": trial 00000 is on the front by its first report (0.01, 15) and ended
    at NaN; pareto_front(), `raytuner best --full` and `show` give that report, not its last."""
    from raytuner._objectives import Objectives
    from raytuner._trial import Trial, TrialStatus

    storage = ExperimentStorage(tmp_path / "mo")
    storage.create()
    storage.write_experiment({"name": "mo", "metric": ["loss", "size"], "mode": ["min", "min"], "status": "COMPLETED",
                              "best_scope": "all", "searcher": "GridSearcher", "scheduler": "FIFOScheduler()"})
    objectives = Objectives.of(["loss", "size"], ["min", "min"])
    reports = {"00000": [(0.01, 15), (float("nan"), 15)], "00001": [(0.5, 10)], "00002": [(0.3, 20)]}
    for trial_id, points in reports.items():
        storage.write_config(trial_id, {"kind": trial_id})
        trial, rows = Trial(trial_id, {"kind": trial_id}), []
        for it, (loss, size) in enumerate(points, 1):
            trial.observe(it, it, {"loss": loss, "size": size}, objectives.signed({"loss": loss, "size": size}), 0.1)
            rows.append({"loss": loss, "size": size, "iteration": it, "time_total_s": 0.1, "timestamp": 0.0})
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus.COMPLETED
        storage.write_trial(trial_id, trial.to_record())
    front = {t.trial_id: t.metrics for t in rt.load(storage.path).pareto_front()}
    assert front == {"00000": {"loss": 0.01, "size": 15}, "00001": {"loss": 0.5, "size": 10}}
    assert cli.main(["best", "mo", "--root", str(tmp_path), "--full"]) == 0
    best = {entry["trial_id"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert best["00000"]["metrics"] == best["00000"]["objectives"] == {"loss": 0.01, "size": 15}
    assert cli.main(["show", "mo", "--root", str(tmp_path)]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("00000"))
    assert "0.01" in row and "nan" not in " ".join(row).lower()
