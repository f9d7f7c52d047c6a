"""One live driver per experiment in a bucket, with a real driver process (moto's S3 server):
while it runs, readers say RUNNING and a second driver (a resume, a Tuner of the same name)
is refused naming it; once it is SIGKILLed, readers say INTERRUPTED and a resume on the same
machine goes on at once; a clean end leaves no record in the bucket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.lock import BUCKET_LOCK_FILE
from raytuner.cli import main
from raytuner.errors import ExperimentError

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")

SCRIPT = Path(__file__).with_name("lock_driver.py")


def _keys(uri: str) -> set[str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return {o["Key"][len(prefix) + 1:] for page in pages for o in page.get("Contents", [])}


def _record(uri: str) -> dict:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{BUCKET_LOCK_FILE}")["Body"].read())


def test_a_running_bucket_experiment_is_named_to_a_second_driver_and_a_killed_one_resumes(bucket, tmp_path, capsys):
    root, gate = f"{bucket}/exps", tmp_path / "gate"
    uri = f"{root}/held"
    first = subprocess.Popen([sys.executable, str(SCRIPT), root, str(gate)], start_new_session=True)
    try:
        wait_for(lambda: sum(k.endswith("/results.jsonl") for k in _keys(uri)) >= 2 and BUCKET_LOCK_FILE in _keys(uri),
                 "two trials reported in the bucket", timeout_s=120, process=first)
        assert _record(uri)["pid"] == first.pid

        # Readers see it running (a reader's cache, a listing of the root).
        live = rt.load(uri)
        assert live.status == "RUNNING" and sum(t.status == TrialStatus.RUNNING for t in live.trials) == 2
        capsys.readouterr()
        assert main(["ls", root]) == 0
        assert "RUNNING" in capsys.readouterr().out

        # A resume, and a Tuner of the same name: refused, naming the running driver, before any write.
        before = {k for k in _keys(uri) if k != BUCKET_LOCK_FILE}
        with pytest.raises(ExperimentError, match=f"pid {first.pid} on host"):
            rt.Tuner.resume(uri, verbose=0)
        assert main(["resume", uri]) == 1
        assert f"pid {first.pid} on host" in " ".join(capsys.readouterr().err.split())
        with pytest.raises(ExperimentError, match=f"pid {first.pid} on host"):
            rt.Tuner(lambda config: None, space={}, metric="loss", storage_path=root, name="held", verbose=0,
                     tensorboard=False).fit()
        assert first.poll() is None, "the refused drivers must leave the first one running"
        assert _record(uri)["pid"] == first.pid
        assert {k for k in _keys(uri) if k != BUCKET_LOCK_FILE} >= before
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started
        first.wait()

    assert _record(uri)["pid"] == first.pid  # left behind by the kill ...
    assert rt.load(uri).status == "INTERRUPTED"  # ... and holding nothing: its pid is gone
    gate.touch()
    results = rt.Tuner.resume(uri, verbose=0)  # on the same machine, at once
    assert results.meta["status"] == "COMPLETED"
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 4
    for trial in results.trials:  # one driver wrote each trial: no report twice
        steps = list(results.history(trial.trial_id)["step"])
        assert steps in ([1, 2], [1, 1, 2]), steps
    assert BUCKET_LOCK_FILE not in _keys(uri)  # a clean end removes the record
    assert rt.load(uri).status == "COMPLETED"


def _reports_until_stopped(config):
    step = 0
    while True:  # ends only when the driver stops it
        step += 1
        rt.report({"loss": 1.0 / step})


def test_a_driver_whose_heartbeats_stop_reaching_the_bucket_stops_and_writes_nothing_more(bucket, monkeypatch,
                                                                                         caplog):
    from raytuner._storage import bucket_lease
    from raytuner._storage import lock as lock_module
    from raytuner.errors import StorageError

    uri = f"{bucket}/exps/silent"
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(bucket_lease, "LEASE_S", 1.0)  # 30 s in earnest

    def unreachable(self, owner):
        raise ConnectionError("the bucket is out of reach for the driver's record")

    class Outage(rt.Callback):
        """Once the trials run, the driver's record can no longer be written (the rest of the
        bucket still answers: this driver must stop writing there anyway)."""

        def on_trial_result(self, trial_id, result):
            monkeypatch.setattr(lock_module.BucketRecord, "write", unreachable)

    with pytest.raises(StorageError, match=r"(?s)none of its heartbeats reached .* for 1 s.*Do not copy.*resume"):
        rt.Tuner(_reports_until_stopped, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2,
                 max_concurrent=2, storage_path=f"{bucket}/exps", name="silent", verbose=0, tensorboard=False,
                 callbacks=[Outage()]).fit()
    bucket_name, _, prefix = uri[len("s3://"):].partition("/")
    meta = json.loads(boto3.client("s3").get_object(Bucket=bucket_name, Key=f"{prefix}/experiment.json")["Body"].read())
    assert meta["status"] == "RUNNING"  # as uploaded at the start: its end is not put over what may be another's
    assert BUCKET_LOCK_FILE not in _keys(uri)  # removed as it ended: a resume from this same process is not refused
    assert "Do not copy that into the bucket" in caplog.text  # its local copy is kept, and said so


def test_a_driver_taken_over_on_a_shared_file_system_stops_and_writes_nothing_more(storage, monkeypatch):
    from raytuner._storage import lock as lock_module
    from raytuner.errors import StorageError

    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    folder = storage / "taken"

    class TakeOver(rt.Callback):
        """A driver on another host takes the experiment over once the trials run (this one
        looked dead to it: its heartbeats had not reached the shared folder for a minute)."""

        def on_trial_result(self, trial_id, result):
            # At every report until the driver stops: a heartbeat that read its own record
            # just before may write it over the taker's once (the taker's own beat then finds it).
            record = {**json.loads((folder / "driver.lock").read_text()), "pid": 4242, "host": "other-host",
                      "token": "taker"}
            (folder / "taker.tmp").write_text(json.dumps(record))
            os.replace(folder / "taker.tmp", folder / "driver.lock")  # whole, as a driver writes it

    with pytest.raises(StorageError, match=r"another driver took it over \(pid 4242 on host 'other-host'"):
        rt.Tuner(_reports_until_stopped, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2,
                 max_concurrent=2, storage_path=storage, name="taken", verbose=0, tensorboard=False,
                 callbacks=[TakeOver()]).fit()
    assert json.loads((folder / "driver.lock").read_text())["token"] == "taker"  # its record stays
    assert json.loads((folder / "experiment.json").read_text())["status"] == "RUNNING"  # not this driver's end
    for trial in (folder / "trials").iterdir():  # nor its trials' ends
        assert json.loads((trial / "trial.json").read_text())["status"] in ("PENDING", "RUNNING")
