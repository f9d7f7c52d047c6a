"""The driver lock of an experiment in a bucket (moto's S3 server; no Ray): the live driver's
record is kept in the bucket, where a second driver and every reader find it, from any
machine; a dead driver's record does not block."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import pytest

from raytuner._storage import bucket_lease
from raytuner._storage import lock as lock_module
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.lock import BUCKET_LOCK_FILE, DriverLock, LockOwner
from raytuner.cli import main
from raytuner.errors import ExperimentError, StorageError

from tests._helpers import wait_for


def _object(uri: str, rel: str) -> dict | None:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    try:
        return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{rel}")["Body"].read())
    except boto3.client("s3").exceptions.NoSuchKey:
        return None


def _put(uri: str, rel: str, data: dict) -> None:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=json.dumps(data).encode())


def _holder(uri: str, **fields) -> dict:
    now = time.time()
    record = {"pid": 12345, "host": "gpu-node-7", "started": now - 600, "heartbeat": now, "token": "t",
              "run_id": "r", **fields}
    _put(uri, BUCKET_LOCK_FILE, record)
    return record


def _running_experiment(uri: str) -> None:
    _put(uri, "experiment.json", {"name": uri.rsplit("/", 1)[1], "status": "RUNNING", "metric": "loss",
                                  "mode": "min"})


def test_the_holder_keeps_its_record_in_the_bucket_for_every_reader_and_removes_it(bucket, tmp_path, monkeypatch,
                                                                                    capsys):
    root = f"{bucket}/exps"
    uri = f"{root}/e"
    _running_experiment(uri)
    writer = ExperimentStorage(uri, writable=True)
    with writer.acquire_driver_lock():
        record = _object(uri, BUCKET_LOCK_FILE)
        assert (record["pid"], record["host"], record["run_id"]) == (os.getpid(), socket.gethostname(), writer.run_id)
        assert not (writer.path / BUCKET_LOCK_FILE).exists()  # the bucket's, not the writer's own copy
        # A reader on another machine (another cache) sees the driver, and so does a listing.
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
        assert ExperimentStorage(uri).live_driver().pid == os.getpid()
        capsys.readouterr()
        assert main(["ls", root]) == 0
        assert "RUNNING" in capsys.readouterr().out
        # A second writer (a resume, here or elsewhere) is refused, naming the holder.
        second = ExperimentStorage(uri, writable=True)
        with pytest.raises(ExperimentError, match="this very process") as info:
            second.acquire_driver_lock()
        assert uri in str(info.value)
        assert not second.path.parent.exists(), "a refused writer leaves no staging copy"
        # The writer pulls the experiment again (a resume's pull): the record stays the bucket's.
        third = ExperimentStorage(uri, writable=True)
        assert not (third.path / BUCKET_LOCK_FILE).exists()
        third.discard_stage()
    assert _object(uri, BUCKET_LOCK_FILE) is None  # released: gone from the bucket
    assert ExperimentStorage(uri).live_driver() is None
    capsys.readouterr()
    assert main(["ls", root]) == 0
    assert "INTERRUPTED" in capsys.readouterr().out


def test_a_live_driver_on_another_machine_is_named_and_a_silent_one_is_taken_over(bucket):
    uri = f"{bucket}/exps/e"
    _running_experiment(uri)
    _holder(uri)
    writer = ExperimentStorage(uri, writable=True)
    with pytest.raises(ExperimentError) as info:
        writer.acquire_driver_lock()
    assert "pid 12345 on host 'gpu-node-7'" in str(info.value) and "kill 12345" in str(info.value)
    assert _object(uri, BUCKET_LOCK_FILE)["pid"] == 12345  # left alone
    assert ExperimentStorage(uri).live_driver().pid == 12345

    _holder(uri, heartbeat=time.time() - lock_module.STALE_AFTER_S - 5)  # a lost machine
    assert ExperimentStorage(uri).live_driver() is None
    writer = ExperimentStorage(uri, writable=True)
    with writer.acquire_driver_lock():
        assert _object(uri, BUCKET_LOCK_FILE)["pid"] == os.getpid()
    writer.discard_stage()


def test_on_this_machine_a_gone_or_recycled_pid_holds_nothing_and_a_live_one_is_named(bucket):
    uri = f"{bucket}/exps/e"
    _running_experiment(uri)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    _holder(uri, pid=gone.pid, host=socket.gethostname())  # a SIGKILLed driver's, with a fresh heartbeat
    assert ExperimentStorage(uri).live_driver() is None
    writer = ExperimentStorage(uri, writable=True)
    with writer.acquire_driver_lock():
        assert ExperimentStorage(uri).live_driver().pid == os.getpid()
    writer.discard_stage()

    # A live process of this machine: it lives until the test closes its stdin.
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        # Its pid, in a record written before it started: the pid was recycled, the driver is gone.
        _holder(uri, pid=other.pid, host=socket.gethostname(), started=time.time() - 600)
        assert ExperimentStorage(uri).live_driver() is None
        # In a record written after it started: a live driver on this machine (another cache).
        _holder(uri, pid=other.pid, host=socket.gethostname(), started=time.time())
        assert ExperimentStorage(uri).live_driver().pid == other.pid
        writer = ExperimentStorage(uri, writable=True)
        with pytest.raises(ExperimentError, match=f"pid {other.pid} on host"):
            writer.acquire_driver_lock()
        # Another machine of the same name (another boot id) is judged by its heartbeat.
        _holder(uri, pid=other.pid + 100000, host=socket.gethostname(), boot="another-machine")
        assert ExperimentStorage(uri).live_driver().pid == other.pid + 100000
    finally:
        other.stdin.close()
        other.wait()


def test_a_damaged_record_does_not_block(bucket):
    uri = f"{bucket}/exps/e"
    bucket_name, _, prefix = uri[len("s3://"):].partition("/")
    boto3.client("s3").put_object(Bucket=bucket_name, Key=f"{prefix}/{BUCKET_LOCK_FILE}", Body=b'{"pid": 4')
    assert ExperimentStorage(uri).live_driver() is None
    writer = ExperimentStorage(uri, writable=True)
    with writer.acquire_driver_lock():
        assert _object(uri, BUCKET_LOCK_FILE)["pid"] == os.getpid()
    writer.discard_stage()


def test_of_two_drivers_that_start_in_the_same_instant_the_later_record_wins(bucket, monkeypatch):
    uri = f"{bucket}/exps/e"
    writer = ExperimentStorage(uri, writable=True)
    rival = {"pid": 4242, "host": "gpu-node-8", "started": time.time(), "heartbeat": time.time(), "token": "rival"}
    written = lock_module.BucketRecord.write

    def write_then_rival(self, owner: LockOwner) -> None:
        written(self, owner)
        _put(uri, BUCKET_LOCK_FILE, rival)  # the rival read no record either, and wrote its own after ours

    monkeypatch.setattr(lock_module.BucketRecord, "write", write_then_rival)
    with pytest.raises(ExperimentError, match="pid 4242 on host 'gpu-node-8'"):
        writer.acquire_driver_lock()
    assert _object(uri, BUCKET_LOCK_FILE)["token"] == "rival"  # the winner's record stays


def test_the_heartbeat_reaches_the_bucket_and_stops_at_a_takeover(bucket, tmp_path):
    uri = f"{bucket}/exps/e"
    probe = ExperimentStorage(uri)
    lock = DriverLock(tmp_path / "stage", heartbeat_s=0.05, bucket=probe._bucket_record(), name=uri)
    (tmp_path / "stage").mkdir()
    lock.acquire()
    try:
        first = _object(uri, BUCKET_LOCK_FILE)["heartbeat"]
        wait_for(lambda: _object(uri, BUCKET_LOCK_FILE)["heartbeat"] > first, "a heartbeat in the bucket")
        # Another driver took it over (we looked dead to it), and beats as ours does: a beat
        # that read our record just before may write it over the taker's once.
        def taken() -> bool:
            if lock._bucket_held:
                _holder(uri, token="taker")
            return not lock._bucket_held

        wait_for(taken, "the heartbeat to see the takeover")
        assert _object(uri, BUCKET_LOCK_FILE)["token"] == "taker"
    finally:
        lock.release()
    assert _object(uri, BUCKET_LOCK_FILE)["token"] == "taker"  # not ours to remove


def test_a_driver_whose_heartbeats_stop_reaching_the_bucket_stands_down_within_its_lease(bucket, tmp_path,
                                                                                       monkeypatch):
    uri = f"{bucket}/exps/e"
    monkeypatch.setattr(bucket_lease, "LEASE_S", 0.5)
    (tmp_path / "stage").mkdir()
    lock = DriverLock(tmp_path / "stage", heartbeat_s=0.05, bucket=ExperimentStorage(uri)._bucket_record(), name=uri)
    lock.acquire()
    try:
        lock.check_standing()  # within its lease
        kept = _object(uri, BUCKET_LOCK_FILE)

        def unreachable(self, owner):
            raise ConnectionError("the bucket is out of reach")

        monkeypatch.setattr(lock_module.BucketRecord, "write", unreachable)
        wait_for(lambda: lock.stood_down, "the driver to stand down")
        with pytest.raises(StorageError, match=r"(?s)none of its heartbeats reached .* for 0 s.*resume"):
            lock.check_standing()
        monkeypatch.undo()  # the bucket is back: a driver that stood down writes nothing more
        lock._beat_bucket()
        assert _object(uri, BUCKET_LOCK_FILE)["token"] == kept["token"]
        with pytest.raises(StorageError):
            lock.check_standing()
    finally:
        lock.release()
    # Removed at its release, a few seconds after: nobody may take it for dead before a minute.
    assert _object(uri, BUCKET_LOCK_FILE) is None


def test_a_driver_taken_over_uploads_nothing_more_and_keeps_its_copy_with_a_warning(bucket, caplog):
    uri = f"{bucket}/exps/e"
    writer = ExperimentStorage(uri, writable=True)
    lock = writer.acquire_driver_lock()
    try:
        writer.create()
        writer.write_experiment({"name": "e", "status": "RUNNING", "metric": "loss", "mode": "min"})
        writer.sync()
        assert _object(uri, "experiment.json")["status"] == "RUNNING"
        _holder(uri, token="taker")  # another driver took it over (this one looked dead to it)
        lock._beat_bucket()  # the next heartbeat finds it
        assert lock.stood_down is not None and "pid 12345 on host 'gpu-node-7'" in lock.stood_down
        writer.write_experiment({"name": "e", "status": "INTERRUPTED", "metric": "loss", "mode": "min"})
        with pytest.raises(StorageError, match=r"(?s)took it over.*Do not copy"):
            writer.check_standing()  # the driver's loop asks at each turn
        with pytest.raises(StorageError, match="took it over"):
            writer.close()  # the run's last upload
    finally:
        lock.release()
    assert _object(uri, "experiment.json")["status"] == "RUNNING"  # the other driver's records stand
    assert _object(uri, BUCKET_LOCK_FILE)["token"] == "taker"
    writer.discard_stage()
    assert writer.path.is_dir()
    assert "Do not copy that into the bucket" in caplog.text


def test_a_run_that_reached_the_bucket_removes_the_local_copies_dead_drivers_left(bucket, tmp_path):
    """A SIGKILLed driver of a bucket's experiment leaves its local copy in
    ~/.cache/raytuner/stage, one per crash, for good. Once a later run has put everything in
    the bucket (it went on from there), those go; a live driver's copy, a copy made just now
    (a driver starting, before its lock), and another experiment's stay."""
    from raytuner._storage import remote

    uri = f"{bucket}/exps/e"
    _running_experiment(uri)

    def left_copy(uri: str, age_s: float):
        copy = remote.stage_dir(uri)
        copy.mkdir()
        (copy / "results.jsonl").write_text("{}\n")
        old = time.time() - age_s
        os.utime(copy.parent, (old, old))
        return copy

    dead = left_copy(uri, 3600)
    code = ("import sys; from raytuner._storage.lock import DriverLock; DriverLock(sys.argv[1]).acquire(); "
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code, str(dead)]).returncode == -signal.SIGKILL
    young = left_copy(uri, 5)
    other = left_copy(f"{bucket}/exps/other", 3600)
    live = left_copy(uri, 3600)
    held = lock_module.DriverLock(live).acquire()
    try:
        writer = ExperimentStorage(uri, writable=True)
        with writer.acquire_driver_lock():
            writer.close()
        writer.discard_stage()
        assert not dead.parent.exists() and not writer.path.parent.exists()
        assert young.is_dir() and other.is_dir() and live.is_dir()
    finally:
        held.release()
