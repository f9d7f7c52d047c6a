"""The crash harness: kill the driver at every point of its write path, resume, and check.

A driver (``harness_driver.py``) runs a deterministic trainable in a subprocess, with
``RAYTUNER_FAULT_AFTER_WRITES=N`` (:mod:`raytuner._storage.faults`): at its N-th storage
write it SIGKILLs itself in the middle of that write (half a line appended, a whole file
written but not renamed, a checkpoint folder not yet in place), or, with ``:enospc``, that
write and every later one fail as on a full disk. Another driver subprocess then resumes the
experiment, and the records must hold:

- the experiment loads, after the kill and after the resume;
- every trial has strictly increasing iterations 1..n, and every row equals what the
  trainable computes at that step (a pure function of config and step);
- no trial is lost or duplicated (ids 0..TRIALS-1, distinct configs);
- COMPLETED means the full budget.

Checkpoints at every report, every 2nd report and never. The default set kills at a few
points per kind; ``-m slow`` sweeps every write of a run. Drivers join one shared Ray
(a ``ray start --head`` of this module's own), so a kill point costs two driver start-ups,
not a Ray start-up each (``shared_ray``, in conftest.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus

sys.path.insert(0, str(Path(__file__).parent))
from harness_driver import STEPS, TRIALS, value  # noqa: E402

DRIVER = Path(__file__).with_name("harness_driver.py")
KINDS = {"every report": 1, "every 2nd report": 2, "no checkpoints": 0}
#: Kill points of the default run, per kind: early (before any trial), among the first
#: reports, and late (trials finishing). The slow sweep takes every write.
DEFAULT_POINTS = (2, 9, 23)


def drive(env: dict[str, str], folder: Path, every: int, fault: str | None = None, step_s: float = 0.02,
          ballast: int = 0) -> subprocess.CompletedProcess:
    """Run (or resume) the experiment in ``folder`` in a driver subprocess, to its end."""
    env = dict(env)
    if fault is not None:
        env["RAYTUNER_FAULT_AFTER_WRITES"] = fault
    return subprocess.run([sys.executable, str(DRIVER), str(folder), str(every), str(step_s), str(ballast)], env=env,
                          capture_output=True, text=True, timeout=180)


def check_records(folder: Path, *, finished: bool) -> rt.Results:
    """The invariants; ``finished``: the run went to its end, so every trial is COMPLETED."""
    results = rt.load(folder)
    ids = [t.trial_id for t in results.trials]
    assert ids == [f"{i:05d}" for i in range(len(ids))], f"trials lost or duplicated: {ids}"
    assert len({t.config["x"] for t in results.trials}) == len(ids), "a config ran as two trials"
    for trial in results.trials:
        assert trial.status != TrialStatus.DAMAGED, trial.damaged
        history = results.history(trial.trial_id)
        iterations = list(history["iteration"]) if len(history) else []
        assert iterations == list(range(1, len(iterations) + 1)), f"trial {trial.trial_id}: {iterations}"
        for row in history.to_dict("records"):
            assert row["step"] == row["iteration"], (trial.trial_id, row)
            assert row["loss"] == value(trial.config["x"], row["iteration"]), (trial.trial_id, row)
        if trial.status == TrialStatus.COMPLETED:
            assert iterations == list(range(1, STEPS + 1)), f"trial {trial.trial_id} COMPLETED at {iterations}"
            assert trial.iteration == STEPS and trial.metrics["loss"] == value(trial.config["x"], STEPS)
    if finished:
        assert len(ids) == TRIALS and results.status == "COMPLETED"
        assert all(t.status == TrialStatus.COMPLETED for t in results.trials), [t.status for t in results.trials]
    return results


def kill_and_resume(env: dict[str, str], folder: Path, every: int, point: int) -> bool:
    """Kill the driver at write ``point``, check, resume, check; whether the kill happened."""
    first = drive(env, folder, every, f"{point}:kill")
    killed = first.returncode == -signal.SIGKILL
    assert killed or first.returncode == 0, first.stderr[-3000:]
    if killed and (folder / "experiment.json").is_file():
        check_records(folder, finished=False)
    resumed = drive(env, folder, every)
    assert resumed.returncode == 0, f"resume after a kill at write {point}:\n{resumed.stderr[-3000:]}"
    check_records(folder, finished=True)
    return killed


@pytest.mark.parametrize("kind", KINDS)
def test_a_driver_killed_at_any_write_resumes_into_trustworthy_records(shared_ray, tmp_path, kind):
    kills = [kill_and_resume(shared_ray, tmp_path / f"kill_{point}", KINDS[kind], point) for point in DEFAULT_POINTS]
    assert all(kills), f"a run ended before write {max(DEFAULT_POINTS)}: the kill points need moving"


def test_a_full_disk_stops_the_run_cleanly_and_resume_completes_it(shared_ray, tmp_path):
    folder = tmp_path / "full"
    first = drive(shared_ray, folder, 2, "14:enospc")
    assert first.returncode == 1, first.stderr[-3000:]
    assert "raytuner.errors.StorageError: Cannot write" in first.stderr
    assert "No space left on device (ENOSPC)" in first.stderr
    assert f"raytuner resume {folder}" in first.stderr
    # One clear error: neither the raw OSError nor a second error chained to it.
    assert "[Errno" not in first.stderr and "During handling" not in first.stderr, first.stderr[-3000:]
    assert "direct cause" not in first.stderr
    assert rt.load(folder).status == "INTERRUPTED"
    check_records(folder, finished=False)
    resumed = drive(shared_ray, folder, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_records(folder, finished=True)


@pytest.mark.slow
@pytest.mark.full_sweep
@pytest.mark.parametrize("kind", KINDS)
def test_every_write_of_a_run_is_a_safe_place_to_die(shared_ray, tmp_path, kind):
    every = KINDS[kind]
    clean = drive(shared_ray, tmp_path / "count", every, "1000000000")
    assert clean.returncode == 0, clean.stderr[-3000:]
    total = int(re.search(r"WRITES (\d+)", clean.stdout).group(1))
    started = time.monotonic()
    for point in range(1, total + 1):
        kill_and_resume(shared_ray, tmp_path / f"kill_{point}", every, point)
    for point in range(1, total + 1, 3):
        folder = tmp_path / f"full_{point}"
        first = drive(shared_ray, folder, every, f"{point}:enospc")
        assert first.returncode == 1 and "StorageError" in first.stderr, first.stderr[-3000:]
        assert drive(shared_ray, folder, every).returncode == 0
        check_records(folder, finished=True)
    print(f"{kind}: {total} kill points and {len(range(1, total + 1, 3))} full-disk points in "
          f"{time.monotonic() - started:.0f} s")


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), mounted for the test; root only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_disk_filling_up_stops_the_run_and_resume_completes_it_once_there_is_room(shared_ray, small_disk):
    folder = small_disk / "exp"
    first = drive(shared_ray, folder, 1, ballast=150_000)  # 15 checkpoints of 150 kB: the disk fills up
    assert first.returncode == 1, first.stderr[-3000:]
    assert "raytuner.errors.StorageError: Cannot write" in first.stderr
    assert "No space left on device (ENOSPC)" in first.stderr and "free space on that disk" in first.stderr
    assert "[Errno" not in first.stderr and "During handling" not in first.stderr, first.stderr[-3000:]
    interrupted = check_records(folder, finished=False)
    assert interrupted.status == "INTERRUPTED"
    kept = {t.trial_id: interrupted.history(t.trial_id).to_dict("records") for t in interrupted.trials
            if t.status == TrialStatus.COMPLETED}
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # room again
    resumed = drive(shared_ray, folder, 1, ballast=150_000)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = check_records(folder, finished=True)
    for trial_id, rows in kept.items():  # nothing written before is lost, nor run again
        assert results.history(trial_id).to_dict("records") == rows
