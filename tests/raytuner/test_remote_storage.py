"""Cloud storage through ExperimentStorage, against moto's S3 server over HTTP (no Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

import raytuner as rt
from raytuner._storage import remote
from raytuner._formats import checkpoint_name
from raytuner._storage import trial_files
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation
from raytuner.errors import ConfigError, ExperimentError


def _train(config):
    rt.report({"loss": config["x"]})


def _objects(uri: str) -> dict[str, bytes]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    client = boto3.client("s3")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix):].lstrip("/"): client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def test_a_uri_is_never_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert remote.is_uri("s3://b/p") and remote.is_uri("gs://b") and not remote.is_uri("file:///tmp/x")
    assert not remote.is_uri("results") and not remote.is_uri(tmp_path)
    # pathlib turns "s3://bucket/p" into "s3:/bucket/p": refused instead of made into a folder
    from pathlib import Path

    with pytest.raises(ConfigError, match="Pass the URI as a string"):
        rt.Tuner(_train, space={"x": 1}, storage_path=Path("s3://bucket/p"))
    assert list(tmp_path.iterdir()) == []


def test_unknown_scheme_and_missing_package_name_the_fix():
    with pytest.raises(ConfigError, match=r"fsspec knows no file system for 'nosuch://'"):
        rt.Tuner(_train, space={"x": 1}, storage_path="nosuch://bucket/p")
    if remote._known_protocol("gs"):
        try:
            import gcsfs  # noqa: F401
        except ImportError:
            with pytest.raises(ConfigError, match="pip install gcsfs"):
                rt.Tuner(_train, space={"x": 1}, storage_path="gs://bucket/p")


def test_a_missing_bucket_is_refused_before_anything_runs(bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"s3://no-such-bucket-here/exps.*bucket 'no-such-bucket-here' does not exist"):
        rt.Tuner(_train, space={"x": 1}, storage_path="s3://no-such-bucket-here/exps")
    assert not any(tmp_path.glob("s3*"))


def test_missing_credentials_are_named(s3_server, tmp_path):
    # A fresh process: credentials are resolved once per client, as in a user's run.
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    code = (
        "import raytuner as rt\n"
        "from raytuner.errors import ConfigError\n"
        "try:\n"
        "    rt.Tuner(lambda c: None, space={'x': 1}, storage_path='s3://some-bucket/exps')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "s3://some-bucket/exps" in out.stdout and "no credentials" in out.stdout, out.stdout + out.stderr


def test_writes_reach_the_bucket_and_readers_see_them(bucket):
    uri = f"{bucket}/exps/e1"
    writer = ExperimentStorage(uri, writable=True)
    assert not writer.holds_files() and writer.uri == uri
    writer._uploader.interval_s = 3600  # no background pass: only sync() and the seam's own pushes upload
    writer.create()
    writer.write_experiment({"name": "e1", "metric": "loss", "status": "RUNNING"})
    writer.write_config("00000", {"x": 1})
    writer.write_trial("00000", {"status": "RUNNING"})
    writer.append_results("00000", [{"loss": 1.0, "iteration": 1}])
    writer.sync()
    stored = _objects(uri)
    assert json.loads(stored["experiment.json"])["status"] == "RUNNING"
    assert stored["trials/00000/results.jsonl"].count(b"\n") == 1

    # An append goes up whole; a reader pulls only what changed.
    writer.append_results("00000", [{"loss": 0.7, "iteration": 2}])
    writer.close()
    reader = ExperimentStorage(uri)
    assert reader.path != writer.path
    assert [r["loss"] for r in reader.read_results("00000")] == [1.0, 0.7]
    assert remote.pull(uri, reader.path) == 0  # nothing changed since


def _quiet_writer(uri: str) -> ExperimentStorage:
    """A driver's storage with no background upload pass: only sync() and the storage's own
    pushes upload."""
    writer = ExperimentStorage(uri, writable=True)
    writer._uploader.interval_s = 3600
    writer.create()
    writer.write_experiment({"name": uri.rsplit("/", 1)[-1], "run_id": "run-a"})
    return writer


def test_workers_put_checkpoints_in_the_bucket_and_the_driver_only_lists_and_deletes_them(bucket, tmp_path):
    uri = f"{bucket}/exps/e2"
    writer = _quiet_writer(uri)
    writer.write_config("00000", {"x": 1})
    writer.sync()
    where = ExperimentLocation(uri, "run-a", "node")
    assert trial_files.sees(where)  # a worker anywhere with credentials sees this run's bucket
    assert not trial_files.sees(ExperimentLocation(uri, "run-b", "node"))

    # A worker uploads each checkpoint before it reports it; an old partial upload of the
    # same name (a lost attempt's) leaves nothing behind.
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "weights").write_bytes(b"w1")
    (src / "sub" / "meta").write_bytes(b"m")
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "junk").write_bytes(b"j")
    trial_files.put(stale, where.checkpoint(CheckpointRef("00000", checkpoint_name(3))))
    for iteration in (3, 4):
        trial_files.put(src, where.checkpoint(CheckpointRef("00000", checkpoint_name(iteration))))
    stored = _objects(uri)
    assert stored["trials/00000/checkpoint_000003/weights"] == b"w1" and "trials/00000/checkpoint_000003/junk" not in stored
    assert stored["trials/00000/checkpoint_000004/sub/meta"] == b"m"
    assert not (writer.trial_path("00000") / "checkpoint_000003").exists()  # never through the local copy

    # The driver lists them in the bucket, and deletes one only after uploading the row
    # that commits a newer one.
    assert writer.checkpoint_folders("00000") == ["checkpoint_000003", "checkpoint_000004"]
    writer.append_results("00000", [{"loss": 0.5, "iteration": 4, "checkpoint": "checkpoint_000004"}])
    writer.delete_checkpoints("00000", ["checkpoint_000003"])
    stored = _objects(uri)
    assert not any(key.startswith("trials/00000/checkpoint_000003") for key in stored)
    assert b"checkpoint_000004" in stored["trials/00000/results.jsonl"]
    assert writer.checkpoint_folders("00000") == ["checkpoint_000004"]

    # A worker restarting from it reads it from the bucket; Results show it by its URI.
    copy = trial_files.get(where.checkpoint(CheckpointRef("00000", "checkpoint_000004")), tmp_path / "restored")
    assert (copy / "sub" / "meta").read_bytes() == b"m"
    writer.close()
    assert "trials/00000/checkpoint_000004/weights" in _objects(uri)  # the uploader deletes nothing it did not put

    # A resumed writer pulls no checkpoint into its copy, yet lists them; nor does a reader
    # (`raytuner show` of a bucket downloaded every kept checkpoint into ~/.cache, for good),
    # and the checkpoint files a reader before fetched into the cache go.
    resumed = ExperimentStorage(uri, writable=True)
    assert not (resumed.trial_path("00000") / "checkpoint_000004").exists()
    assert resumed.checkpoint_folders("00000") == ["checkpoint_000004"]
    resumed.close()
    cache = remote.cache_dir("read", uri)
    remote.pull(uri, cache)  # as readers did
    assert (cache / "trials/00000/checkpoint_000004/sub/meta").read_bytes() == b"m"
    reader = ExperimentStorage(uri)
    assert not (reader.trial_path("00000") / "checkpoint_000004").exists()
    assert (reader.trial_path("00000") / "config.json").is_file()
    assert reader.checkpoint_folders("00000") == ["checkpoint_000004"] and reader.checkpointed_trials() == ["00000"]


@pytest.mark.parametrize("moment", ["between the puts", "during the scan"])
def test_a_pass_never_puts_a_trials_record_ahead_of_its_rows(bucket, monkeypatch, moment):
    """The driver appends a trial's last row, then writes its trial.json (COMPLETED). An upload
    pass that meets those writes half-way (between its puts; or in its scan, after it looked
    at the results, before the record) must not put the new record without the row: a head
    lost right after would leave the bucket a COMPLETED trial short of its budget, for good."""
    uri = f"{bucket}/exps/race"
    writer = _quiet_writer(uri)
    writer.write_config("00000", {"x": 1})
    writer.write_trial("00000", {"trial_id": "00000", "status": "RUNNING", "iteration": 1})
    writer.append_results("00000", [{"loss": 1.0, "iteration": 1}])
    writer.sync()
    uploader, finished, last = writer._uploader, [], 1

    def finish() -> None:  # the driver, meanwhile: the last row, then the record
        if not finished:
            finished.append(True)
            writer.append_results("00000", [{"loss": 0.8, "iteration": last + 1}])
            writer.write_trial("00000", {"trial_id": "00000", "status": "COMPLETED", "iteration": last + 1})

    if moment == "between the puts":
        last = 2  # both files changed since the last pass
        writer.append_results("00000", [{"loss": 0.9, "iteration": 2}])
        writer.write_trial("00000", {"trial_id": "00000", "status": "RUNNING", "iteration": 2})
        put = uploader._fs.put

        def put_then_finish(*args, **kwargs):
            put(*args, **kwargs)
            finish()

        monkeypatch.setattr(uploader._fs, "put", put_then_finish)
    else:  # neither changed; the scan meets results.jsonl first (whatever the folder's order), then the writes
        walk, stat = os.walk, os.stat

        def ordered_walk(top, *args, **kwargs):
            for folder, dirs, files in walk(top, *args, **kwargs):
                yield folder, dirs, sorted(files, key=lambda name: name != "results.jsonl")

        def stat_then_finish(path, *args, **kwargs):
            found = stat(path, *args, **kwargs)
            if str(path).endswith("results.jsonl"):
                finish()
            return found

        monkeypatch.setattr(os, "walk", ordered_walk)
        monkeypatch.setattr(os, "stat", stat_then_finish)
    uploader.sync()  # one pass; then the head is lost
    monkeypatch.undo()
    stored = _objects(uri)
    record = json.loads(stored["trials/00000/trial.json"])
    rows = [json.loads(line) for line in stored["trials/00000/results.jsonl"].splitlines()]
    assert finished and record["iteration"] <= len(rows), (record, rows)


def test_a_clones_copy_in_the_bucket_replaces_what_was_there_under_a_trial_the_bucket_records(bucket, tmp_path):
    uri = f"{bucket}/exps/e3"
    writer = _quiet_writer(uri)
    writer.sync()
    for trial_id in ("00000", "00001"):
        writer.write_config(trial_id, {"x": 1})
    donor, lost = tmp_path / "donor", tmp_path / "lost"
    for folder, names in ((donor, ("weights", "meta")), (lost, ("weights", "junk"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes(f"{folder.name} {name}".encode())
    trial_files.put(donor, f"{uri}/trials/00000/checkpoint_000003")
    # What a copy that a crash cut short left under the same name must not mix into the new one.
    trial_files.put(lost, f"{uri}/trials/00001/clone_2/checkpoint_000003")
    writer.clone_checkpoint("00000", "checkpoint_000003", "00001", "clone_2/checkpoint_000003")
    stored = _objects(uri)
    assert {key: data for key, data in stored.items() if "/clone_2/" in key} == {
        "trials/00001/clone_2/checkpoint_000003/weights": b"donor weights",
        "trials/00001/clone_2/checkpoint_000003/meta": b"donor meta"}
    # The bucket records the trial the copy lies under, so a resume would find (and, if no
    # record named it, remove) a copy cut short there.
    assert "trials/00001/config.json" in stored
    assert writer.checkpoint_folders("00001") == ["clone_2/checkpoint_000003"]
    writer.close()


def test_a_clones_copy_of_a_checkpoint_deleted_by_hand_leaves_nothing_in_the_bucket(bucket, tmp_path):
    uri = f"{bucket}/exps/e4"
    writer = _quiet_writer(uri)
    writer.write_config("00001", {"x": 1})
    lost = tmp_path / "lost"
    lost.mkdir()
    (lost / "junk").write_bytes(b"a copy a crash cut short")
    trial_files.put(lost, f"{uri}/trials/00001/clone_2/checkpoint_000003")
    assert writer.has_checkpoint("00001", "clone_2/checkpoint_000003")
    assert not writer.has_checkpoint("00000", "checkpoint_000003")  # never stored, or deleted by hand
    assert writer.clone_checkpoint("00000", "checkpoint_000003", "00001", "clone_2/checkpoint_000003") is False
    assert not [key for key in _objects(uri) if "/clone_2/" in key]
    assert not writer.has_checkpoint("00001", "clone_2/checkpoint_000003")
    assert writer.checkpoint_folders("00001") == []
    writer.close()


def test_an_experiment_that_is_not_there(bucket):
    with pytest.raises(ExperimentError, match=f"No experiment at {bucket}/nothing"):
        ExperimentStorage(f"{bucket}/nothing").read_experiment()
