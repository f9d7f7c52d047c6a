"""A driver killed with SIGKILL mid-sweep: nothing finished is lost, resume completes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.history import read_history

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")

SCRIPT = Path(__file__).with_name("crash_driver.py")


def _finished(exp: Path) -> int:
    count = 0
    for path in exp.glob("trials/*/trial.json"):
        try:
            count += json.loads(path.read_text())["status"] == "COMPLETED"
        except (OSError, ValueError):
            pass
    return count


HELD = ("00003", "00004")  # crash_driver.FIRST_HELD on: they hold before epoch 3


def _held_at_epoch_2(exp: Path, gate: Path) -> bool:
    """Whether trials 3 and 4 hold, the row committing their checkpoint of epoch 2 written."""
    return all((gate / f"held-{t}").exists() and [(r["epoch"], r.get("checkpoint")) for r in read_history(
        exp / "trials" / t / "results.jsonl").rows][-1:] == [(2, "checkpoint_000002")] for t in HELD)


def test_sigkilled_driver_resumes_without_losing_or_repeating_work(storage, tmp_path):
    exp = storage / "crashed"
    gate = tmp_path / "gate"
    gate.mkdir()
    driver = subprocess.Popen([sys.executable, str(SCRIPT), str(storage), str(gate)], start_new_session=True)
    try:
        # The kill lands mid-run, at a chosen point: trials 0-2 finished, 3 and 4 held before
        # epoch 3 with their checkpoints of epoch 2 recorded, 5-7 not started.
        wait_for(lambda: _finished(exp) == 3 and _held_at_epoch_2(exp, gate),
                 "three trials to finish and two to hold mid-run, to kill the driver", timeout_s=120, process=driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()  # the held workers exit, their raylet gone (crash_driver.hold)
    before = rt.load(exp)
    assert before.meta["status"] == "RUNNING"  # it never got to say otherwise
    done_before = {t.trial_id: t.metrics for t in before.trials if t.status == TrialStatus.COMPLETED}
    assert sorted(done_before) == ["00000", "00001", "00002"]
    assert sorted(t.trial_id for t in before.trials) == [*done_before, *HELD]
    assert [len(before.history(t)) for t in HELD] == [2, 2]
    reports_before = {t.trial_id: len(before.history(t.trial_id)) for t in before.trials}
    files_before = {t: (exp / "trials" / t / "results.jsonl").read_bytes() for t in done_before}

    # The trainable is imported from the script the experiment recorded, as `raytuner resume` does.
    results = rt.Tuner.resume(exp, verbose=0)
    assert results.meta["status"] == "COMPLETED"
    assert len(results.trials) == 8
    assert all(t.status == TrialStatus.COMPLETED for t in results.trials)
    assert len({t.config["x"] for t in results.trials}) == 8
    for trial_id, metrics in done_before.items():
        assert results[trial_id].metrics == metrics
        assert len(results.history(trial_id)) == reports_before[trial_id] == 4
        assert (exp / "trials" / trial_id / "results.jsonl").read_bytes() == files_before[trial_id], \
            "finished trials are not rerun"
    for trial in results.trials:
        assert list(results.history(trial.trial_id)["epoch"]) == [1, 2, 3, 4]  # one trajectory each
    for trial_id in HELD:  # the trials killed mid-run went on from their checkpoints, not from scratch
        (resumed,) = [m for m in read_history(exp / "trials" / trial_id / "results.jsonl").attempts
                      if m["reason"] == "resume"]
        assert (resumed["start_iteration"], resumed["checkpoint"]) == (2, "checkpoint_000002")
