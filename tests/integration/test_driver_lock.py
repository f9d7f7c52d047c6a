"""One live driver per experiment, with real driver processes: a second one is refused
with the first one named; a SIGKILLed driver's lock does not block resume."""

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

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")

SCRIPT = Path(__file__).with_name("lock_driver.py")


def test_second_driver_is_refused_and_a_killed_one_does_not_block(storage, tmp_path):
    exp, gate = storage / "held", tmp_path / "gate"
    env = {**os.environ, "COLUMNS": "100"}
    first = subprocess.Popen([sys.executable, str(SCRIPT), str(storage), str(gate)], start_new_session=True)
    try:
        wait_for(lambda: len(list(exp.glob("trials/*/results.jsonl"))) >= 2, "two trials reported", timeout_s=120,
                 process=first)
        holder = json.loads((exp / "driver.lock").read_text())
        assert holder["pid"] == first.pid

        # A reader does not take the experiment, and sees it live.
        live = rt.load(exp)
        assert live.meta["status"] == "RUNNING"
        assert sum(t.status == TrialStatus.RUNNING for t in live.trials) == 2

        # `raytuner resume` on the live experiment: refused, naming the running driver.
        resume = subprocess.run([sys.executable, "-m", "raytuner.cli", "resume", str(exp)], env=env,
                                capture_output=True, text=True, timeout=120)
        assert resume.returncode == 1, resume.stderr
        refusal = " ".join(resume.stderr.split())
        assert f"pid {first.pid}" in refusal and "another driver" in refusal, refusal
        # A new Tuner with the same name and storage: refused the same way.
        again = subprocess.run([sys.executable, str(SCRIPT), str(storage), str(gate)], env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode != 0
        assert "ExperimentError" in again.stderr and f"pid {first.pid}" in again.stderr, again.stderr[-2000:]
        assert first.poll() is None, "the refused drivers must leave the first one running"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started
        first.wait()

    assert json.loads((exp / "driver.lock").read_text())["pid"] == first.pid  # left behind by the kill
    gate.touch()
    results = rt.Tuner.resume(exp, verbose=0)  # the dead holder's lock is stale: it does not block
    assert results.meta["status"] == "COMPLETED"
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 4
    for trial in results.trials:  # one driver wrote each trial: no report twice
        steps = list(results.history(trial.trial_id)["step"])
        assert steps in ([1, 2], [1, 1, 2]), steps  # restarted trials re-report from scratch once
    assert not (exp / "driver.lock").exists()
