"""A trial relaunched live (a retry after a failure) whose checkpoint folder was deleted by
hand meanwhile: it restarts from its newest checkpoint still in storage, else from scratch,
with one warning, on one trajectory; in a folder and in a bucket."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import pytest

import raytuner as rt
from raytuner._storage import remote
from raytuner._storage.experiment import ExperimentStorage

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _holds(location: str) -> bool:
    if remote.is_uri(location):
        return remote.holds_files(location)
    return Path(location).is_dir()


def _delete(location: str) -> None:
    if remote.is_uri(location):
        remote.remove([location])
    else:
        shutil.rmtree(location)


def deleting(config):
    """5 steps, a checkpoint at each. On its first attempt, once its checkpoint of step 3 is
    in storage, it deletes that folder (as by hand) and fails: the retry finds it gone."""
    checkpoint = rt.get_checkpoint()
    start = int((checkpoint / "step").read_text()) if checkpoint is not None else 0
    trial_id = rt.get_context().trial_id
    failed = Path(config["marks"]) / trial_id
    for step in range(start + 1, 6):
        folder = Path(tempfile.mkdtemp())
        (folder / "step").write_text(str(step))
        rt.report({"loss": 1 / step, "step": step, "start": start}, checkpoint=folder)
        if step == 3 and not failed.exists():
            failed.touch()
            stored = f"{config['experiment']}/trials/{trial_id}/checkpoint_000003"
            wait_for(lambda: _holds(stored), "checkpoint 3 in storage")  # noqa: B023 - stored behind the report
            _delete(stored)
            raise RuntimeError("failing once, after deleting checkpoint 3")


@pytest.mark.parametrize("in_bucket, keep", [(False, 2), (True, 1)], ids=["folder-keep2", "bucket-keep1"])
def test_a_retry_whose_checkpoint_was_deleted_restarts_from_the_newest_still_there(
        in_bucket, keep, storage, request, tmp_path, caplog):
    root = request.getfixturevalue("bucket") + "/exps" if in_bucket else str(storage)
    experiment = f"{root}/gone"
    results = rt.Tuner(deleting, space={"marks": str(tmp_path), "experiment": experiment}, metric="loss",
                       num_trials=1, max_failures=1, checkpoints_to_keep=keep, storage_path=root, name="gone",
                       verbose=0, tensorboard=False).fit()
    (trial,) = results.trials
    assert trial.status is rt.TrialStatus.COMPLETED, trial.error
    start = 2 if keep == 2 else 0  # checkpoint 2 is still there with keep=2; keep=1 pruned it
    history = ExperimentStorage(experiment).read_history(trial.trial_id)
    assert [(m["reason"], m["checkpoint"], m["start_iteration"]) for m in history.attempts] == [
        ("start", None, 0), ("retry", f"checkpoint_{start:06d}" if start else None, start)]
    # One trajectory: the rows past the restart point are superseded, steps counted once.
    assert [(row["step"], row["start"], row["attempt"]) for row in history.rows] == (
        [(step, 0, 1) for step in range(1, start + 1)] + [(step, start, 2) for step in range(start + 1, 6)])
    assert trial.iteration == 5
    gone = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "is gone" in r.getMessage()]
    assert gone == [(f"Trial 00000: its checkpoint checkpoint_000003 is gone from {experiment}/trials/00000 (deleted "
                     f"by hand?). It restarts from {f'checkpoint_{start:06d}' if start else 'scratch'}; its reports "
                     "after that are kept in results.jsonl for audit but leave its history.")]


def failing_once(config):
    """5 steps, a checkpoint at each; its first attempt fails after step 3."""
    checkpoint = rt.get_checkpoint()
    start = int((checkpoint / "step").read_text()) if checkpoint is not None else 0
    for step in range(start + 1, 6):
        folder = Path(tempfile.mkdtemp())
        (folder / "step").write_text(str(step))
        rt.report({"loss": 1 / step, "step": step, "start": start}, checkpoint=folder)
        if step == 3 and start == 0:
            raise RuntimeError("failing once")


def test_a_checkpoint_deleted_between_the_relaunchs_check_and_the_workers_read_is_no_failure(
        storage, monkeypatch, caplog):
    """The driver checks a relaunched trial's checkpoint is there, then the worker reads it:
    deleted by hand in between (here right after the check), the worker's CheckpointGoneError
    is answered with a relaunch from the newest one left, no failure counted (its one retry
    was used by its real failure)."""
    from raytuner._driver.controller import Controller

    checked = Controller._stored
    deleted: list[str] = []

    def check_then_delete(self, trial_id, folder):
        held = checked(self, trial_id, folder)
        if held and folder == "checkpoint_000003" and not deleted:
            deleted.append(folder)
            shutil.rmtree(self._storage.trial_path(trial_id) / folder)  # as by hand, just after the check
        return held

    monkeypatch.setattr(Controller, "_stored", check_then_delete)
    results = rt.Tuner(failing_once, space={"x": 1}, metric="loss", num_trials=1, max_failures=1, checkpoints_to_keep=2,
                       storage_path=str(storage), name="race", verbose=0, tensorboard=False).fit()
    (trial,) = results.trials
    assert deleted and trial.status is rt.TrialStatus.COMPLETED, trial.error
    assert trial.error.count("Traceback") == 1 and "failing once" in trial.error  # its one failure only
    history = ExperimentStorage(str(storage / "race")).read_history(trial.trial_id)
    assert [(m["reason"], m["checkpoint"]) for m in history.attempts] == [
        ("start", None), ("retry", "checkpoint_000003"), ("checkpoint gone", "checkpoint_000002")]
    assert [(row["step"], row["start"]) for row in history.rows] == [(1, 0), (2, 0), (3, 2), (4, 2), (5, 2)]
    assert any("checkpoint checkpoint_000003 is gone" in r.getMessage() for r in caplog.records)
