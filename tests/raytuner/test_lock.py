"""The driver lock on its own: owner record, refusal, heartbeat, stale detection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from raytuner._storage import lock as lock_module
from raytuner._storage.experiment import ExperimentStorage
from raytuner.errors import ExperimentError, StorageError

from tests._helpers import wait_for


def _write_holder(folder, **fields):
    """Another driver's record, renamed into place as a driver writes it (a heartbeat may be
    reading it)."""
    now = time.time()
    record = {"pid": 12345, "host": "gpu-node-7", "started": now - 600, "heartbeat": now, "token": "t", **fields}
    (folder / "driver.lock.tmp").write_text(json.dumps(record))
    os.replace(folder / "driver.lock.tmp", folder / "driver.lock")


def test_lock_records_its_owner_and_is_removed_on_release(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    with storage.acquire_driver_lock():
        record = json.loads((storage.path / "driver.lock").read_text())
        assert (record["pid"], record["host"]) == (os.getpid(), socket.gethostname())
        assert storage.live_driver().pid == os.getpid()
        assert not storage.holds_files()  # the lock alone is not an experiment
        with pytest.raises(ExperimentError, match="this very process"):
            storage.acquire_driver_lock()
    assert not (storage.path / "driver.lock").exists()
    assert storage.live_driver() is None


def test_a_live_driver_on_another_host_is_named(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    _write_holder(storage.path)
    with pytest.raises(ExperimentError) as info:
        storage.acquire_driver_lock()
    message = str(info.value)
    assert "pid 12345 on host 'gpu-node-7'" in message and "kill 12345" in message
    assert json.loads((storage.path / "driver.lock").read_text())["pid"] == 12345  # left alone


def test_a_silent_driver_on_another_host_is_stale(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    _write_holder(storage.path, heartbeat=time.time() - lock_module.STALE_AFTER_S - 5)
    assert storage.live_driver() is None
    with storage.acquire_driver_lock():
        assert json.loads((storage.path / "driver.lock").read_text())["pid"] == os.getpid()


def test_a_dead_pid_on_this_host_is_stale_at_once(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    _write_holder(storage.path, pid=gone.pid, host=socket.gethostname())
    with storage.acquire_driver_lock():
        assert storage.live_driver().pid == os.getpid()


def test_a_damaged_lock_file_does_not_block(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    (storage.path / "driver.lock").write_text('{"pid": 4')  # cut short by a crash
    with storage.acquire_driver_lock():
        assert storage.live_driver().pid == os.getpid()


@pytest.fixture
def held(tmp_path):
    """A lock on a fresh folder whose heartbeat beats every 20 ms; released at the end."""
    folder = tmp_path / "exp"
    folder.mkdir()
    lock = lock_module.DriverLock(folder, heartbeat_s=0.02).acquire()
    yield lock
    lock.release()


def test_heartbeat_moves_on_while_held(held):
    first = json.loads(held.path.read_text())["heartbeat"]
    wait_for(lambda: json.loads(held.path.read_text())["heartbeat"] != first, "a heartbeat", timeout_s=30,
             interval_s=0.01)
    held.release()
    assert not held.path.exists()


def test_a_driver_taken_over_from_another_host_stops_writing(held):
    """A shared file system: a driver on another host took this one for dead (its
    heartbeats had not reached the folder for a minute) and wrote its own record."""
    held.check_standing()
    _write_holder(held.path.parent, pid=4242, host="other-host", token="taker")
    wait_for(lambda: held.stood_down, "the heartbeat to see the takeover", timeout_s=30, interval_s=0.01)
    with pytest.raises(StorageError, match=r"(?s)another driver took it over \(pid 4242 on host 'other-host'.*"
                                           r"wrote nothing more"):
        held.check_standing()
    held.release()
    assert json.loads(held.path.read_text())["token"] == "taker"  # its record stays


def test_a_damaged_record_under_a_live_driver_is_written_whole_again(held):
    ours = json.loads(held.path.read_text())["token"]
    tmp = held.path.with_name("driver.lock.tmp")
    tmp.write_text('{"pid": 4')  # a broken disk's, or a hand edit's
    os.replace(tmp, held.path)
    wait_for(lambda: held.path.read_text().endswith("}\n") and json.loads(held.path.read_text())["token"] == ours,
             "the heartbeat to write the record again", timeout_s=30, interval_s=0.01)
    assert held.stood_down is None
    held.check_standing()


def _race(folder: str, barrier, holders, rounds: int, stale_pid: int) -> None:
    """One racer: at each round, all racers call acquire() at once; a winner holds the lock
    until every racer has tried, so two winners in one round would overlap."""
    import json as _json
    import socket as _socket

    path = lock_module.Path(folder)
    for round_ in range(rounds):
        barrier.wait()
        if round_ % 2:  # every other round starts from a dead driver's record, to be broken
            if barrier.wait() == 0:
                (path / "driver.lock").write_text(_json.dumps(
                    {"pid": stale_pid, "host": _socket.gethostname(), "started": 0, "heartbeat": 0, "token": "dead"}))
            barrier.wait()
        try:
            held = lock_module.DriverLock(path).acquire()
        except ExperimentError:
            held = None
        else:
            with holders.get_lock():
                holders[round_] += 1
        barrier.wait()  # everyone has tried: only now may the winner let go
        if held is not None:
            held.release()


def test_racers_at_a_barrier_never_hold_the_lock_together(tmp_path):
    import multiprocessing

    rounds, racers = 200, 4
    context = multiprocessing.get_context("spawn")  # no inherited locks or threads
    barrier = context.Barrier(racers)
    holders = context.Array("i", rounds)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    processes = [context.Process(target=_race, args=(str(tmp_path), barrier, holders, rounds, gone.pid))
                 for _ in range(racers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
        assert process.exitcode == 0
    assert list(holders) == [1] * rounds  # exactly one holder in every round, stale lock or not
    assert not (tmp_path / "driver.lock").exists()


def test_a_recycled_pid_does_not_keep_a_dead_drivers_lock(tmp_path):
    # The record names a live process of this host (this test's own), but no process holds
    # the flock: the driver that wrote it is gone and its pid was reused.
    _write_holder(tmp_path, pid=os.getpid(), host=socket.gethostname())
    (tmp_path / lock_module.FLOCK_FILE).touch()  # left behind by the dead driver
    storage = ExperimentStorage(tmp_path)
    assert storage.live_driver() is None
    with storage.acquire_driver_lock() as held:
        assert storage.live_driver().token == held._owner.token


def test_a_driver_in_another_process_is_live_until_it_dies(tmp_path):
    code = ("import sys, time; from raytuner._storage.lock import DriverLock; "
            "DriverLock(__import__('pathlib').Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        storage = ExperimentStorage(tmp_path)
        assert storage.live_driver().pid == child.pid
        with pytest.raises(ExperimentError, match=f"pid {child.pid}"):
            storage.acquire_driver_lock()
    finally:
        child.kill()
        child.wait()
    assert storage.live_driver() is None  # the kernel dropped its flock with the process
    with storage.acquire_driver_lock():
        assert storage.live_driver().pid == os.getpid()


def test_a_failed_start_removes_its_folder_and_a_racer_that_opened_the_lock_before_is_refused(tmp_path):
    """release_and_remove: a start that failed before it recorded anything leaves no folder.
    A driver that opened .driver.flock before the removal and takes the flock after holds a
    file no one else can see: it is refused, never running beside a third driver that made a
    new one."""
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    lock = storage.acquire_driver_lock()
    racer = lock_module.DriverLock(storage.path)
    opened = os.open(storage.path / lock_module.FLOCK_FILE, os.O_RDWR)
    try:
        assert storage.discard_unstarted()
        lock.release_and_remove()
        assert not storage.path.exists()
        assert not racer._still_the_file(opened)
    finally:
        os.close(opened)
    storage.path.mkdir()
    (storage.path / lock_module.FLOCK_FILE).touch()
    opened = os.open(storage.path / lock_module.FLOCK_FILE, os.O_RDWR)
    try:
        assert racer._still_the_file(opened)
    finally:
        os.close(opened)


def test_a_folder_that_holds_more_than_the_failed_start_made_is_kept(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    (storage.path / "notes.txt").write_text("the user's")
    with storage.acquire_driver_lock():
        assert not storage.discard_unstarted()
    assert (storage.path / "notes.txt").exists()
    storage = ExperimentStorage(tmp_path / "exp2")
    storage.create()
    (storage.trials_path / "00000").mkdir()
    with storage.acquire_driver_lock():
        assert not storage.discard_unstarted()
    assert (storage.trials_path / "00000").exists()
