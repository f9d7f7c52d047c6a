"""The relay of checkpoints through the driver's node, for workers that cannot reach the
experiment's storage: tasks pinned to that node write and read a checkpoint a chunk at a
time (tiny chunks here, so every file spans several), into a folder or a bucket. The sweep
that takes this path from a node told the storage is not shared is in test_multinode.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import ray

from raytuner._formats import checkpoint_name
from raytuner._storage import relay, remote, trial_files
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation

pytestmark = pytest.mark.usefixtures("ray_cluster")

CHUNK = 1000
FILES = {"empty": b"", "one": b"x", "weights.bin": os.urandom(3 * CHUNK + 7), "sub/deeper/meta": b"epoch=3"}


def make_checkpoint(path):
    for rel, data in FILES.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    (path / "assets").mkdir()  # an empty folder (a SavedModel has one) travels too
    return path


def contents(path):
    return {rel: (path / rel).read_bytes() for rel in trial_files.files_of(path)}


def location(path_or_uri, run_id="run"):
    return ExperimentLocation(str(path_or_uri), run_id, ray.get_runtime_context().get_node_id())


def test_a_checkpoint_is_relayed_to_a_folder_and_back_a_chunk_at_a_time(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_config("00003", {})
    where = location(storage.path)
    relay.push(make_checkpoint(tmp_path / "src"), where, "00003", checkpoint_name(2), chunk=CHUNK)
    stored = storage.trial_path("00003") / "checkpoint_000002"
    assert contents(stored) == FILES and (stored / "assets").is_dir()
    assert storage.checkpoint_folders("00003") == ["checkpoint_000002"]
    assert trial_files.partial_folders(storage.trial_path("00003")) == []  # its staging folder was renamed

    back = relay.pull(where, CheckpointRef("00003", "checkpoint_000002"), tmp_path / "restored", chunk=CHUNK)
    assert contents(back) == FILES and (back / "assets").is_dir()


def test_a_relayed_checkpoint_replaces_one_of_the_same_name_whole(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    where = location(storage.path)
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "junk").write_bytes(b"j")
    relay.push(stale, where, "00000", checkpoint_name(1), chunk=CHUNK)
    relay.push(make_checkpoint(tmp_path / "src"), where, "00000", checkpoint_name(1), chunk=CHUNK)
    assert contents(storage.trial_path("00000") / "checkpoint_000001") == FILES


def test_a_checkpoint_that_is_not_there_is_an_error_naming_it(tmp_path):
    where = location(tmp_path / "exp")
    with pytest.raises(ray.exceptions.RayTaskError, match="No checkpoint at .*checkpoint_000009"):
        relay.pull(where, CheckpointRef("00000", checkpoint_name(9)), tmp_path / "restored", chunk=CHUNK)


def test_a_checkpoint_is_relayed_to_a_bucket_and_back(bucket, tmp_path):
    uri = f"{bucket}/exps/relayed"
    where = location(uri)
    relay.push(make_checkpoint(tmp_path / "src"), where, "00001", checkpoint_name(4), chunk=CHUNK)
    back = relay.pull(where, CheckpointRef("00001", checkpoint_name(4)), tmp_path / "restored", chunk=CHUNK)
    assert contents(back) == FILES  # a bucket keeps no empty folders


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_relayed_checkpoint_of_a_run_taken_over_is_not_stored(where, tmp_path, request):
    # A worker of a killed driver, on a node that relays: the tasks on the driver's node
    # outlive the driver, and experiment.json now names the run that resumed the experiment.
    experiment = str(tmp_path / "exp") if where == "folder" else f"{request.getfixturevalue('bucket')}/exps/taken"
    stored = f"{experiment}/trials/00002/{checkpoint_name(1)}"
    if where == "folder":
        Path(experiment).mkdir()
        Path(experiment, "experiment.json").write_text(json.dumps({"run_id": "a-resumed-run"}))
        holds = Path(stored).is_dir
    else:
        fs, path = remote.filesystem(experiment)
        fs.pipe_file(f"{path}/experiment.json", json.dumps({"run_id": "a-resumed-run"}).encode())
        holds = lambda: remote.holds_files(stored)
    assert not relay.push(make_checkpoint(tmp_path / "src"), location(experiment), "00002", checkpoint_name(1),
                          chunk=CHUNK)
    assert not holds()
    if where == "folder":
        assert trial_files.partial_folders(Path(experiment, "trials", "00002")) == []
    # The run that holds the experiment stores as before.
    assert relay.push(make_checkpoint(tmp_path / "src2"), location(experiment, "a-resumed-run"), "00002",
                      checkpoint_name(1), chunk=CHUNK)
    assert holds()


def test_the_driver_node_is_asked_whether_it_reaches_the_experiment(tmp_path):
    """What a driver through Ray Client asks before its first trial (ray_init.check_client_storage):
    the node relays go to reads the experiment's folder, with this run's experiment.json, or
    says why not."""
    experiment = tmp_path / "exp"
    assert "cannot be read here" in relay.unseen_from_driver_node(location(experiment))
    experiment.mkdir()
    (experiment / "experiment.json").write_text(json.dumps({"run_id": "run"}))
    assert relay.unseen_from_driver_node(location(experiment, "another-run")) == "its experiment.json here is another run's"
    assert relay.unseen_from_driver_node(location(experiment)) is None
