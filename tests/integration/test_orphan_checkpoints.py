"""A worker whose driver run no longer holds the experiment (the driver was SIGKILLed and a
resume took the experiment over while the worker lived on) stores no checkpoint into the
trial folders, and a resume removes the checkpoints such workers left under trials that
have no files of their own; in a folder and in a bucket."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage import remote
from raytuner._storage.experiment import ExperimentStorage

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _read(location: str) -> bytes:
    if remote.is_uri(location):
        fs, path = remote.filesystem(location)
        return fs.cat_file(path)
    return Path(location).read_bytes()


def _write(location: str, data: bytes) -> None:
    if remote.is_uri(location):
        fs, path = remote.filesystem(location)
        fs.pipe_file(path, data)
    else:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        Path(location).write_bytes(data)


def _holds(location: str) -> bool:
    return remote.holds_files(location) if remote.is_uri(location) else Path(location).is_dir()


def taken_over_after_step_1(config):
    """Three steps, a checkpoint at each. Before its checkpoint of step 2 is stored, another
    driver run takes the experiment over: its experiment.json names another run, as a
    resume writes it once this run's driver was killed."""
    for step in (1, 2, 3):
        folder = Path(tempfile.mkdtemp())
        (folder / "step").write_text(str(step))
        if step == 2:
            first = f"{config['experiment']}/trials/{rt.get_context().trial_id}/checkpoint_000001"
            wait_for(lambda: _holds(first), "checkpoint 1 in storage")  # noqa: B023 - stored behind its report
            experiment = f"{config['experiment']}/experiment.json"
            _write(experiment, json.dumps({**json.loads(_read(experiment)), "run_id": "a-resumed-run"}).encode())
        rt.report({"loss": 1 / step, "step": step}, checkpoint=folder)


def _folders(experiment: str, trial_id: str) -> list[str]:
    """The names under the trial's folder in storage that are checkpoints, copies, or being made."""
    if remote.is_uri(experiment):
        fs, path = remote.filesystem(f"{experiment}/trials/{trial_id}")
        fs.invalidate_cache()
        names = {key[len(path):].strip("/").split("/")[0] for key in fs.find(path)}
    else:
        names = {p.name for p in Path(experiment, "trials", trial_id).iterdir()}
    return sorted(n for n in names if "checkpoint" in n or n.startswith("clone_"))


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_worker_whose_run_was_taken_over_stores_no_more_checkpoints(where, storage, request):
    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    experiment = f"{root}/orphan"
    results = rt.Tuner(taken_over_after_step_1, space={"experiment": experiment}, metric="loss", num_trials=1,
                       checkpoints_to_keep=None, storage_path=root, name="orphan", verbose=0,
                       tensorboard=False).fit()
    (trial,) = results.trials
    # Its checkpoints of steps 2 and 3 were never put in the trial's folder, nor anything
    # half made; the reports naming them never left the worker, which ended quietly.
    assert _folders(experiment, trial.trial_id) == ["checkpoint_000001"]
    assert [row["step"] for row in ExperimentStorage(experiment).read_results(trial.trial_id)] == [1]
    assert trial.status is TrialStatus.STOPPED and trial.error is None


def checkpointed(config):
    for step in (1, 2):
        folder = Path(tempfile.mkdtemp())
        (folder / "step").write_text(str(step))
        rt.report({"loss": 1 / step}, checkpoint=folder)


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_resume_removes_checkpoints_under_a_trial_without_files_of_its_own(where, storage, request, tmp_path):
    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    experiment = f"{root}/leftovers"
    rt.Tuner(checkpointed, space={"k": 0}, metric="loss", num_trials=1, storage_path=root, name="leftovers", verbose=0,
             tensorboard=False).fit()
    # What a worker of a killed driver leaves: its trial's checkpoints reached storage, the
    # trial's own files (config.json, trial.json, results.jsonl) never did.
    for name in ("checkpoint_000003", "clone_2/checkpoint_000001"):
        _write(f"{experiment}/trials/00001/{name}/step", b"3")
    assert _folders(experiment, "00001") == ["checkpoint_000003", "clone_2"]
    results = rt.Tuner.resume(experiment, checkpointed, verbose=0, tensorboard=False)
    assert _folders(experiment, "00001") == []
    assert _folders(experiment, "00000") == ["checkpoint_000002"]  # a trial's own is kept
    assert [t.trial_id for t in results.trials] == ["00000"]


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_checkpoint_a_dead_runs_worker_stores_during_a_resume_is_removed(where, storage, request, tmp_path,
                                                                          monkeypatch):
    from raytuner._storage import trial_files

    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    experiment = f"{root}/window"
    rt.Tuner(checkpointed, space={"k": 0}, metric="loss", num_trials=1, storage_path=root, name="window", verbose=0,
             tensorboard=False).fit()
    dead_run = json.loads(_read(f"{experiment}/experiment.json"))["run_id"]
    orphan = trial_files.ExperimentLocation(experiment, dead_run, "node")
    source = tmp_path / "orphan"
    source.mkdir()
    (source / "step").write_text("7")

    def store_as_the_dead_run(name: str) -> None:
        trial_files.put(source, f"{experiment}/trials/00000/{name}",
                        check=lambda: trial_files.refuse_if_taken_over(orphan))

    # A worker of the dead run stores a checkpoint once the resume has read the folders and
    # taken the driver lock, before the resumed run is under way.
    acquire = ExperimentStorage.acquire_driver_lock

    def acquire_then_orphan_stores(self):
        lock = acquire(self)
        store_as_the_dead_run("checkpoint_000007")
        return lock

    monkeypatch.setattr(ExperimentStorage, "acquire_driver_lock", acquire_then_orphan_stores)
    results = rt.Tuner.resume(experiment, checkpointed, num_trials=2, verbose=0, tensorboard=False)
    monkeypatch.undo()
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 2
    # No record names it: it went before the resumed run began, and no later store lands.
    assert _folders(experiment, "00000") == ["checkpoint_000002"]
    with pytest.raises(trial_files.TakenOver):
        store_as_the_dead_run("checkpoint_000008")
    assert _folders(experiment, "00000") == ["checkpoint_000002"]


def _recorded(results: str) -> bool:
    try:
        return b'"step"' in _read(results)
    except FileNotFoundError:
        return False


def lost_after_step_1(config):
    """Its first attempt's worker dies after step 1, leaving what a lost worker leaves: a
    checkpoint it put in place whose report never left it, and one it was still relaying."""
    if rt.get_checkpoint() is not None:  # the retry, from checkpoint 1
        rt.report({"loss": 0.5, "step": 2})
        return
    folder = Path(tempfile.mkdtemp())
    (folder / "step").write_text("1")
    rt.report({"loss": 1.0, "step": 1}, checkpoint=folder)
    trial = f"{config['experiment']}/trials/{rt.get_context().trial_id}"
    wait_for(lambda: _recorded(f"{trial}/results.jsonl"), "the report of step 1 recorded")
    _write(f"{trial}/checkpoint_000002/step", b"2")  # in a bucket, also what a half-made upload leaves
    if not remote.is_uri(trial):  # a relay gathers beside the trial's checkpoints only in a folder
        _write(f"{trial}/.checkpoint-relay-0123abcd/step", b"3")
    os._exit(1)


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_run_that_completes_removes_what_its_lost_workers_left(where, storage, request):
    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    experiment = f"{root}/lost"
    results = rt.Tuner(lost_after_step_1, space={"experiment": experiment}, metric="loss", num_trials=1,
                       max_failures=1, checkpoints_to_keep=None, storage_path=root, name="lost", verbose=0,
                       tensorboard=False).fit()
    (trial,) = results.trials
    assert trial.status is TrialStatus.COMPLETED and trial.checkpoint is not None
    assert [row["step"] for row in ExperimentStorage(experiment).read_results(trial.trial_id)] == [1, 2]
    # Not left for a resume that a completed experiment may never have.
    assert _folders(experiment, trial.trial_id) == ["checkpoint_000001"]
