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
