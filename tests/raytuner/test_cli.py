"""The ``raytuner`` command line, on experiments written into the storage layout (no Ray)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from raytuner import cli
from raytuner._storage.experiment import ExperimentStorage

_spec = importlib.util.spec_from_file_location("_report_tests", Path(__file__).with_name("test_report.py"))
_report_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_report_tests)  # shares write_experiment; tests run only where collected
write_experiment = _report_tests.write_experiment
EVIL = _report_tests.EVIL


@pytest.fixture
def root(tmp_path):
    write_experiment(tmp_path, "exp", evil=True)
    write_experiment(tmp_path, "older", n=3, status="INTERRUPTED")
    return tmp_path


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_experiments_with_status_counts_and_best(root, capsys):
    (root / "not_an_experiment").mkdir()
    code, out, err = run(capsys, "ls", str(root))
    assert code == 0, err
    assert "exp" in out and "older" in out and "not_an_experiment" not in out
    exp_row = next(line for line in out.splitlines() if line.startswith("exp "))
    assert "12 (8 stopped)" in exp_row and "INTERRUPTED" in out  # the total, and all but completed
    from raytuner import load

    assert f"{load(root / 'exp').best.metrics['loss']:.5g}" in exp_row
    # --root, as every other command takes it (it was an unrecognised argument); two roots are refused.
    assert run(capsys, "ls", "--root", str(root))[1] == out
    code, _, err = run(capsys, "ls", str(root), "--root", str(root / "not_an_experiment"))
    assert code == 2 and "Two storage roots" in err


def test_show_sorts_by_metric_and_escapes_markup(root, capsys):
    code, out, err = run(capsys, "show", "exp", "--root", str(root), "--limit", "0")
    assert code == 0, err
    ids = [line.split()[0] for line in out.splitlines() if line.startswith("000")]
    from raytuner import load

    results = load(root / "exp")
    expected = sorted(results.trials, key=lambda t: t.metrics["loss"])
    assert ids == [t.trial_id for t in expected]
    assert "<script>" in out  # rich markup in user data is shown, not interpreted


def test_show_gives_the_run_time_without_the_time_between_runs(root, capsys):
    _report_tests.resumed_a_day_later(root / "exp")
    code, out, err = run(capsys, "show", "exp", "--root", str(root), "--limit", "0")
    assert code == 0 and "; ran 42.5 s" in out, err


def test_best_prints_json_for_scripts(root, capsys):
    code, out, _ = run(capsys, "best", str(root / "exp"))
    assert code == 0
    from raytuner import load

    assert json.loads(out) == load(root / "exp").best.config
    code, out, _ = run(capsys, "best", str(root / "exp"), "--metric", "acc", "--mode", "max", "--full")
    assert code == 0 and set(json.loads(out)) == {"trial_id", "status", "config", "metrics"}


def test_export_csv_json_and_history(root, capsys, tmp_path):
    code, out, _ = run(capsys, "export", str(root / "exp"), "--csv")
    assert code == 0
    frame = pd.read_csv(pd.io.common.StringIO(out))
    assert len(frame) == 12 and {"trial_id", "status", "loss", "config/lr"} <= set(frame.columns)
    target = tmp_path / "h.json"
    code, _, _ = run(capsys, "export", str(root / "exp"), "--json", "--history", "-o", str(target))
    rows = json.loads(target.read_text())
    assert code == 0 and len(rows) == 4 * (1 + 3 + 9) and {"trial_id", "loss", "iteration"} <= set(rows[0])


def test_export_without_a_format_writes_csv(root, capsys):
    code, out, _ = run(capsys, "export", str(root / "exp"))
    assert code == 0 and len(pd.read_csv(pd.io.common.StringIO(out))) == 12


def test_report_writes_the_file(root, capsys, tmp_path):
    pytest.importorskip("plotly")
    code, out, _ = run(capsys, "report", str(root / "older"), "-o", str(tmp_path / "r.html"))
    assert code == 0 and out.strip() == str(tmp_path / "r.html") and (tmp_path / "r.html").stat().st_size > 1e6


@pytest.mark.parametrize(("target", "options", "why"), [
    ("experiment.json", [], "one of its own files"),
    ("trials/00000/results.jsonl", ["--history"], "a file in its trials/ folder"),
    ("trials.csv", ["--csv"], "one of its own files"),  # not even a new name: the report's rule, no page
])
def test_export_refuses_to_write_over_the_experiments_own_files(root, capsys, target, options, why):
    exp = root / "exp"
    before = {p: p.read_bytes() for p in sorted(exp.rglob("*")) if p.is_file()}
    code, out, err = run(capsys, "export", str(exp), *options, "-o", str(exp / target))
    err = " ".join(err.split())  # rich folds long lines
    assert code == 2 and f"export: `-o` is {str(exp / target)!r}" in err and why in err, err
    assert f"Pass e.g. '{root / 'exp_'}" in err and out == ""
    assert {p: p.read_bytes() for p in sorted(exp.rglob("*")) if p.is_file()} == before
    from raytuner import load

    assert load(exp).damaged is None and len(load(exp).trials) == 12


def test_rename_moves_folder_and_name(root, capsys):
    code, out, _ = run(capsys, "rename", str(root / "older"), "newer")
    assert code == 0 and not (root / "older").exists()
    assert ExperimentStorage(root / "newer").read_experiment()["name"] == "newer"
    code, _, err = run(capsys, "rename", str(root / "newer"), "exp")  # taken
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "rename", str(root / "newer"), "../escape")
    assert code == 2 and "not a valid experiment name" in err


def test_rename_takes_an_experiment_whose_driver_died_and_refuses_one_a_driver_runs(tmp_path, capsys):
    from raytuner._storage.lock import DriverLock

    write_experiment(tmp_path, "live", n=1, status="RUNNING")
    with DriverLock(tmp_path / "live").acquire():
        code, _, err = run(capsys, "rename", str(tmp_path / "live"), "x", "--force")
        assert code == 1 and "is being run by a live driver" in err and (tmp_path / "live").is_dir()
    # Marked RUNNING, its driver gone (a crash: `raytuner ls` says INTERRUPTED): renamed as it is.
    assert run(capsys, "rename", str(tmp_path / "live"), "x")[0] == 0
    assert ExperimentStorage(tmp_path / "x").read_experiment()["name"] == "x"


def test_resume_of_a_folder_not_written_by_fit_says_why(root, capsys):
    code, _, err = run(capsys, "resume", "exp", "--root", str(root))
    assert code == 1 and "no usable tuner.pkl" in err and "Traceback" not in err


@pytest.mark.parametrize(("option", "value", "field"), [("--num-trials", "0", "num_trials"),
                                                         ("--time-budget", "-1", "time_budget_s")])
def test_resume_with_a_limit_out_of_bounds_is_a_usage_error_before_anything_is_read(option, value, field, capsys):
    code, _, err = run(capsys, "resume", "/no/such", option, value)  # exit 1 (and the path's error) before
    assert code == 2 and f"raytuner resume: `{field}` is" in err and "No experiment" not in err


@pytest.mark.parametrize("argv", [["show", "/no/such/exp"], ["best", "/no/such/exp"], ["export", "/no/such", "--csv"],
                                  ["report", "/no/such"], ["resume", "/no/such"], ["rename", "/no/such", "x"]])
def test_unknown_path_is_a_clear_error(argv, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 3 and "No experiment at" in err and "Traceback" not in err + out


@pytest.mark.parametrize("argv", [["show"], ["best"], ["report"], ["export"], ["logs", "00000"], ["rename", "x"],
                                  ["resume"], ["control", "--end"]])
def test_a_name_not_under_root_names_where_it_was_looked_for(root, argv, capsys, monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = run(capsys, argv[0], "exq", *argv[1:], "--root", str(root))
    err = " ".join(err.split())  # rich folds long lines
    assert code == 3 and "Traceback" not in err + out, err
    assert err.startswith(f"error: No experiment at {root / 'exq'} (EXP under --root {root}), "
                          f"nor at {elsewhere / 'exq'} (EXP from the current folder)"), err
    assert "Did you mean 'exp'?" in err and f"`raytuner ls {root}`" in err
    code, _, err = run(capsys, argv[0], "sub/exq", *argv[1:], "--root", str(root))  # a path: from here first
    err = " ".join(err.split())
    assert code == 3 and f"No experiment at {elsewhere / 'sub' / 'exq'} (EXP from the current folder)" in err, err


def test_ls_of_missing_root(capsys, tmp_path):
    code, _, err = run(capsys, "ls", str(tmp_path / "nothing"))
    assert code == 3 and "No folder" in err


def test_empty_experiment_and_unreported_metric(tmp_path, capsys):
    storage = ExperimentStorage(tmp_path / "empty")
    storage.create()
    storage.write_experiment({"name": "empty", "metric": "loss", "mode": "min"})
    for command in ("show", "best", "report", "export"):
        extra = ["--csv"] if command == "export" else []
        code, _, err = run(capsys, command, str(storage.path), *extra)
        assert code == 1 and "has no trials yet" in err, command
    write_experiment(tmp_path, "exp", n=2)
    for command in ("show", "best", "report"):
        code, _, err = run(capsys, command, str(tmp_path / "exp"), "--metric", "val_acc")
        assert code == 1 and "reported a finite 'val_acc'" in err and "acc" in err and "loss" in err, command


def test_usage_errors_and_help(capsys):
    assert run(capsys, "export", "x", "--csv", "--json")[0] == 2  # one format
    assert run(capsys, "frobnicate")[0] == 2
    for command in ("ls", "show", "best", "report", "resume", "rename", "export"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "usage: raytuner" in out


def test_console_entry_point_runs_as_a_module(tmp_path):
    done = subprocess.run([sys.executable, "-m", "raytuner.cli", "show", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "No experiment at" in done.stderr and "Traceback" not in done.stderr


# -- fitting a terminal (issue 15) -------------------------------------------------------
LONG = "a_very_long_experiment_name_for_a_sweep_of_resnets_20261128-0320"
KERAS = "keras_digits_20261128-032042"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/site/raytuner/_worker/actor.py", line 214, in run\n    self._fn(dict(self.spec.config))\n'
    '  File "/home/u/train.py", line 12, in train\n    lr = config["learning_rate"]\n'
    "KeyError: 'learning_rate'\n"
)


def _keras_like(root, name, failed=(3,), n=12):
    """Trials shaped like the README's Keras sweep: five tuned values, one constant."""
    import random

    from raytuner._trial import Trial, TrialStatus

    storage = ExperimentStorage(root / name)
    storage.create()
    storage.write_experiment({"name": name, "metric": "val_loss", "mode": "min", "status": "COMPLETED",
                              "searcher": "HyperOptSearcher", "start_time": 1.7e9,
                              "scheduler": "ASHAScheduler(max_resource=27, reduction_factor=3)"})
    rng = random.Random(0)
    for i in range(n):
        trial_id = f"{i:05d}"
        config = {"lr": 10 ** rng.uniform(-4, -1.5), "units": rng.choice([32, 64, 128, 256]),
                  "dropout": rng.random() / 2, "batch_size": rng.choice([16, 32, 64, 128]),
                  "augment": rng.choice([False, True]), "max_epochs": 27}
        storage.write_config(trial_id, config)
        trial = Trial(trial_id, config)
        if i in failed:
            trial.status = TrialStatus.FAILED
            storage.append_error(trial_id, TRACEBACK)
        else:
            trial.observe(9, 9, {"val_loss": rng.random() / 3, "epoch": 9}, 0.1, 12.345678)
            trial.status = TrialStatus.COMPLETED
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def _cli(columns, *argv):
    import os

    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run([sys.executable, "-m", "raytuner.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("columns", [80, 100])
def test_tables_fit_the_terminal_without_splitting_words(tmp_path, columns):
    _keras_like(tmp_path, KERAS)
    _keras_like(tmp_path, LONG)
    code, out, err = _cli(columns, "ls", str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= columns
    names = [line.split()[0] for line in lines if line.startswith(("a_very", "keras"))]
    assert KERAS in names  # a name that fits is never touched
    long_shown = next(n for n in names if n.startswith("a_very"))
    head, _, tail = long_shown.partition("…")  # shortened in the middle: both ends kept
    assert LONG.startswith(head) and LONG.endswith(tail) and len(head) >= 8 and len(tail) >= 8

    code, out, err = _cli(columns, "show", KERAS, "--root", str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= columns
    assert "same in every trial: max_epochs=27" in out
    header = next(line for line in lines if line.startswith("trial "))
    assert "max_epochs" not in header  # constant: folded into the line above, not a column
    note = next((line for line in lines if "left out" in line), "")
    for name in ("trial", "status", "iter", "val_loss", "time (s)", "lr", "units", "dropout", "batch_size", "augment"):
        assert f" {name} " in f" {header} " or name in note, (name, header, note)  # whole, or named as left out
    rows = [line.split() for line in lines if line[:5].isdigit()]
    assert len(rows) == 12 and all(len(row) == len(header.replace("time (s)", "time").split()) for row in rows)
    for row in rows:
        for cell in row[3:]:
            digits = cell.lstrip("-0.").replace(".", "").split("e")[0]
            assert not cell[0].isdigit() or len(digits) <= 5, cell  # 4-5 significant digits
    assert "KeyError: 'learning_rate'  (trial 00003)" in out and "at /home/u/train.py:12 in train" in out

    code, wide, err = _cli(columns, "show", KERAS, "--root", str(tmp_path), "--wide")
    assert code == 0, err
    wide_header = next(line for line in wide.splitlines() if line.startswith("trial "))
    assert wide_header.split()[-6:] == ["lr", "units", "dropout", "batch_size", "augment", "max_epochs"]
    code, wide, err = _cli(columns, "ls", str(tmp_path), "--wide")
    assert LONG in wide and "started" in wide


def test_show_and_best_explain_an_experiment_whose_trials_all_failed(tmp_path):
    _keras_like(tmp_path, "broken", failed=range(4), n=4)
    code, out, err = _cli(100, "show", "broken", "--root", str(tmp_path))
    assert code == 1
    assert "failed trials (4), by error:" in out and "KeyError: 'learning_rate'  (trials 00000, 00001" in out
    message = " ".join(err.split())
    assert "No trial of 'broken' succeeded: 4 of 4 failed" in message
    assert "at /home/u/train.py:12 in train" in message and "Metrics reported" not in message
    code, out, err = _cli(100, "best", "broken", "--root", str(tmp_path))
    assert code == 1 and "No trial of 'broken' succeeded" in " ".join(err.split())


# -- what users see (issue 25) --------------------------------------------------------------
def test_commands_to_type_work_whether_or_not_raytuner_is_on_path(tmp_path, monkeypatch):
    from raytuner._display import cli_command

    monkeypatch.setenv("PATH", str(tmp_path))  # a virtual environment that is not activated
    assert cli_command("show", tmp_path / "my exp") == f"{sys.executable} -m raytuner.cli show '{tmp_path}/my exp'"
    done = subprocess.run(cli_command("show", tmp_path / "nope"), shell=True, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3 and "No experiment at" in done.stderr  # the line it printed runs as it is
    script = tmp_path / "raytuner"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert cli_command("resume", "exp") == "raytuner resume exp"


def test_show_breaks_the_schedulers_arguments_between_arguments(tmp_path):
    _keras_like(tmp_path, KERAS)
    meta = json.loads((tmp_path / KERAS / "experiment.json").read_text())
    meta["scheduler"] = "ASHAScheduler(max_resource=27, min_resource=1, reduction_factor=3, brackets=1, variant='stopping')"
    (tmp_path / KERAS / "experiment.json").write_text(json.dumps(meta))
    code, out, err = _cli(80, "show", KERAS, "--root", str(tmp_path))
    assert code == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("searcher HyperOptSearcher; scheduler"))
    assert lines[start:start + 2] == [
        "searcher HyperOptSearcher; scheduler ASHAScheduler(max_resource=27,",
        "    min_resource=1, reduction_factor=3, brackets=1, variant='stopping')"]


def test_show_wide_shows_every_reported_metric(root, capsys):
    code, out, err = run(capsys, "show", str(root / "exp"), "--wide")
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("trial "))
    assert header.split()[:6] == ["trial", "status", "iter", "loss", "time", "(s)"] and " acc " in f" {header} "
    code, out, err = _cli(80, "show", str(root / "exp"))
    assert "acc" in next(line for line in out.splitlines() if "left out" in line)  # named when it does not fit


def _unreported(folder: Path, status: str) -> ExperimentStorage:
    """An experiment of two trials that never reported, with this status (the experiment's and the trials')."""
    from raytuner._trial import Trial, TrialStatus

    storage = ExperimentStorage(folder)
    storage.create()
    storage.write_experiment({"name": folder.name, "metric": "loss", "mode": "min", "status": status})
    for trial_id in ("00000", "00001"):
        storage.write_config(trial_id, {"x": 1})
        trial = Trial(trial_id, {"x": 1})
        trial.status = TrialStatus(status)
        storage.write_trial(trial_id, trial.to_record())
    return storage


def test_report_and_show_on_an_experiment_with_no_values_say_so_plainly(tmp_path, capsys):
    storage = _unreported(tmp_path / "quiet", "COMPLETED")
    for command in ("report", "show", "best"):
        code, _, err = run(capsys, command, str(storage.path))
        message = " ".join(err.split())
        assert code == 1 and "No trial of 'quiet' has reported any value (2 trials): there is nothing to rank or " \
                             "plot yet." in message, (command, message)
        assert "Pass one" not in message


def test_best_before_any_report_says_to_wait_only_while_a_driver_runs(tmp_path, capsys):
    from raytuner._storage.lock import DriverLock

    storage = _unreported(tmp_path / "early", "RUNNING")
    code, _, err = run(capsys, "best", str(storage.path))  # its driver died before any report
    message = " ".join(err.split())
    assert code == 1 and "has reported 'loss' yet (2 not finished). Its driver is not running (INTERRUPTED): `" \
        in message and f"resume {storage.path}` continues it." in message, message
    assert "moment" not in message
    with DriverLock(storage.path).acquire():
        code, _, err = run(capsys, "best", str(storage.path))
    assert code == 1 and "Try again in a moment." in " ".join(err.split()), err


def test_logs_of_a_failed_trial_show_its_traceback_after_its_output(tmp_path, capsys):
    path = _keras_like(tmp_path, KERAS)
    storage = ExperimentStorage(path)
    storage.append_log("00003", "epoch 1\n")
    code, out, err = run(capsys, "logs", str(path), "00003")
    assert code == 0 and "printed nothing" not in err
    assert out.startswith("epoch 1\n--- trial 00003 failed; its traceback (")
    assert out.endswith(TRACEBACK)
    code, out, err = run(capsys, "logs", str(path), "00004")  # completed, silent
    assert (code, out) == (0, "") and "(trial 00004 has printed nothing)" in err


def test_logs_follow_stops_once_the_driver_is_gone_or_the_trial_ended(tmp_path, capsys):
    from raytuner._storage.lock import DriverLock

    path = _keras_like(tmp_path, KERAS)
    storage = ExperimentStorage(path)
    record = json.loads((path / "trials/00005/trial.json").read_text())
    storage.write_trial("00005", {**record, "status": "RUNNING"})
    storage.append_log("00005", "step 1\n")
    meta = json.loads((path / "experiment.json").read_text())
    storage.write_experiment({**meta, "status": "RUNNING"})  # as a SIGKILLed driver leaves it
    code, out, err = run(capsys, "logs", str(path), "00005", "-f")
    assert (code, out) == (0, "step 1\n")
    assert "(stopped following: no driver runs" in err and "until the experiment is resumed" in err

    with DriverLock(path).acquire():  # a live driver: -f follows until the trial ends
        ended = threading.Timer(0.6, lambda: (storage.append_log("00005", "step 2\n"),
                                              storage.write_trial("00005", {**record, "status": "COMPLETED"})))
        ended.start()
        code, out, err = run(capsys, "logs", str(path), "00005", "-f")
        ended.join()
    assert (code, out) == (0, "step 1\nstep 2\n") and "(stopped following: trial 00005 ended COMPLETED)" in err


def test_control_refuses_without_a_live_driver_and_names_the_resume_option(tmp_path, capsys):
    path = _keras_like(tmp_path, KERAS)
    code, _, err = run(capsys, "control", str(path), "--num-trials", "20", "--max-concurrent", "2")
    message = " ".join(err.split())
    assert code == 1 and "no live driver to apply set_limits: it is COMPLETED" in message
    assert "--max-concurrent 2 --num-trials 20`" in message and "resume" in message
    code, _, err = run(capsys, "control", str(path), "--max-concurrent", str(10**401))
    assert code == 2 and "`max_concurrent` is a 402-digit integer" in " ".join(err.split())
    assert not (path / "control").exists()


def test_control_with_one_refused_command_sends_none_of_them(tmp_path, capsys):
    """`--max-concurrent 1 --stop-trial 99999`: the unknown trial is refused before anything
    is written, so the limit is not applied behind an error."""
    from raytuner._storage.lock import DriverLock

    path = _keras_like(tmp_path, KERAS)
    with DriverLock(path).acquire():
        code, out, err = run(capsys, "control", str(path), "--no-wait", "--max-concurrent", "1",
                             "--stop-trial", "00000", "--stop-trial", "99999")
    assert code == 1 and "no trial '99999'" in err and "nothing was sent" in err and out == ""
    assert not (path / "control").exists() or not any((path / "control").glob("*.json"))


def test_show_tells_a_config_value_of_none_from_a_parameter_the_config_lacks(tmp_path, capsys):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "metric": "loss", "mode": "min", "status": "COMPLETED"})
    for trial_id, config in (("00000", {"act": None, "w": 1}), ("00001", {"act": "relu", "w": 2}), ("00002", {"w": 3})):
        storage.write_config(trial_id, config)
        storage.append_results(trial_id, [{"loss": 1.0, "iteration": 1}])
        storage.write_trial(trial_id, {"trial_id": trial_id, "status": "COMPLETED", "iteration": 1,
                                       "metrics": {"loss": 1.0}, "last_value": 1.0})
    code, out, err = run(capsys, "show", "exp", "--root", str(tmp_path), "--wide")
    assert code == 0, err
    acts = {line.split()[0]: line.split()[-2] for line in out.splitlines() if line.startswith("000")}
    assert acts == {"00000": "None", "00001": "relu", "00002": "-"}
