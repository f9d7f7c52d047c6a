"""What a trial reported before the run winds up is recorded, also when its reports are
held back by the checkpoint throttle (``checkpoints_to_keep`` set: at most one store a
second): the time budget's end and Ctrl-C first have the workers send what they hold
(``TrialWorker.hurry``) and take it in (controller.SETTLE_S)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus

pytestmark = pytest.mark.usefixtures("ray_cluster")


def checkpoints_every_step(config):
    """A report with a checkpoint every 50 ms; the side file says which rt.report calls returned, and when."""
    trial_dir = Path(rt.get_context().trial_dir)
    for step in range(1, 10_000):
        time.sleep(0.05)
        folder = Path(tempfile.mkdtemp())
        (folder / "step").write_text(str(step))
        rt.report({"loss": 1.0 / step}, checkpoint=folder)
        with open(trial_dir.parent.parent / f"returned-{trial_dir.name}.txt", "a") as side:
            side.write(f"{step} {time.time()}\n")


class CtrlCAt(rt.Callback):
    """Ctrl-C (KeyboardInterrupt on the driver) at the ``n``-th result the driver takes in."""

    def __init__(self, n: int):
        self.left, self.at = n, None

    def on_trial_result(self, trial_id, result):
        self.left -= 1
        if self.left == 0:
            self.at = time.time()
            raise KeyboardInterrupt


def returned_before(path: Path, trial_id: str, moment: float) -> int:
    lines = (path / f"returned-{trial_id}.txt").read_text().split("\n")
    return max((int(line.split()[0]) for line in lines if line and float(line.split()[1]) < moment), default=0)


@pytest.mark.parametrize("end", ["time budget", "ctrl-c"])
def test_reports_held_by_the_checkpoint_throttle_are_recorded_when_the_run_winds_up(storage, end):
    ctrl_c = CtrlCAt(25)
    results = rt.Tuner(checkpoints_every_step, space={"x": rt.grid([1, 2])}, metric="loss", storage_path=storage,
                       name="wind-up", verbose=0, tensorboard=False, checkpoints_to_keep=1,
                       time_budget_s=4.0 if end == "time budget" else None,
                       callbacks=[ctrl_c] if end == "ctrl-c" else []).fit()
    assert results.meta["status"] == ("TIMED_OUT" if end == "time budget" else "INTERRUPTED")
    loaded = rt.load(results.path)
    moment = results.meta["start_time"] + 4.0 if end == "time budget" else ctrl_c.at
    for trial in loaded.trials:
        accepted = returned_before(results.path, trial.trial_id, moment)
        assert accepted >= 10  # the throttle held some of them: a store a second, a report each 50 ms
        # Every report rt.report() had accepted before the end is recorded...
        assert trial.iteration >= accepted, (trial.trial_id, trial.iteration, accepted)
        assert list(loaded.history(trial.trial_id)["iteration"]) == list(range(1, trial.iteration + 1))
        # ...and the checkpoint that was stored last with them, which a resume continues from.
        record = json.loads((results.path / "trials" / trial.trial_id / "trial.json").read_text())
        assert trial.checkpoint is not None and (Path(trial.checkpoint) / "step").read_text() == str(
            record["checkpoint_iteration"])
        assert trial.status in (TrialStatus.STOPPED, TrialStatus.PENDING)
