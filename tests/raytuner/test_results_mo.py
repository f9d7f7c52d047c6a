"""The result of a multi-objective experiment, read from its folder (no Ray): the Pareto
front by the experiment's best_scope (checked against a brute-force front), ``best``
pointing to it, every objective in dataframe() and history(), and the CLI's show, best
and ls."""

from __future__ import annotations

import json
import math

import pytest

import raytuner as rt
from raytuner import cli
from raytuner._objectives import Objectives
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import TrialStatus
from raytuner.errors import ConfigError, ExperimentError

from tests.raytuner.mo_experiment import brute_front, final_points, write_mo_experiment


def test_the_front_is_the_brute_force_non_dominated_set_of_last_values(tmp_path):
    path = write_mo_experiment(tmp_path, n=40)
    results = rt.load(path)
    front = results.pareto_front()
    assert {t.trial_id for t in front} == brute_front(final_points(path)) != set()
    assert len(front) == len({t.trial_id for t in front})
    # The Pareto order: the member adding the most hypervolume first (raytuner._pareto).
    from raytuner._pareto import pareto_order

    points = final_points(path)
    ids = [t.trial_id for t in front]
    assert ids == [ids_ for ids_ in (list(points)[i] for i in pareto_order(list(points.values())))][: len(ids)]


def test_scope_all_takes_every_report_and_lists_a_trial_once(tmp_path):
    path = write_mo_experiment(tmp_path, n=30, scope="all")
    results = rt.load(path)
    storage = ExperimentStorage(path)
    objectives = Objectives.of(["loss", "score"], ["min", "max"])
    every = {(t.trial_id, row["iteration"]): objectives.signed(row)
             for t in results.trials for row in storage.read_results(t.trial_id)}
    expected = {trial_id for trial_id, _ in brute_front(every)}
    assert {t.trial_id for t in results.pareto_front()} == expected
    members = results._front()
    assert all(every[(m.trial.trial_id, m.iteration)] == objectives.signed(m.values) for m in members)
    assert expected != {t.trial_id for t in rt.load(write_mo_experiment(tmp_path, "last", n=30)).pareto_front()}


def test_failed_nan_and_damaged_trials_never_count_while_others_have_values(tmp_path):
    path = write_mo_experiment(tmp_path, n=20, failed=range(0, 20, 2), nan=(1, 3))
    front = {t.trial_id for t in rt.load(path).pareto_front()}
    expected = brute_front(final_points(path))  # COMPLETED and STOPPED ones with finite values
    assert front == expected and not front & {"00001", "00003"}
    # every trial failed: the failed ones count
    all_failed = write_mo_experiment(tmp_path, "failed", n=6, failed=range(6))
    assert {t.trial_id for t in rt.load(all_failed).pareto_front()} == brute_front(final_points(all_failed, ["FAILED"]))
    # a DAMAGED trial (a reader's status) never counts
    from raytuner._best import pareto_front

    results = rt.load(path)
    damaged = [t if t.trial_id not in front else _with_status(t, "DAMAGED") for t in results.trials]
    assert not {m.trial.trial_id for m in pareto_front(damaged, results.objectives)} & front


def _with_status(trial, status):
    import dataclasses

    return dataclasses.replace(trial, status=type("S", (), {"value": status})())


def test_best_points_to_the_front_and_one_objective_can_still_be_asked_for(tmp_path):
    results = rt.load(write_mo_experiment(tmp_path))
    with pytest.raises(ConfigError, match=r"has 2 objectives \(metric=\['loss', 'score'\]\), so no one trial is best: "
                                          r"results.pareto_front\(\)"):
        results.best
    by_score = results.get_best(metric="score")  # its own mode, max
    assert by_score.metrics["score"] == max(t.metrics["score"] for t in results.trials if t.status != TrialStatus.FAILED)
    with pytest.raises(ConfigError, match=r"`mode` is None.*Pass mode='min' or mode='max' to rank by 'time_total_s'"):
        results.get_best(metric="time_total_s")
    single = rt.load(_single(tmp_path))
    with pytest.raises(ConfigError, match=r"pareto_front\(\) is for experiments with several"):
        single.pareto_front()


def _single(tmp_path):
    path = write_mo_experiment(tmp_path, "single")
    storage = ExperimentStorage(path)
    storage.write_experiment({**storage.read_experiment(), "metric": "loss", "mode": "min"})
    return path


def test_no_finite_values_is_an_error_naming_the_objectives(tmp_path):
    path = write_mo_experiment(tmp_path, n=2, nan=(0, 1))
    for trial_id in ("00000", "00001"):  # only their last report is NaN; make every one so
        storage = ExperimentStorage(path)
        record, _, _ = storage.read_trial(trial_id)
        storage.write_trial(trial_id, {**record, "metrics": {"loss": math.nan, "score": 1.0}})
    with pytest.raises(ExperimentError, match=r"No trial of 'mo' reported a finite value of every objective \(loss, score\)"):
        rt.load(path).pareto_front()


def test_dataframe_history_and_observations_carry_every_objective(tmp_path):
    path = write_mo_experiment(tmp_path)
    results = rt.load(path)
    frame = results.dataframe()
    assert {"loss", "score", "pareto_front"} <= set(frame.columns) and not any("best_" in c for c in frame.columns)
    assert set(frame.loc[frame.pareto_front, "trial_id"]) == {t.trial_id for t in results.pareto_front()}
    history = results.history("00003")
    assert list(history["iteration"]) == [1, 2, 3, 4] and {"loss", "score"} <= set(history.columns)
    config, outcome = results.observations()[0]
    trial = results.trials[0]
    assert outcome.value == (trial.metrics["loss"], -trial.metrics["score"])  # tuples, signed, as searchers take


# -- the CLI ---------------------------------------------------------------------------------------
def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_best_prints_the_front_as_a_json_list(tmp_path, capsys):
    path = write_mo_experiment(tmp_path)
    results = rt.load(path)
    code, out, err = run(capsys, "best", str(path))
    assert code == 0, err
    front = json.loads(out)
    assert [entry["trial_id"] for entry in front] == [t.trial_id for t in results.pareto_front()]
    first = results[front[0]["trial_id"]]
    assert front[0] == {"trial_id": first.trial_id, "config": first.config,
                        "objectives": {"loss": first.metrics["loss"], "score": first.metrics["score"]}}
    code, out, _ = run(capsys, "best", str(path), "--full")
    assert set(json.loads(out)[0]) == {"trial_id", "config", "objectives", "status", "metrics", "iteration"}
    code, out, _ = run(capsys, "best", str(path), "--metric", "score")  # one objective alone: one config
    assert json.loads(out) == results.get_best(metric="score").config


def test_cli_show_lists_the_front_first_and_marks_it(tmp_path, capsys):
    path = write_mo_experiment(tmp_path, failed=(5,))
    results = rt.load(path)
    code, out, err = run(capsys, "show", str(path), "--limit", "0")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines() if line.startswith("000")]
    front = [t.trial_id for t in results.pareto_front()]
    assert [line[0] for line in lines[: len(front)]] == front and all(line[1] == "*" for line in lines[: len(front)])
    assert not any(line[1] == "*" for line in lines[len(front):])
    assert "objectives loss (min), score (max)" in out and f"Pareto front (last reports): {len(front)} trials" in out


def test_cli_ls_names_every_objective_and_the_fronts_size(tmp_path, capsys):
    path = write_mo_experiment(tmp_path)
    code, out, _ = run(capsys, "ls", str(tmp_path))
    row = next(line for line in out.splitlines() if line.startswith("mo "))
    assert f"front of {len(rt.load(path).pareto_front())}" in row and "loss, score" in row


def test_the_summary_after_a_cli_resume_names_the_front(tmp_path):
    from raytuner.cli._experiments import _summary

    results = rt.load(write_mo_experiment(tmp_path))
    front = [t.trial_id for t in results.pareto_front()]
    assert f"Pareto front of {len(front)} (trials {', '.join(front)})" in _summary(results)


def test_records_of_several_objectives_are_checked_as_every_reader_checks_them(tmp_path):
    from raytuner._storage.records import experiment_fault, trial_fault

    assert experiment_fault({"name": "x", "metric": ["loss", "score"], "mode": ["min", "max"]}) is None
    assert experiment_fault({"name": "x", "metric": ["loss", "score"], "mode": "max"}) is None  # one for all
    assert "field 'mode' is [\"min\"], not one 'min' or 'max' per metric" in experiment_fault(
        {"name": "x", "metric": ["loss", "score"], "mode": ["min"]})
    assert "field 'mode' is [\"min\"], not one" in experiment_fault({"name": "x", "metric": "loss", "mode": ["min"]})
    for metric in (["loss"], ["loss", ""], ["loss", "loss"], []):  # the Tuner never writes these
        assert "not a name (or a list of two or more distinct names)" in experiment_fault(
            {"name": "x", "metric": metric, "mode": "min"})
    record = {"trial_id": "00001", "status": "COMPLETED"}
    assert trial_fault({**record, "last_value": [0.5, None]}, "00001") is None  # NaN is stored as null
    assert "field 'last_value' is [0.5, \"x\"], not a list of numbers" in trial_fault(
        {**record, "last_value": [0.5, "x"]}, "00001")
    path = write_mo_experiment(tmp_path, n=4)
    trial_json = path / "trials" / "00001" / "trial.json"
    trial_json.write_text(json.dumps({**json.loads(trial_json.read_text()), "last_value": ["a", 1]}))
    results = rt.load(path)
    assert results["00001"].status == TrialStatus.DAMAGED and "not a list of numbers" in results["00001"].damaged
    assert "00001" not in {t.trial_id for t in results.pareto_front()}
