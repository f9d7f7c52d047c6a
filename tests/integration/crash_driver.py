"""A driver that a test kills with SIGKILL mid-sweep (see test_crash.py, test_pbt.py and
test_cloud_storage.py).

Usage: python crash_driver.py STORAGE_ROOT [pbt [GATE]]

``pbt``: a synchronous PBT population; with GATE (a folder), every member holds before its
:data:`HOLD_STEP`-th step until the file ``GATE/open`` exists, so a test can kill the driver
at that point of the run instead of racing it.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

import raytuner as rt

#: Where PBT members hold (set by ``pbt GATE`` only: a resume that imports this script runs
#: them straight through).
GATE: pathlib.Path | None = None
#: Members hold before this step: past the synchronous rounds at 2, 4 and 6, so the clones of
#: the first two have been launched (the third round's clone waits for a free slot).
HOLD_STEP = 7


def slow_trial(config):
    start = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        start = int((restored / "epoch").read_text())
    for epoch in range(start + 1, 5):
        time.sleep(0.15)
        out = pathlib.Path(tempfile.mkdtemp())
        (out / "epoch").write_text(str(epoch))
        rt.report({"loss": config["x"] + 1.0 / epoch, "epoch": epoch}, checkpoint=out)


def population(config):
    """A PBT member: its loss falls fastest with x near a best value that moves with progress.
    Its checkpoint is two files that must agree, so one restored from half a copy fails."""
    loss, start, writer = 10.0, 0, -1
    restored = rt.get_checkpoint()
    if restored is not None:
        state = (restored / "state").read_text()
        if (restored / "same_state").read_text() != state:
            raise RuntimeError(f"restored a checkpoint whose files disagree: {sorted(restored.iterdir())}")
        loss, start, writer = float(state.split()[0]), int(state.split()[1]), int(state.split()[2])
    me = rt.get_context().trial_id
    for step in range(start + 1, 17):
        if step == HOLD_STEP and GATE is not None:
            hold(GATE, me)
        loss -= 1.0 / (1.0 + abs(config["x"] - step / 16))
        out = pathlib.Path(tempfile.mkdtemp())
        for name in ("state", "same_state"):
            (out / name).write_text(f"{loss} {step} {me}")
        rt.report({"loss": loss, "step": step, "start": start, "restored_from": writer, "x_trained": config["x"]},
                  checkpoint=out)


def hold(gate: pathlib.Path, trial_id: str) -> None:
    """Say so (``held-<trial>``), then wait until the test opens the gate. Bounded, so that a
    worker the test's kill left behind cannot wait for ever."""
    (gate / f"held-{trial_id}").touch()
    deadline = time.monotonic() + 300
    while not (gate / "open").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate / 'open'} did not appear")
        time.sleep(0.05)


if __name__ == "__main__":
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if sys.argv[2:3] == ["pbt"]:
        GATE = pathlib.Path(sys.argv[3]) if len(sys.argv) > 3 else None
        rt.Tuner(population, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=4, max_concurrent=2,
                 scheduler=rt.PBTScheduler(perturbation_interval=2, mutations={"x": rt.uniform(0, 1)},
                                           max_resource=16, synch=True, seed=5),
                 storage_path=sys.argv[1], name="crashed_pbt", verbose=0, seed=7, tensorboard=False).fit()
    else:
        rt.Tuner(slow_trial, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=8, storage_path=sys.argv[1],
                 name="crashed", verbose=0, seed=7, tensorboard=False).fit()
