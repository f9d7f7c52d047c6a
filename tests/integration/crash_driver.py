"""A driver that a test kills with SIGKILL mid-sweep (see test_crash.py, test_pbt.py and
test_cloud_storage.py).

Usage: python crash_driver.py STORAGE_ROOT [pbt] [GATE]

A sweep of 8 trials of :func:`four_epochs` on 2 slots, or with ``pbt`` a synchronous PBT
population. With GATE (a folder), trials hold at a chosen point until the file ``GATE/open``
exists, so that a test can kill the driver at that point of the run instead of racing it:
in the sweep, trials from :data:`FIRST_HELD` on hold before epoch :data:`HOLD_EPOCH`; in the
population, every member holds before its :data:`HOLD_STEP`-th step.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

import raytuner as rt

#: Where trials hold (set by GATE only: a resume that imports this script runs them straight
#: through).
GATE: pathlib.Path | None = None
#: In the sweep, trials from this one on hold before :data:`HOLD_EPOCH`, the ones before run
#: through: with 2 slots, a kill then finds trials 0-2 finished, 3 and 4 held with the
#: checkpoint of epoch 2 each, and 5-7 not started.
FIRST_HELD = 3
HOLD_EPOCH = 3
#: Members hold before this step: past the synchronous rounds at 2, 4 and 6, so the clones of
#: the first two have been launched (the third round's clone waits for a free slot).
HOLD_STEP = 7


def four_epochs(config):
    """Four epochs, a checkpoint at each; resumes from the epoch its checkpoint holds."""
    start = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        start = int((restored / "epoch").read_text())
    me = rt.get_context().trial_id
    for epoch in range(start + 1, 5):
        if epoch == HOLD_EPOCH and GATE is not None and int(me) >= FIRST_HELD:
            hold(GATE, me)
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
    """Say so (``held-<trial>``), then wait until the test opens the gate. A worker whose
    raylet the test's kill took down (its parent: it outlives it) exits there, so that it
    cannot go on writing checkpoints into the experiment while the test resumes it. Bounded,
    so that nothing waits for ever."""
    (gate / f"held-{trial_id}").touch()
    parent = os.getppid()
    deadline = time.monotonic() + 300
    while True:
        if os.getppid() != parent:
            os._exit(1)
        if (gate / "open").exists():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate / 'open'} did not appear")
        time.sleep(0.05)


if __name__ == "__main__":
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    pbt = sys.argv[2:3] == ["pbt"]
    gate = sys.argv[3 if pbt else 2:]
    GATE = pathlib.Path(gate[0]) if gate else None
    if pbt:
        rt.Tuner(population, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=4, max_concurrent=2,
                 scheduler=rt.PBTScheduler(perturbation_interval=2, mutations={"x": rt.uniform(0, 1)},
                                           max_resource=16, synch=True, seed=5),
                 storage_path=sys.argv[1], name="crashed_pbt", verbose=0, seed=7, tensorboard=False).fit()
    else:
        rt.Tuner(four_epochs, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=8, storage_path=sys.argv[1],
                 name="crashed", verbose=0, seed=7, tensorboard=False).fit()
