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


def test_sigkilled_driver_resumes_without_losing_or_repeating_work(storage):
    exp = storage / "crashed"
    driver = subprocess.Popen([sys.executable, str(SCRIPT), str(storage)], start_new_session=True)
    try:
        wait_for(lambda: _finished(exp) >= 3, "three trials to finish, to kill the driver", timeout_s=120,
                 process=driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    before = rt.load(exp)
    assert before.meta["status"] == "RUNNING"  # it never got to say otherwise
    done_before = {t.trial_id: t.metrics for t in before.trials if t.status == TrialStatus.COMPLETED}
    assert len(done_before) >= 3
    reports_before = {t.trial_id: len(before.history(t.trial_id)) for t in before.trials}

    # The trainable is imported from the script the experiment recorded, as `raytuner resume` does.
    results = rt.Tuner.resume(exp, verbose=0)
    assert results.meta["status"] == "COMPLETED"
    assert len(results.trials) == 8
    assert all(t.status == TrialStatus.COMPLETED for t in results.trials)
    assert len({t.config["x"] for t in results.trials}) == 8
    for trial_id, metrics in done_before.items():
        assert results[trial_id].metrics == metrics
        assert len(results.history(trial_id)) == reports_before[trial_id] == 4, "finished trials are not rerun"
    for trial in results.trials:
        assert list(results.history(trial.trial_id)["epoch"])[-1] == 4
