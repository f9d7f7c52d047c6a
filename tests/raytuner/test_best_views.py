"""One definition of best, in every view: Results, ``raytuner best``/``show``/``ls``, the
HTML report and the dashboard name the same trial, in the experiment's stored
``best_scope``; a FAILED trial is never best while another has a value, and listings say
how many trials failed. Experiments are written straight into the storage layout (no Ray).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import cli
from raytuner._report import _data, _page
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner.dashboard._root import Root

#: Each trial's losses, report by report, and how it ended. In scope "last", 00001 is best
#: (its last, 0.3); in scope "all", 00000 (its best, 0.1, though it ended at 0.5). 00002
#: failed with the lowest loss of all, and is never best while another trial has a value.
CURVES = {"00000": ([0.9, 0.1, 0.5], "STOPPED"), "00001": ([0.8, 0.4, 0.3], "COMPLETED"),
          "00002": ([0.05, 0.01], "FAILED"), "00003": ([0.7, 0.6, 0.55], "COMPLETED")}


def write(root: Path, name: str, curves: dict, scope: str | None, status: str = "COMPLETED") -> Path:
    storage = ExperimentStorage(root / name)
    storage.create()
    meta = {"name": name, "metric": "loss", "mode": "min", "status": status, "searcher": "RandomSearcher",
            "scheduler": "FIFOScheduler()", "start_time": time.time() - 10, "end_time": time.time()}
    if scope is not None:
        meta["best_scope"] = scope
    storage.write_experiment(meta)
    for trial_id, (losses, end) in curves.items():
        config = {"x": int(trial_id)}
        storage.write_config(trial_id, config)
        trial = Trial(trial_id, config)
        rows = []
        for it, loss in enumerate(losses, 1):
            trial.observe(it, it, {"loss": loss}, loss, 0.1 * it)
            rows.append({"loss": loss, "iteration": it, "time_total_s": 0.1 * it, "timestamp": 0.0, "attempt": 1})
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus(end)
        if end == "FAILED":
            trial.error = "Traceback (most recent call last):\n  File \"train.py\", line 3, in train\nKeyError: 'lr'\n"
            storage.append_error(trial_id, trial.error)
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def views(root: Path, name: str, capsys) -> dict[str, str]:
    """The best trial's id as each view names it."""
    found = {"Results": rt.load(root / name).best.trial_id}
    assert cli.main(["best", name, "--root", str(root), "--full"]) == 0
    found["best"] = json.loads(capsys.readouterr().out)["trial_id"]
    assert cli.main(["show", name, "--root", str(root), "--limit", "0"]) == 0
    found["show"] = next(line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("000"))
    header = _page._header(_data.collect(rt.load(root / name)))
    found["report"] = header.split("<th>best</th><td>trial ")[1][:5]
    found["dashboard"] = Root(root).experiment(name).summary()["best"]["trial_id"]
    return found


@pytest.mark.parametrize("scope, expected, value", [("last", "00001", "0.3"), ("all", "00000", "0.1"),
                                                     (None, "00001", "0.3")])
def test_every_view_names_the_same_best_trial_in_the_stored_scope(tmp_path, capsys, scope, expected, value):
    write(tmp_path, "exp", CURVES, scope)
    assert views(tmp_path, "exp", capsys) == dict.fromkeys(["Results", "best", "show", "report", "dashboard"], expected)
    assert cli.main(["ls", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("exp "))
    assert f" {value} " in row
    assert Root(tmp_path).experiment("exp").summary()["best"]["value"] == float(value)


def test_show_ranks_by_the_scope_and_says_so(tmp_path, capsys):
    write(tmp_path, "exp", CURVES, "all")
    cli.main(["show", "exp", "--root", str(tmp_path), "--limit", "0"])
    out = capsys.readouterr().out
    assert "ranked by each trial's best report" in out and "best loss" in out
    order = [line.split()[0] for line in out.splitlines() if line.startswith("000")]
    assert order == ["00000", "00001", "00003", "00002"]  # the failed trial last, its lower loss aside


def test_listings_say_how_many_trials_failed(tmp_path, capsys):
    curves = {f"{i:05d}": ([0.1 * i + 0.05], "FAILED") if i < 11 else ([1.0 + i, 0.5 + i], "STOPPED")
              for i in range(20)}
    write(tmp_path, "asha", curves, None)
    assert rt.load(tmp_path / "asha").best.trial_id == "00011"  # the failed ones reported lower losses
    cli.main(["ls", str(tmp_path)])
    assert "COMPLETED, 11 of 20 failed" in capsys.readouterr().out
    cli.main(["show", "asha", "--root", str(tmp_path)])
    assert "COMPLETED, 11 of 20 failed" in capsys.readouterr().out
    assert views(tmp_path, "asha", capsys) == dict.fromkeys(["Results", "best", "show", "report", "dashboard"], "00011")


def test_best_of_an_experiment_whose_every_trial_failed_exits_non_zero_with_the_reason(tmp_path, capsys):
    write(tmp_path, "broken", {"00000": ([0.4], "FAILED"), "00001": ([0.2, 0.1], "FAILED")}, None, status="FAILED")
    code = cli.main(["best", "broken", "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "No trial of 'broken' succeeded: 2 of 2 failed" in err and "KeyError: 'lr'" in err
    cli.main(["ls", str(tmp_path)])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("broken "))
    assert "FAILED, 2 of 2 failed" in row and " 0.1 " not in row  # a failed trial's value is no result
    # The Python API still returns the least bad failed trial, as documented.
    assert rt.load(tmp_path / "broken").best.trial_id == "00001"


def test_best_refuses_a_failed_trial_when_the_others_never_reported_the_metric(tmp_path, capsys):
    write(tmp_path, "odd", {"00000": ([0.4], "FAILED"), "00001": ([], "COMPLETED")}, None)
    code = cli.main(["best", "odd", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "the best value comes from trial 00000, which FAILED" in err


def test_ls_never_lists_a_trial_damaged_before_its_last_line_as_best(tmp_path, capsys):
    """The listing reads trial.json only, except for the trial it would call best: that one's
    history is read too, and one damaged mid-file is DAMAGED there as in every other view."""
    write(tmp_path, "exp", CURVES, "last")
    results = tmp_path / "exp" / "trials" / "00001" / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text(lines[0] + '{"loss": 0.7, "iter\n' + "".join(lines[1:]))  # a line cut short, mid-file
    assert views(tmp_path, "exp", capsys) == dict.fromkeys(["Results", "best", "show", "report", "dashboard"], "00000")
    assert cli.main(["ls", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("exp "))
    assert " 0.5 " in row and " 0.3 " not in row  # 00000's last report; not the damaged 00001's
    assert "damaged: exp, trial 00001" in out


@pytest.mark.parametrize("scope, values", [("all", {"00000": 0.1, "00001": 0.3, "00002": 0.01, "00003": 0.55}),
                                           ("last", {"00000": 0.5, "00001": 0.3, "00002": 0.01, "00003": 0.55})])
def test_the_dashboards_table_shows_and_sorts_each_trial_by_the_scopes_value(tmp_path, scope, values):
    write(tmp_path, "exp", CURVES, scope)
    rows = Root(tmp_path).experiment("exp").table(sort="value")["rows"]
    assert {r["trial_id"]: r["value"] for r in rows} == values
    assert [r["trial_id"] for r in rows] == sorted(values, key=values.get)


@pytest.mark.parametrize("scope, curve", [("last", [("00000", 0.5), ("00001", 0.3), ("00003", 0.3)]),
                                          ("all", [("00000", 0.1), ("00001", 0.1), ("00003", 0.1)])])
def test_the_reports_best_so_far_follows_the_scope_and_leaves_failed_trials_out(tmp_path, scope, curve):
    from raytuner._report._figures import history

    results = rt.load(write(tmp_path, "exp", CURVES, scope))
    data = _data.collect(results)
    assert _data.best_so_far(data) == curve  # 00002 failed at 0.01: never the best so far
    trace = next(t for t in history(data).figure.data if t.name == "best so far")
    assert list(trace.x) == [trial_id for trial_id, _ in curve] and list(trace.y) == [value for _, value in curve]
    assert curve[-1][1] == CURVES[results.best.trial_id][0][-1 if scope == "last" else 1]  # the headline's value


@pytest.mark.parametrize("scope, dots, words", [
    ("last", {"00000": 0.5, "00001": 0.3, "00002": 0.01, "00003": 0.55}, "Each trial's last loss"),
    ("all", {"00000": 0.1, "00001": 0.3, "00002": 0.01, "00003": 0.55}, "Each trial's best report's loss")])
def test_the_history_figures_dots_are_the_values_the_scope_ranks_by(tmp_path, scope, dots, words):
    from raytuner._report._figures import history

    figure = history(_data.collect(rt.load(write(tmp_path, "exp", CURVES, scope))))
    drawn = {x: y for trace in figure.figure.data if trace.mode == "markers" for x, y in zip(trace.x, trace.y)}
    assert drawn == dots  # under "all", 00000 at its best 0.1: the best so far (0.1) is on a dot, not below them
    assert figure.caption.startswith(words)


@pytest.mark.parametrize("scope", ["last", "all"])
def test_the_reports_trial_table_shows_the_value_it_ranks_by(tmp_path, scope):
    import re

    html = _page._table(_data.collect(rt.load(write(tmp_path, "exp", CURVES, scope))))
    head = re.findall(r"<th>(.*?)</th>", html)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(<td.*?)</tr>", html)]
    order = [row[0] for row in rows]
    if scope == "last":  # ranked by each trial's last loss, which the loss column holds
        assert head[4] == "loss" and order == ["00001", "00000", "00003", "00002"]
        assert [row[4] for row in rows] == ["0.3", "0.5", "0.55", "0.01"]
    else:  # ranked by each trial's best loss, shown ahead of the last one (00000: best 0.1, ended at 0.5)
        assert head[4:6] == ["best loss", "loss"] and order == ["00000", "00001", "00003", "00002"]
        assert [row[4] for row in rows] == ["0.1", "0.3", "0.55", "0.01"]
        assert [row[5] for row in rows] == ["0.5", "0.3", "0.55", "0.01"]
