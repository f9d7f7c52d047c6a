"""A driver killed mid-sweep leaves its running trials' trial.json saying RUNNING, where its
Ctrl-C would have written PENDING. Once no live driver holds the experiment, every reader
(``rt.load`` and its dataframe, ``raytuner show``, ``ls``, ``export``, the dashboard's API)
shows them PENDING, noted interrupted, as a resume takes them; while the driver lives they
are RUNNING. Readers write nothing. The experiment is written straight into the storage
layout (no Ray); its driver is a child process that holds the lock and is killed.
"""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import cli
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.history import attempt_marker
from raytuner._trial import Trial, TrialStatus
from raytuner.dashboard import _store

NOTE = "interrupted (its driver stopped)"  # as the Ctrl-C path notes "interrupted (Ctrl-C)"

_HOLD = ("import sys, time; from pathlib import Path; from raytuner._storage.lock import DriverLock; "
         "DriverLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)")


def _row(iteration: int, loss: float, checkpoint: str | None = None) -> dict:
    row = {"loss": loss, "iteration": iteration, "time_total_s": 0.5 * iteration, "timestamp": 0.0, "attempt": 1}
    return {**row, "checkpoint": checkpoint} if checkpoint else row


def write(root: Path) -> Path:
    """Five trials of a sweep whose driver was killed: 00000 had reported twice (its
    trial.json is the one of its launch), 00001 had just started, 00002-00004 are paused."""
    storage = ExperimentStorage(root / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "metric": "loss", "mode": "min", "status": "RUNNING",
                              "searcher": "RandomSearcher", "scheduler": "ASHAScheduler()",
                              "start_time": time.time() - 10})
    for i in range(5):
        trial_id = f"{i:05d}"
        storage.write_config(trial_id, {"x": i})
        trial = Trial(trial_id, {"x": i}, status=TrialStatus.RUNNING, attempt=1)
        storage.append_results(trial_id, [attempt_marker(1, 0, None, "start", 0.0)])
        if i >= 2:
            trial.status = TrialStatus.PAUSED
            trial.observe(1, 1, {"loss": 1.0 + i}, 1.0 + i, 0.5)
            storage.append_results(trial_id, [_row(1, 1.0 + i)])
        storage.write_trial(trial_id, trial.to_record())
    storage.append_results("00000", [_row(1, 0.9), _row(2, 0.4, "checkpoint_000002")])
    (storage.trial_path("00000") / "checkpoint_000002").mkdir()
    return storage.path


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _shown(root: Path, capsys) -> tuple[str, str, str]:
    """What ``raytuner show``, ``ls`` and ``export`` print."""
    assert cli.main(["show", "exp", "--root", str(root), "--limit", "0"]) == 0
    show = capsys.readouterr().out
    assert cli.main(["ls", str(root), "--wide"]) == 0
    listing = capsys.readouterr().out
    assert cli.main(["export", "exp", "--root", str(root)]) == 0
    return show, listing, capsys.readouterr().out


def test_running_trials_of_a_killed_driver_are_pending_in_every_view(tmp_path, capsys, monkeypatch):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx2")
    from starlette.testclient import TestClient

    from raytuner.dashboard._app import close, create_app

    monkeypatch.setattr(_store, "REFRESH_S", 0.0)  # each request looks at the files again
    path = write(tmp_path)
    app = create_app(tmp_path, loopback_only=True)
    api = TestClient(app, base_url="http://127.0.0.1")
    driver = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip() == "held"
        # A live driver: its trials are where it says.
        assert [t.status for t in rt.load(path).trials][:2] == [TrialStatus.RUNNING] * 2
        assert api.get("/api/e/exp").json()["counts"] == {"RUNNING": 2, "PAUSED": 3}
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    before = _files(path)

    results = rt.load(path)
    assert results.status == "INTERRUPTED"
    assert [t.status for t in results.trials] == [TrialStatus.PENDING] * 2 + [TrialStatus.PAUSED] * 3
    first = results["00000"]  # caught up with its reports too: it restarts from checkpoint_000002
    assert (first.iteration, first.checkpoint) == (2, first.path / "checkpoint_000002")
    assert list(results.dataframe()["status"]) == ["PENDING"] * 2 + ["PAUSED"] * 3

    show, listing, export = _shown(tmp_path, capsys)
    assert "5 trials: 2 pending, 3 paused" in show and "running" not in show, show
    rows = {line.split()[0]: line.split()[1] for line in show.splitlines() if line[:5].isdigit()}
    assert rows == {"00000": "pending", "00001": "pending", "00002": "paused", "00003": "paused", "00004": "paused"}
    line = next(line for line in listing.splitlines() if line.startswith("exp "))
    assert "INTERRUPTED" in line and "5 (2 pending, 3 paused)" in line, line
    assert [r["status"] for r in csv.DictReader(io.StringIO(export))] == ["PENDING"] * 2 + ["PAUSED"] * 3

    # The dashboard that watched the live driver sees it die.
    summary = api.get("/api/e/exp").json()
    assert (summary["status"], summary["counts"], summary["running"]) == ("INTERRUPTED", {"PENDING": 2, "PAUSED": 3}, 0)
    assert api.get("/api/experiments").json()["experiments"][0]["counts"] == {"PENDING": 2, "PAUSED": 3}
    table = {r["trial_id"]: (r["status"], r["note"]) for r in api.get("/api/e/exp/trials").json()["rows"]}
    assert table["00000"] == table["00001"] == ("PENDING", NOTE)
    assert table["00002"] == ("PAUSED", None)
    assert api.get("/api/e/exp/trials", params={"status": "RUNNING"}).json()["total"] == 0
    page = api.get("/api/e/exp/t/00001").json()
    assert (page["record"]["status"], page["record"]["note"]) == ("PENDING", NOTE)
    close(app)

    assert _files(path) == before  # readers write nothing
    assert ExperimentStorage(path).read_trial("00000")[0]["status"] == "RUNNING"
