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
from raytuner.errors import ExperimentError

from tests._helpers import wait_for


def _write_holder(folder, **fields):
    now = time.time()
    record = {"pid": 12345, "host": "gpu-node-7", "started": now - 600, "heartbeat": now, "token": "t", **fields}
    (folder / "driver.lock").write_text(json.dumps(record))


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


def test_heartbeat_moves_on_while_held(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    held = lock_module.DriverLock(folder, heartbeat_s=0.02).acquire()
    try:
        first = json.loads(held.path.read_text())["heartbeat"]
        wait_for(lambda: json.loads(held.path.read_text())["heartbeat"] != first, "a heartbeat", timeout_s=30,
                 interval_s=0.01)
    finally:
        held.release()
    assert not held.path.exists()
