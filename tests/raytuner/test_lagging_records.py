"""A trial.json that lags behind its results.jsonl (a running trial's, or one whose driver was
killed between appending a row and rewriting the record): every view takes what the kept
rows say, as resume does. Experiments are written straight into the storage layout (no Ray).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import raytuner as rt
from raytuner import cli
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.history import attempt_marker
from raytuner._trial import Trial, TrialStatus
from raytuner.dashboard._root import Root


def _row(iteration: int, loss: float, attempt: int, checkpoint: str | None = None) -> dict:
    row = {"loss": loss, "iteration": iteration, "time_total_s": 0.25 * iteration + 0.01 * attempt,
           "timestamp": 0.0, "attempt": attempt}
    return {**row, "checkpoint": checkpoint} if checkpoint else row


def write(root: Path) -> Path:
    """Trial 00000's driver died while it ran: its trial.json is the one written at its first
    launch (RUNNING, no report). Its results.jsonl holds a first attempt (reports 1-3; 3 made
    the best loss of all, 0.05), a restart from checkpoint_000001 (attempt 2, so the first
    attempt's reports 2 and 3 are superseded) and reports 2 and 3 of that restart; report 2
    committed checkpoint_000002, since deleted by hand. checkpoint_000003 is there, but only
    a superseded row names it. Trial 00001 completed, its record up to date."""
    storage = ExperimentStorage(root / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "metric": "loss", "mode": "min", "status": "RUNNING",
                              "best_scope": "all", "searcher": "RandomSearcher", "scheduler": "FIFOScheduler()",
                              "start_time": time.time() - 10})
    storage.write_config("00000", {"x": 0})
    launched = Trial("00000", {"x": 0}, status=TrialStatus.RUNNING, attempt=1)
    storage.write_trial("00000", launched.to_record())
    storage.append_results("00000", [
        attempt_marker(1, 0, None, "start", 0.0), _row(1, 0.9, 1, "checkpoint_000001"), _row(2, 0.3, 1),
        _row(3, 0.05, 1, "checkpoint_000003"), attempt_marker(2, 1, "checkpoint_000001", "resume", 0.0),
        _row(2, 0.5, 2, "checkpoint_000002"), _row(3, 0.6, 2)])
    for name in ("checkpoint_000001", "checkpoint_000003"):
        (storage.trial_path("00000") / name).mkdir()
    storage.write_config("00001", {"x": 1})
    done = Trial("00001", {"x": 1}, status=TrialStatus.COMPLETED, attempt=1)
    storage.append_results("00001", [attempt_marker(1, 0, None, "start", 0.0)])
    for it, loss in enumerate([0.7, 0.55], 1):
        done.observe(it, it, {"loss": loss}, loss, 0.5 * it)
        storage.append_results("00001", [_row(it, loss, 1)])
    storage.write_trial("00001", done.to_record())
    return storage.path


def test_load_takes_every_field_of_a_lagging_trial_from_its_kept_rows(tmp_path):
    results = rt.load(write(tmp_path))
    trial = results["00000"]
    assert (trial.iteration, trial.resource, trial.metrics) == (3, 3, {"loss": 0.6})
    assert trial.time_total_s == 0.25 * 3 + 0.02
    assert (trial.last_value, trial.best_value) == (0.6, 0.5)  # the superseded 0.05 never counts
    # checkpoint_000002 is gone and no kept row names checkpoint_000003: it restarts from 000001
    assert trial.checkpoint == trial.path / "checkpoint_000001"
    # its driver is gone: PENDING, as a resume takes it (test_interrupted_trials.py)
    assert trial.status is TrialStatus.PENDING and results.status == "INTERRUPTED"
    assert results.best.trial_id == "00000"  # best_scope "all": its 0.5 beats 00001's 0.55
    frame = results.dataframe().set_index("trial_id")
    assert frame.loc["00000", "best_loss"] == 0.5 and frame.loc["00000", "time_total_s"] == trial.time_total_s


def test_the_cli_agrees_with_load(tmp_path, capsys):
    write(tmp_path)
    assert cli.main(["best", "exp", "--root", str(tmp_path), "--full"]) == 0
    assert json.loads(capsys.readouterr().out)["trial_id"] == "00000"
    assert cli.main(["show", "exp", "--root", str(tmp_path), "--limit", "0"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("00000"))
    assert line.split()[:5] == ["00000", "pending", "3", "0.5", "0.8"]  # its best loss (scope "all"), 0.77 s
    assert cli.main(["export", "exp", "--root", str(tmp_path)]) == 0
    row = next(r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["trial_id"] == "00000")
    assert (row["iteration"], row["loss"], row["best_loss"], float(row["time_total_s"])) == ("3", "0.6", "0.5", 0.77)
    assert cli.main(["ls", str(tmp_path), "--wide"]) == 0  # the listing too: 00000 at 0.5, not 00001's 0.55
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("exp "))
    assert " 0.5 " in line and "0.55" not in line, line


def test_the_dashboard_agrees_with_load_and_follows_the_file(tmp_path):
    path = write(tmp_path)
    view = Root(tmp_path).experiment("exp")
    assert view.summary()["best"] == {"trial_id": "00000", "value": 0.5}
    row = next(r for r in view.table()["rows"] if r["trial_id"] == "00000")
    assert (row["iteration"], row["value"], row["time_total_s"]) == (3, 0.5, 0.77)
    page = view.trial("00000")
    record = page["record"]
    assert (record["checkpoint"], record["best_value"], record["last_value"]) == ("checkpoint_000001", 0.5, 0.6)
    assert page["checkpoints"] == ["checkpoint_000001"]  # 000003 is there, but only a lost attempt's row names it
    # The trial goes on: its file grows, its trial.json stays as it was.
    results = path / "trials" / "00000" / "results.jsonl"
    before = os.stat(results).st_mtime_ns
    ExperimentStorage(path).append_results("00000", [_row(4, 0.2, 2, "checkpoint_000004")])
    (path / "trials" / "00000" / "checkpoint_000004").mkdir()
    os.utime(results, ns=(before + 10**9, before + 10**9))  # a new modification time, however coarse the clock
    view.refresh(force=True)
    row = next(r for r in view.table(sort="value")["rows"] if r["trial_id"] == "00000")
    assert (row["iteration"], row["value"], row["time_total_s"]) == (4, 0.2, 1.02)
    assert view.trial("00000")["record"]["checkpoint"] == "checkpoint_000004"
    assert view.trial("00000")["checkpoints"] == ["checkpoint_000001", "checkpoint_000004"]
    assert rt.load(path)["00000"].checkpoint.name == "checkpoint_000004"
