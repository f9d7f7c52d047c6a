"""A trainable's stdio behaves as in plain Python, on real Ray workers: every way of writing
lands in the trial's log, in order; a reused worker's next trial starts clean; the cap
holds; a segfault's traceback reaches the log."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import subprocess
import sys
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus

pytestmark = pytest.mark.usefixtures("ray_cluster")

CHILD = "import os; os.write(1, b'8 child on inherited fd 1\\n'); os.write(2, b'9 child on inherited fd 2\\n')"
EVERY_WRITE = [
    "1 print", "2 sys.stdout.buffer.write", "3 after faulthandler.enable()", "4 subprocess.run(stdout=sys.stdout)",
    "5 after sys.stdout.reconfigure", "6 os.write(1)", "7 os.write(2)", "8 child on inherited fd 1",
    "9 child on inherited fd 2", "10 libc write", "11 last print",
]


def writes_every_way(config):
    print("1 print")
    sys.stdout.buffer.write(b"2 sys.stdout.buffer.write\n")
    faulthandler.enable()
    print("3 after faulthandler.enable()", file=sys.stderr)
    subprocess.run([sys.executable, "-c", "print('4 subprocess.run(stdout=sys.stdout)')"], stdout=sys.stdout,
                   check=True)
    sys.stdout.reconfigure(line_buffering=True)
    print("5 after sys.stdout.reconfigure")
    os.write(1, b"6 os.write(1)\n")
    os.write(2, b"7 os.write(2)\n")
    subprocess.run([sys.executable, "-c", CHILD], check=True)
    line = b"10 libc write\n"
    ctypes.CDLL(None).write(1, line, len(line))
    print("11 last print")
    rt.report({"loss": 1.0})


def test_every_way_a_trainable_writes_lands_in_its_log_in_order(storage):
    results = rt.Tuner(writes_every_way, space={}, metric="loss", num_trials=1, storage_path=storage, name="all",
                       verbose=0).fit()
    (trial,) = results.trials
    assert trial.status is TrialStatus.COMPLETED, trial.error
    assert (storage / "all/trials/00000/log.txt").read_text() == "".join(f"{line}\n" for line in EVERY_WRITE)
    assert results.log("00000") == rt.load(storage / "all").log("00000") == "".join(f"{line}\n" for line in EVERY_WRITE)


def leaves_a_mess(config):
    trial_id = rt.get_context().trial_id
    fresh = (sys.stdout.line_buffering, sys.stdout.isatty())
    print(f"python of {trial_id}")
    print(f"stderr of {trial_id}", file=sys.stderr)
    ctypes.CDLL(None).printf(b"printf of %s\n", trial_id.encode())  # C buffers it: fd 1 is no tty
    rt.report({"loss": 1.0, "pid": os.getpid(), "fresh": int(fresh == (True, False))})
    # What a trainable may leave behind: a changed stream, a stream of its own, a changed fd.
    sys.stdout.reconfigure(line_buffering=False)
    sys.stderr = open(os.devnull, "w")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def test_a_reused_workers_next_trial_starts_with_clean_stdio_and_ray_gets_its_own_back(storage):
    rt.release_workers()  # the two trials share one fresh worker
    results = rt.Tuner(leaves_a_mess, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, max_concurrent=1,
                       storage_path=storage, name="reuse", verbose=0, keep_workers_s=30).fit()
    frame = results.dataframe()
    assert frame["pid"].nunique() == 1 and frame["fresh"].tolist() == [1, 1]
    for trial_id, other in (("00000", "00001"), ("00001", "00000")):
        log = (storage / f"reuse/trials/{trial_id}/log.txt").read_text()
        assert sorted(log.splitlines()) == [f"printf of {trial_id}", f"python of {trial_id}", f"stderr of {trial_id}"]
    if Path("/proc/self/fd").is_dir():  # between trials the worker writes to Ray's log files again
        pid = int(frame["pid"].iloc[0])
        assert os.readlink(f"/proc/{pid}/fd/1").endswith(".out") and os.readlink(f"/proc/{pid}/fd/2").endswith(".err")
    rt.release_workers()


def prints_past_the_cap(config):
    line = "x" * 1023 + "\n"
    for _ in range(9 * 1024):  # 9 MiB, while the worker reads its share
        sys.stdout.write(line)
    print("AFTER THE CAP")
    rt.report({"loss": 1.0})


def test_a_trial_printing_past_the_cap_runs_on_and_its_log_stops_with_a_note(storage):
    results = rt.Tuner(prints_past_the_cap, space={}, metric="loss", num_trials=1, storage_path=storage, name="cap",
                       verbose=0).fit()
    assert results.trials[0].status is TrialStatus.COMPLETED
    data = (storage / "cap/trials/00000/log.txt").read_bytes()
    assert len(data) <= 8 * 1024 * 1024 + 200 and b"AFTER THE CAP" not in data
    assert data.startswith(b"x" * 1023 + b"\n") and b"\n[raytuner: this " in data[-200:]


def segfaults(config):
    print("before the crash")
    faulthandler.enable()
    ctypes.string_at(0)


def test_a_segfaults_traceback_reaches_the_log_from_a_worker_on_the_drivers_node(storage):
    with pytest.raises(rt.TrialsFailedError, match="worker died"):
        rt.Tuner(segfaults, space={}, metric="loss", num_trials=1, storage_path=storage, name="crash", verbose=0).fit()
    log = (storage / "crash/trials/00000/log.txt").read_text()
    # Ray's own handler reports the signal first, then faulthandler's traceback follows.
    assert log.startswith("before the crash\n") and "Fatal Python error: Segmentation fault" in log
    assert "in segfaults" in log  # the trainable's frame
