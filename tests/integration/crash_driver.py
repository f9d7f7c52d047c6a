"""A driver that a test kills with SIGKILL mid-sweep (see test_crash.py).

Usage: python crash_driver.py STORAGE_ROOT
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


if __name__ == "__main__":
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    rt.Tuner(slow_trial, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=8, storage_path=sys.argv[1],
             name="crashed", verbose=0, seed=7, tensorboard=False).fit()
