"""Damaged files mark their experiment or trial DAMAGED in every view, naming the file and
the fault; the rest stay readable (rt.load, the CLI, the report, the dashboard, resume).

The experiments are written straight into the storage layout (no Ray). The last tests fuzz
every field of experiment.json, trial.json and config.json with random JSON (hypothesis):
no view crashes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import raytuner as rt
from raytuner import cli
from raytuner._driver.resume import _restore_trials
from raytuner._objectives import Objectives
from raytuner._report import _data, _page
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.records import config_fault, experiment_fault, trial_fault
from raytuner._trial import TrialStatus
from raytuner.errors import ConfigError, ExperimentError

_spec = importlib.util.spec_from_file_location("_report_tests", Path(__file__).with_name("test_report.py"))
_report_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_report_tests)  # shares write_experiment; tests run only where collected
write_experiment = _report_tests.write_experiment


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def edit_json(path: Path, **fields) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("fields, fault", [
    ({"status": 5}, "field 'status' is '5', not one of PENDING"),
    ({"status": "DAMAGED"}, "field 'status' is 'DAMAGED', not one of"),
    ({"start_time": "yesterday"}, "field 'start_time' is a str, not a int or float or null: \"yesterday\""),
    ({"metrics": [1, 2]}, "field 'metrics' is a list, not a dict"),
    ({"iteration": True}, "field 'iteration' is a bool"),
    ({"checkpoint": "../../../etc"}, "not a checkpoint folder's name"),
])
def test_a_trial_record_with_a_wrong_field_is_named(fields, fault):
    record = {"trial_id": "00001", "status": "COMPLETED", "iteration": 3, **fields}
    assert fault in trial_fault(record, "00001")
    assert trial_fault({"trial_id": "00001", "status": "COMPLETED"}, "00001") is None
    assert "not its folder's name" in trial_fault({"trial_id": "00002", "status": "RUNNING"}, "00001")


def test_an_experiment_record_with_a_wrong_field_is_named():
    assert "field 'status' is a int, not a str" in experiment_fault({"name": "x", "status": 5})
    assert "field 'start_time' is a str" in experiment_fault({"name": "x", "start_time": "yesterday"})
    assert "not 'last' or 'all'" in experiment_fault({"name": "x", "best_scope": "first"})
    assert "no 'name'" in experiment_fault({"status": "RUNNING"})
    assert experiment_fault({"name": "x", "metric": ["loss", "acc"], "mode": ["min", "max"]}) is None  # several objectives
    assert config_fault([1]) == "it holds a list, not an object"


@pytest.fixture
def damaged_root(tmp_path):
    """Three experiments: one fine, one whose experiment.json has a field of the wrong type,
    and one with four damaged trials (trial.json, config.json, a line of results.jsonl)."""
    write_experiment(tmp_path, "fine", n=6)
    edit_json(write_experiment(tmp_path, "bad_meta", n=3) / "experiment.json", start_time="yesterday")
    exp = write_experiment(tmp_path, "bad_trials", n=9)
    edit_json(exp / "trials/00001/trial.json", status=5)
    (exp / "trials/00002/config.json").write_text("{not json")
    edit_json(exp / "trials/00003/trial.json", start_time="yesterday")
    results = exp / "trials/00005/results.jsonl"
    lines = results.read_text().splitlines()
    lines[1] = lines[1][:20]  # a line damaged before the end of the file
    results.write_text("\n".join(lines) + "\n")
    return tmp_path


def test_load_marks_each_damaged_trial_and_reads_the_rest(damaged_root):
    results = rt.load(damaged_root / "bad_trials")
    damaged = {t.trial_id: t.damaged for t in results.trials if t.status == TrialStatus.DAMAGED}
    assert set(damaged) == {"00001", "00002", "00003", "00005"}
    assert damaged["00001"].endswith("trial.json: field 'status' is '5', not one of PENDING, RUNNING, PAUSED, "
                                     "COMPLETED, STOPPED, FAILED")
    assert "trials/00002/config.json: not valid JSON" in damaged["00002"]
    assert "trials/00003/trial.json: field 'start_time' is a str" in damaged["00003"]
    assert "trials/00005/results.jsonl, line 2: not valid JSON" in damaged["00005"]
    # Nothing computed is lost: what the damaged files still say is shown.
    assert results["00005"].config == json.loads((damaged_root / "bad_trials/trials/00005/config.json").read_text())
    assert results["00005"].metrics["loss"] > 0
    assert len(results.trials) == 9 and results.status == "COMPLETED" and results.damaged is None
    assert results.best.status != TrialStatus.DAMAGED  # never best: its files cannot be trusted
    with pytest.raises(ExperimentError, match=r"results.jsonl, line 2: not valid JSON.*Repair or delete that line"):
        results.history("00005")
    assert len(results.history("00004")) > 0
    frame = results.dataframe()
    assert list(frame[frame.trial_id == "00001"].status) == ["DAMAGED"]


def test_load_of_a_damaged_experiment_json_shows_it_damaged_with_its_trials(damaged_root):
    results = rt.load(damaged_root / "bad_meta")
    assert results.status == "DAMAGED"
    assert results.damaged.endswith("bad_meta/experiment.json: field 'start_time' is a str, not a int or float or "
                                    "null: \"yesterday\"")
    assert "start_time" not in results.meta and results.metric == "loss"  # the usable fields stay
    assert len(results.trials) == 3 and results.best.metrics["loss"] > 0
    (damaged_root / "bad_meta/experiment.json").write_text('{"name": "bad_meta", "status": ')
    results = rt.load(damaged_root / "bad_meta")
    assert results.status == "DAMAGED" and "experiment.json: not valid JSON" in results.damaged
    assert len(results.trials) == 3


def test_ls_shows_a_damaged_experiment_and_lists_the_rest(damaged_root, capsys):
    code, out, err = run(capsys, "ls", damaged_root, "--wide")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in
            ("fine", "bad_meta", "bad_trials")}
    assert set(rows) == {"fine", "bad_meta", "bad_trials"}
    assert "DAMAGED" in rows["bad_meta"] and "COMPLETED" in rows["fine"]
    assert "COMPLETED, 3 of 9 damaged" in rows["bad_trials"]  # trial.json and config.json: ls reads no results
    assert "damaged: bad_meta: " in out and "experiment.json: field 'start_time' is a str" in out
    assert "damaged: bad_trials, trial 00001: " in out and "field 'status' is '5'" in out


def test_show_best_export_and_report_name_the_damage_and_go_on(damaged_root, capsys, tmp_path):
    code, out, err = run(capsys, "show", "bad_trials", "--root", damaged_root, "--limit", "0")
    assert code == 0, err
    assert "COMPLETED, 4 of 9 damaged" in out
    assert "damaged trials (4), left out of the ranking:" in out and "results.jsonl, line 2: not valid JSON" in out
    code, out, err = run(capsys, "best", "bad_trials", "--root", damaged_root, "--full")
    assert code == 0 and json.loads(out)["status"] != "DAMAGED"
    code, out, err = run(capsys, "export", "bad_trials", "--root", damaged_root, "--csv")
    assert code == 0 and out.count("DAMAGED") == 4 and "trial.json: field 'status' is '5'" in out
    code, out, err = run(capsys, "export", "bad_trials", "--root", damaged_root, "--csv", "--history")
    assert code != 0 and "results.jsonl, line 2: not valid JSON" in err  # no history of it can be trusted
    code, out, err = run(capsys, "show", "bad_meta", "--root", damaged_root)
    assert code == 0 and "DAMAGED" in out and "experiment.json is damaged:" in out
    report = tmp_path / "r.html"
    code, out, err = run(capsys, "report", "bad_trials", "--root", damaged_root, "-o", report)
    assert code == 0, err
    assert "trial 00005: " in report.read_text() and "(left out of the figures)" in report.read_text()



def test_an_experiment_json_damaged_past_its_metric_is_named_and_its_logs_still_read(damaged_root, capsys):
    """Before: `show` and `best` said the experiment had no metric, rt.load().best to pass one
    to the Tuner, and `logs` refused the trial's log as an experiment that cannot be run on."""
    (damaged_root / "bad_meta/experiment.json").write_text('{"name": "bad_meta", "metric": ')
    (damaged_root / "bad_meta/trials/00001/log.txt").write_text("step 1\n")
    for command in ("show", "best"):
        code, out, err = run(capsys, command, "bad_meta", "--root", damaged_root)
        assert code != 0 and "bad_meta/experiment.json: not valid JSON" in err and "--metric NAME" in err, err
    code, out, err = run(capsys, "best", "bad_meta", "--root", damaged_root, "--metric", "loss")
    assert code == 0, err
    with pytest.raises(ConfigError, match=r"experiment.json: not valid JSON .* Pass metric= \(and mode=\) to get_best"):
        rt.load(damaged_root / "bad_meta").best
    assert rt.load(damaged_root / "bad_meta").get_best(metric="loss", mode="min").metrics["loss"] > 0
    code, out, err = run(capsys, "logs", "bad_meta", "00001", "--root", damaged_root)
    assert code == 0 and out == "step 1\n", err

def test_resume_refuses_an_experiment_with_a_damaged_trial_naming_file_and_fault(damaged_root):
    storage = ExperimentStorage(damaged_root / "bad_trials")
    before = {p: p.read_bytes() for p in storage.path.rglob("*") if p.is_file()}
    with pytest.raises(ExperimentError, match=r"00001/trial.json: field 'status' is '5'.*cannot be resumed "
                                              r"\(nothing was changed\)"):
        _restore_trials(storage, Objectives.of("loss", "min"))
    (storage.path / "trials/00001").rename(storage.path / "dropped_00001")
    with pytest.raises(ExperimentError, match=r"00002/config.json: not valid JSON"):
        _restore_trials(storage, Objectives.of("loss", "min"))
    after = {p: p.read_bytes() for p in storage.path.rglob("*") if p.is_file()}
    assert after == {p: data for p, data in before.items() if "00001" not in str(p)} | {
        p: data for p, data in after.items() if "dropped_00001" in str(p)}
    with pytest.raises(ExperimentError, match="experiment.json: field 'start_time' is a str"):
        ExperimentStorage(damaged_root / "bad_meta").read_experiment()


# -- fuzzing the readers --------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
EXPERIMENT_FIELDS = ["name", "status", "metric", "mode", "best_scope", "start_time", "end_time", "created", "searcher",
                     "scheduler", "scheduler_config", "milestones", "space", "max_concurrent", "num_trials",
                     "time_budget_s", "max_resource", "resources"]
TRIAL_FIELDS = ["trial_id", "status", "iteration", "resource", "metrics", "last_value", "best_value",
                "best_iteration", "time_total_s", "start_time", "end_time", "checkpoint", "checkpoint_iteration",
                "num_failures", "note", "attempt", "fed_resource"]


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _views(root: Path, name: str, capsys) -> None:
    """Every view of the experiment: each may refuse it with a clear message, none may crash."""
    from raytuner.dashboard._root import Root

    try:
        results = rt.load(root / name)
    except ExperimentError:
        pass
    else:
        repr(results), results.status, results.dataframe()
        try:
            data = _data.collect(results)
        except ExperimentError:
            pass  # nothing to plot: said as a message
        else:
            _page._header(data), _page._table(data)  # the report's best and its ranking
    for argv in (["ls", root], ["show", name, "--root", root], ["best", name, "--root", root],
                 ["export", name, "--root", root, "--json"]):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert code in (0, 1, 3), (argv, code, err)
        assert "Traceback" not in err, err
    view = Root(root).experiment(name)
    view.summary(), view.table(sort="value"), view.table(status="DAMAGED")
    for trial_id in ("00000", "00001"):
        view.trial(trial_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(EXPERIMENT_FIELDS), value=JSON)
def test_any_value_in_any_field_of_experiment_json_breaks_no_view(fuzz_root, capsys, field, value):
    exp = fuzz_root / "e"
    if not exp.exists():
        write_experiment(fuzz_root, "e", n=3)
        write_experiment(fuzz_root, "other", n=2)
    meta = json.loads((exp / "experiment.json").read_text())
    path = exp / "experiment.json"
    saved = path.read_text()
    try:
        path.write_text(json.dumps({**meta, field: value}))
        _views(fuzz_root, "e", capsys)
    finally:
        path.write_text(saved)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from(["trial.json", "config.json"]), field=st.sampled_from(TRIAL_FIELDS + ["lr"]), value=JSON)
def test_any_value_in_any_field_of_a_trial_breaks_no_view(fuzz_root, capsys, file, field, value):
    exp = fuzz_root / "t"
    if not exp.exists():
        write_experiment(fuzz_root, "t", n=3)
    path = exp / "trials/00001" / file
    saved = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(saved), field: value}))
        _views(fuzz_root, "t", capsys)
        results = rt.load(exp)
        fault = (trial_fault if file == "trial.json" else lambda r, _: config_fault(r))(
            json.loads(path.read_text()), "00001")
        assert (results["00001"].status == TrialStatus.DAMAGED) == (fault is not None)
    finally:
        path.write_text(saved)


def test_the_dashboard_shows_the_same_damaged_trials(damaged_root):
    from raytuner._formats import flatten
    from raytuner.dashboard._root import Root

    view = Root(damaged_root).experiment("bad_trials")
    rows = {row["trial_id"]: row for row in view.table(limit=100)["rows"]}
    assert {t for t, row in rows.items() if row["status"] == "DAMAGED"} == {"00001", "00002", "00003", "00005"}
    assert "results.jsonl: line 2 is not valid JSON" in rows["00005"]["note"]
    assert Root(damaged_root).experiment("bad_meta").summary()["status"] == "DAMAGED"
    # A damaged trial's config, where its config.json is sound, as rt.load and the CLI show it.
    loaded = {t.trial_id: t.config for t in rt.load(damaged_root / "bad_trials").trials}
    for trial_id in ("00001", "00003", "00005"):
        assert rows[trial_id]["config"] == flatten(loaded[trial_id]) != {}, trial_id
        assert view.trial(trial_id)["config"] == loaded[trial_id], trial_id
    assert rows["00002"]["config"] == {}  # its config.json is the damage


def test_a_checkpoint_folder_that_is_gone_is_no_checkpoint(tmp_path):
    from raytuner._trial import Trial, TrialResult

    trial = Trial("00000", {}, status=TrialStatus.COMPLETED, checkpoint="checkpoint_000003")
    (tmp_path / "checkpoint_000003").mkdir()
    assert TrialResult.from_trial(trial, tmp_path, tmp_path).checkpoint == tmp_path / "checkpoint_000003"
    (tmp_path / "checkpoint_000003").rmdir()  # deleted by hand, during the run or after it
    assert TrialResult.from_trial(trial, tmp_path, tmp_path).checkpoint is None
    # Not looked for while its writes may still be queued (a callback's view, mid-run).
    assert TrialResult.from_trial(trial, tmp_path).checkpoint == tmp_path / "checkpoint_000003"
