"""What a worker killed while its trial ran (the experiment's end killed it) was holding
does not outlive the experiment: its scratch folder on its node (the copy of the checkpoint
it restarted from), which the next run on the node removes, and the checkpoint it was
storing in the experiment (a hidden ``.checkpoint*`` folder), which the run's end removes
once the worker is dead."""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from pathlib import Path

import pytest

import raytuner as rt
from raytuner._storage.control import control_store
from raytuner._storage.trial_files import PARTIAL_PREFIX
from raytuner._worker.scratch import OWNER

pytestmark = pytest.mark.usefixtures("ray_cluster")


def restarts_from_its_checkpoint(config):
    """Fails once after a checkpoint, so that its retry restarts from it (a private copy in
    the run's scratch folder). The retry then ends the experiment and waits to be killed
    with it, or finishes."""
    trial_dir = Path(rt.get_context().trial_dir)
    checkpoint = rt.get_checkpoint()
    if checkpoint is None:
        folder = Path(tempfile.mkdtemp())
        (folder / "weights").write_bytes(b"x" * 1_000_000)
        rt.report({"loss": 1.0}, checkpoint=folder)
        raise RuntimeError("failing once, to restart from the checkpoint")
    (trial_dir / "restored-at").write_text(str(checkpoint))
    if config["end"]:
        control_store(trial_dir.parent.parent).submit("end_experiment", origin="test")
        threading.Event().wait()  # until the experiment's end kills this worker
    rt.report({"loss": 0.5})


def _run(storage: Path, name: str, end: bool) -> tuple[rt.Results, Path]:
    results = rt.Tuner(restarts_from_its_checkpoint, space={"end": end}, metric="loss", storage_path=storage,
                       name=name, max_failures=1, verbose=0, tensorboard=False).fit()
    return results, Path((storage / name / "trials" / "00000" / "restored-at").read_text())


def _wait_until_its_process_is_gone(folder: Path) -> None:
    """The folder's lock is free once the process that held it has ended (Ray kills a worker
    a moment after the driver asks)."""
    fd = os.open(folder.parent / OWNER, os.O_RDWR) if (folder.parent / OWNER).exists() else None
    if fd is None:
        return  # no lock: made by the code before scratch folders had one
    locked = threading.Thread(target=fcntl.flock, args=(fd, fcntl.LOCK_EX), daemon=True)
    locked.start()
    locked.join(120)
    assert not locked.is_alive(), f"the worker that made {folder} still holds it after 120 s"
    os.close(fd)


def test_a_killed_trials_copy_of_its_checkpoint_is_removed_by_the_next_run_on_the_node(storage):
    ended, left = _run(storage, "ended", end=True)
    assert ended.trials[0].status is rt.TrialStatus.STOPPED
    assert (left / "weights").stat().st_size == 1_000_000  # the kill left it: its worker could not remove it
    _wait_until_its_process_is_gone(left)

    finished, own = _run(storage, "finished", end=False)
    assert finished.trials[0].status is rt.TrialStatus.COMPLETED
    assert not left.exists(), "the next run's scratch folder removed the killed one's"
    assert not own.exists(), "a run that ends removes its own"


def dies_while_storing(config):
    """Reports, then is killed by the experiment's end in the middle of storing a checkpoint
    (as a store that takes long is): the hidden folder a store fills before it renames it into
    place is there when the worker dies."""
    trial_dir = Path(rt.get_context().trial_dir)
    rt.report({"loss": 1.0})
    partial = trial_dir / f"{PARTIAL_PREFIX}_checkpoint_000002.tmp-0123456789ab"
    partial.mkdir()
    (partial / "weights").write_bytes(b"x" * 1_000_000)
    control_store(trial_dir.parent.parent).submit(config["end"], config.get("args"), origin="test")
    threading.Event().wait()  # until the experiment's end kills this worker


@pytest.mark.parametrize("end", ["end_experiment", "set_limits"])
def test_a_checkpoint_being_stored_when_the_end_killed_its_worker_is_removed(storage, end):
    """Before, only a run that completed after losing a worker tidied up; a time budget's
    end (here set to 0 by a control command) or an end_experiment left the folder for a
    resume that a finished run does not get."""
    args = {"time_budget_s": 0.001} if end == "set_limits" else None
    results = rt.Tuner(dies_while_storing, space={"end": end, "args": args}, metric="loss", storage_path=storage,
                       name=end, verbose=0, tensorboard=False).fit()
    assert results.meta["status"] in ("COMPLETED", "TIMED_OUT")
    assert results.trials[0].status is rt.TrialStatus.STOPPED
    trial_dir = storage / end / "trials" / "00000"
    assert trial_dir.is_dir() and not [p.name for p in trial_dir.iterdir() if p.name.startswith(PARTIAL_PREFIX)]
