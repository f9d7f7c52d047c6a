"""A write the storage refuses (disk full, read-only file system, permission) is one clear
:class:`raytuner.StorageError` naming the file, the cause and how to continue; what was
written before stays whole. The run-level behaviour (the experiment ends INTERRUPTED,
resume completes it) is in tests/integration/test_crash_harness.py, on a real full disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

import raytuner as rt
from raytuner._display import cli_command
from raytuner._storage import faults
from raytuner._storage.experiment import ExperimentStorage
from raytuner.errors import ExperimentError, StorageError

from tests._helpers import tmpfs


@pytest.fixture
def fault():
    """Arm the fault hook in this process (as RAYTUNER_FAULT_AFTER_WRITES would); disarmed after."""
    yield faults.reset
    faults.reset(None)


def test_a_full_disk_is_one_clear_error_and_leaves_what_was_written(tmp_path, fault):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "RUNNING"})
    storage.write_config("00000", {"x": 1})
    storage.append_results("00000", [{"loss": 1.0, "iteration": 1}])
    fault("2:enospc")  # the second write from now on fails, and every one after it
    storage.append_results("00000", [{"loss": 0.5, "iteration": 2}])
    with pytest.raises(StorageError) as caught:
        storage.append_results("00000", [{"loss": 0.25, "iteration": 3}])
    error = caught.value
    results = storage.trial_path("00000") / "results.jsonl"
    assert str(error).startswith(f"Cannot write {results}: No space left on device (ENOSPC). The run stopped;")
    assert f"free space on that disk, then continue it with: {cli_command('resume', storage.path)}" in str(error)
    assert error.errno == errno.ENOSPC and error.path == str(results) and isinstance(error, ExperimentError)
    assert error.__suppress_context__ and error.__cause__ is None  # no raw OSError chained to it
    with pytest.raises(StorageError, match="experiment.json: No space left"):
        storage.write_experiment({"name": "exp", "status": "INTERRUPTED"})
    with pytest.raises(StorageError, match="trial.json: No space left"):
        storage.write_trial("00000", {"trial_id": "00000", "status": "RUNNING"})
    fault(None)
    assert [row["loss"] for row in storage.read_results("00000")] == [1.0, 0.5]
    assert json.loads((storage.path / "experiment.json").read_text())["status"] == "RUNNING"
    assert not list(storage.path.rglob(".*.tmp"))  # the temporary files of failed whole-file writes are gone


def test_a_disk_full_for_a_moment_fails_that_write_alone(tmp_path, fault):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_config("00000", {"x": 1})
    fault("2:enospc1")  # the second write from now on fails; the rest find room again
    storage.append_results("00000", [{"loss": 1.0, "iteration": 1}])
    with pytest.raises(StorageError, match="results.jsonl: No space left"):
        storage.append_results("00000", [{"loss": 0.5, "iteration": 2}])
    storage.append_results("00000", [{"loss": 0.25, "iteration": 2}])
    storage.write_trial("00000", {"trial_id": "00000", "status": "RUNNING"})
    assert [row["loss"] for row in storage.read_results("00000")] == [1.0, 0.25]
    assert faults.writes() == 4


def test_a_disk_full_before_the_experiment_started_says_to_run_it_again(tmp_path, fault):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    fault("1:enospc")
    with pytest.raises(StorageError, match=r"The experiment could not start in .*/exp \(the Tuner's storage_path, and "
                                           r"its name\)\. To go on, free space on that disk, or pass storage_path= a "
                                           r"folder this process can write in, then run it again\."):
        storage.save_state("tuner", {"settings": None})
    fault(None)
    assert not storage.holds_files()  # running the script again takes the folder over


def test_a_storage_path_where_no_folder_can_be_made_is_named_when_fit_starts(tmp_path):
    import raytuner as rt

    # /proc takes no folder, whoever asks (the Tuner's checks find a folder there, as root may write in any).
    tuner = rt.Tuner(lambda config: None, space={"x": 1}, storage_path="/proc/raytuner_results", name="e1", verbose=0)
    with pytest.raises(StorageError, match=r"Cannot write /proc/raytuner_results.*could not start in "
                                           r"/proc/raytuner_results/e1 \(the Tuner's storage_path, and its name\)"):
        tuner.fit()


def test_other_causes_say_their_own_fix(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp"})
    denied = storage.storage_error(PermissionError(errno.EACCES, "Permission denied", "/x/trial.json"), tmp_path)
    assert str(denied).startswith("Cannot write /x/trial.json: Permission denied (EACCES).")
    assert "make the folder writable for this user, then continue it with: " in str(denied)


def test_the_hook_kills_in_the_middle_of_a_write(tmp_path):
    """The crash harness's kill: half a line appended, then SIGKILL; readers skip the torn tail."""
    script = (
        "import sys; from raytuner._storage.experiment import ExperimentStorage\n"
        "s = ExperimentStorage(sys.argv[1]); s.create(); s.write_config('00000', {})\n"
        "s.append_results('00000', [{'loss': 1.0, 'iteration': 1}])\n"
        "s.append_results('00000', [{'loss': 0.5, 'iteration': 2, 'note': 'x' * 40}])\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "exp")], capture_output=True, text=True,
                          env={**os.environ, faults.ENV: "3:kill"})
    assert done.returncode == -9 and "not reached" not in done.stdout
    data = (tmp_path / "exp/trials/00000/results.jsonl").read_bytes()
    assert data.count(b"\n") == 1 and len(data.split(b"\n")[1]) > 10  # a line cut short after the first
    assert [row["loss"] for row in ExperimentStorage(tmp_path / "exp").read_results("00000")] == [1.0]


def test_the_hook_can_count_only_the_writes_of_some_paths(tmp_path, fault):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_config("00000", {"x": 1})
    fault("2:enospc:/trial.json")  # aimed at the second trial.json from now on, whatever comes between
    storage.write_trial("00000", {"trial_id": "00000", "status": "RUNNING"})
    storage.append_results("00000", [{"loss": 1.0, "iteration": 1}])
    storage.write_config("00000", {"x": 1})
    assert faults.writes() == 1
    with pytest.raises(StorageError, match=r"trial\.json: No space left"):
        storage.write_trial("00000", {"trial_id": "00000", "status": "COMPLETED"})
    storage.append_results("00000", [{"loss": 0.5, "iteration": 2}])  # still not aimed at
    fault(None)
    assert [row["loss"] for row in storage.read_results("00000")] == [1.0, 0.5]


@pytest.mark.parametrize("text", ["0", "x", "3:explode", "-1:kill"])
def test_a_malformed_hook_is_refused(text):
    with pytest.raises(ValueError, match="RAYTUNER_FAULT_AFTER_WRITES"):
        faults.reset(text)
    faults.reset(None)


@pytest.fixture
def read_only_disk(tmp_path):
    """A real file system (tmpfs) mounted for the test, then made read-only; root only."""
    with tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def test_a_read_only_file_system_names_the_file_and_the_fix(read_only_disk):
    storage = ExperimentStorage(read_only_disk / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "metric": "loss", "status": "RUNNING"})
    storage.write_config("00000", {"x": 1})
    storage.append_results("00000", [{"loss": 1.0, "iteration": 1}])
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_disk)], check=True)
    with pytest.raises(StorageError, match=r"results.jsonl: Read-only file system \(EROFS\).*remount the file "
                                           r"system read-write"):
        storage.append_results("00000", [{"loss": 0.5, "iteration": 2}])
    with pytest.raises(StorageError, match="Read-only file system"):
        ExperimentStorage(read_only_disk / "other").create()
    assert rt.load(read_only_disk / "exp").status == "INTERRUPTED"  # RUNNING, and no driver holds it
    assert [row["loss"] for row in storage.read_results("00000")] == [1.0]
