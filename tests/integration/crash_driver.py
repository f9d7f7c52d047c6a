"""A driver that a test kills with SIGKILL mid-sweep (see test_crash.py and test_pbt.py).

Usage: python crash_driver.py STORAGE_ROOT [pbt]
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

import raytuner as rt


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


def slow_population(config):
    """A PBT member: its loss falls fastest with x near a best value that moves with progress."""
    loss, start = 10.0, 0
    restored = rt.get_checkpoint()
    if restored is not None:
        loss, start = (float(v) for v in (restored / "state").read_text().split())
    for step in range(int(start) + 1, 17):
        time.sleep(0.05)
        loss -= 1.0 / (1.0 + abs(config["x"] - step / 16))
        out = pathlib.Path(tempfile.mkdtemp())
        (out / "state").write_text(f"{loss} {step}")
        rt.report({"loss": loss, "step": step, "start": start}, checkpoint=out)


if __name__ == "__main__":
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if sys.argv[2:] == ["pbt"]:
        rt.Tuner(slow_population, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=4, max_concurrent=2,
                 scheduler=rt.PBTScheduler(perturbation_interval=2, mutations={"x": rt.uniform(0, 1)},
                                           max_resource=16, seed=5),
                 storage_path=sys.argv[1], name="crashed_pbt", verbose=0, seed=7, tensorboard=False).fit()
    else:
        rt.Tuner(slow_trial, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=8, storage_path=sys.argv[1],
                 name="crashed", verbose=0, seed=7, tensorboard=False).fit()
