"""The seam's shared half in one process (no Ray): how a worker puts a checkpoint into a
folder location and reads it back, how it tells that it sees the experiment's storage, and
what the driver's ExperimentStorage lists, deletes and cleans up. The bucket side is in
test_remote_storage.py; the relay through the driver's node and the workers in
tests/integration."""

from __future__ import annotations

import json
import os

import pytest

from raytuner._formats import checkpoint_name
from raytuner._storage import trial_files
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation
from raytuner.errors import ReportError


def folder(path, files):
    path.mkdir(parents=True)
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


def experiment(tmp_path, run_id="run-1"):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "run_id": run_id})
    storage.write_config("00001", {})
    return storage, ExperimentLocation(str(storage.path), run_id, "node")


def test_a_checkpoint_is_put_whole_under_its_name_and_read_back_as_a_private_copy(tmp_path):
    storage, where = experiment(tmp_path)
    src = folder(tmp_path / "src", {"weights.bin": b"\x00\x01", "sub/meta.txt": b"epoch=3", "empty": b""})
    target = where.checkpoint(CheckpointRef("00001", checkpoint_name(3)))
    assert target == str(storage.trial_path("00001") / "checkpoint_000003")
    trial_files.put(src, target)
    stored = storage.trial_path("00001") / "checkpoint_000003"
    assert sorted(trial_files.files_of(stored)) == ["empty", "sub/meta.txt", "weights.bin"]
    assert (stored / "sub" / "meta.txt").read_bytes() == b"epoch=3"
    assert src.is_dir()  # copied: the trainable may reuse its folder
    assert trial_files.partial_folders(storage.trial_path("00001")) == []  # nothing half-done is left

    copy = trial_files.get(target, tmp_path / "restored")
    assert (copy / "weights.bin").read_bytes() == b"\x00\x01"
    (copy / "weights.bin").write_bytes(b"changed")  # the restored copy is the trial's own
    assert (stored / "weights.bin").read_bytes() == b"\x00\x01"


def test_a_checkpoint_of_the_same_name_is_replaced_whole(tmp_path):
    # A lost attempt may have left a checkpoint the new attempt stores again: none of the
    # old files may remain in it.
    storage, where = experiment(tmp_path)
    target = where.checkpoint(CheckpointRef("00001", checkpoint_name(2)))
    trial_files.put(folder(tmp_path / "old", {"a": b"old", "stale": b"x"}), target)
    trial_files.put(folder(tmp_path / "new", {"a": b"new"}), target)
    assert trial_files.files_of(storage.trial_path("00001") / "checkpoint_000002") == ["a"]
    assert (storage.trial_path("00001") / "checkpoint_000002" / "a").read_bytes() == b"new"


def test_a_handed_out_folder_is_moved_into_place_without_a_copy(tmp_path):
    storage, where = experiment(tmp_path)
    new = trial_files.new_folder(where, "00001")
    assert new.parent == storage.trial_path("00001") and new.name.startswith(".")  # hidden until stored
    (new / "model.keras").write_bytes(b"m" * 1000)
    inode = (new / "model.keras").stat().st_ino
    trial_files.put(new, where.checkpoint(CheckpointRef("00001", checkpoint_name(1))), move=True)
    stored = storage.trial_path("00001") / "checkpoint_000001" / "model.keras"
    assert stored.stat().st_ino == inode and not new.exists()


def test_a_moved_folder_on_another_file_system_is_copied_then_removed(tmp_path, monkeypatch):
    storage, where = experiment(tmp_path)
    src = folder(tmp_path / "elsewhere", {"w": b"1"})

    def cross_device(a, b):
        raise OSError(18, "Invalid cross-device link")  # errno.EXDEV

    real_rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: cross_device(a, b) if os.fspath(a) == os.fspath(src) else real_rename(a, b))
    trial_files.put(src, where.checkpoint(CheckpointRef("00001", checkpoint_name(4))), move=True)
    assert (storage.trial_path("00001") / "checkpoint_000004" / "w").read_bytes() == b"1"
    assert not src.exists()


def test_a_failed_copy_leaves_neither_the_checkpoint_nor_a_partial_folder(tmp_path, monkeypatch):
    storage, where = experiment(tmp_path)
    src = folder(tmp_path / "src", {"w": b"1"})

    def disk_full(root):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trial_files, "fsync_tree", disk_full)
    with pytest.raises(OSError, match="No space left"):
        trial_files.put(src, where.checkpoint(CheckpointRef("00001", checkpoint_name(5))))
    assert storage.checkpoint_folders("00001") == []
    assert trial_files.partial_folders(storage.trial_path("00001")) == []


def test_a_report_of_something_that_is_no_folder_names_it(tmp_path):
    with pytest.raises(ReportError, match="is not a directory"):
        trial_files.check_folder(tmp_path / "nope")


def test_a_worker_sees_the_storage_only_where_experiment_json_names_its_run(tmp_path, monkeypatch):
    monkeypatch.delenv(trial_files.UNSHARED_ENV, raising=False)
    storage, where = experiment(tmp_path, run_id="this-run")
    assert trial_files.sees(where)
    # The same path from an earlier run (or another machine's folder of that name) is not it.
    assert not trial_files.sees(ExperimentLocation(where.location, "another-run", "node"))
    assert not trial_files.sees(ExperimentLocation(str(tmp_path / "missing"), "this-run", "node"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "experiment.json").write_text("{cut")
    assert not trial_files.sees(ExperimentLocation(str(tmp_path / "bad"), "this-run", "node"))
    # A node told that its view of the storage is not to be trusted relays instead.
    monkeypatch.setenv(trial_files.UNSHARED_ENV, "1")
    assert not trial_files.sees(where)


def test_the_driver_lists_deletes_and_cleans_up_checkpoint_folders(tmp_path):
    storage, where = experiment(tmp_path)
    names = [checkpoint_name(i) for i in (1, 2, 3)]
    for name in names:
        trial_files.put(folder(tmp_path / name, {"w": name.encode()}), where.checkpoint(CheckpointRef("00001", name)))
    assert storage.checkpoint_folders("00001") == names
    storage.delete_checkpoints("00001", ["checkpoint_000001", "config.json"])  # only checkpoint folders go
    assert storage.checkpoint_folders("00001") == names[1:]
    assert (storage.trial_path("00001") / "config.json").is_file()

    # What a crash leaves while a checkpoint is put in place: hidden, never listed, removed on resume.
    partial = trial_files.new_folder(where, "00001")
    (partial / "half").write_bytes(b"h")
    assert storage.checkpoint_folders("00001") == names[1:]
    assert storage.remove_partial_checkpoints("00001") == [partial.name]
    assert not partial.exists() and storage.checkpoint_folders("00001") == names[1:]
    assert json.loads((storage.path / "experiment.json").read_text())["run_id"] == "run-1"


def test_a_checkpoint_the_storage_refuses_stops_the_run_instead_of_failing_the_trial(tmp_path, monkeypatch):
    import errno

    from raytuner._worker.checkpoints import TrialCheckpoints
    from raytuner._worker.protocol import TrialSpec
    from raytuner.errors import StorageError

    storage, where = experiment(tmp_path)
    spec = TrialSpec(trial_id="00001", experiment_name="exp", config={}, trainable=[], metric=None, resource_attr=None,
                     stop=None, decide_at=float("inf"), storage_dir=str(storage.trial_path("00001")), storage=where)
    checkpoints = TrialCheckpoints(spec, lambda: tmp_path / "scratch")
    src = folder(tmp_path / "src", {"weights.bin": b"w"})

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst / "weights.bin"))

    monkeypatch.setattr(trial_files, "copy_tree", full)
    with pytest.raises(StorageError, match=r"Cannot write .*checkpoint_000002.*No space left on device \(ENOSPC\)\. "
                                           r"The run stopped.*free space on that disk.*resume") as refused:
        checkpoints.stage(src, 2)
    assert refused.value.__cause__ is None and refused.value.errno == errno.ENOSPC

    def vanished(src, dst):  # not the storage's refusal: the trial's own failure, as it is
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(src / "weights.bin"))

    monkeypatch.setattr(trial_files, "copy_tree", vanished)
    with pytest.raises(FileNotFoundError):
        checkpoints.stage(src, 3)
    assert trial_files.partial_folders(storage.trial_path("00001")) == []
