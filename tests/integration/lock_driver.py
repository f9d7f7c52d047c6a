"""A driver that holds its experiment until a gate file appears (see test_driver_lock.py).

Usage: python lock_driver.py STORAGE_ROOT GATE_FILE
"""

from __future__ import annotations

import pathlib
import sys
import time

import raytuner as rt


def held(config):
    rt.report({"loss": config["x"], "step": 1})
    gate = pathlib.Path(config["gate"])
    while not gate.exists():  # the test opens the gate once it has seen what it needs
        time.sleep(0.05)
    rt.report({"loss": config["x"] / 2, "step": 2})


if __name__ == "__main__":
    rt.Tuner(held, space={"x": rt.uniform(0, 1), "gate": sys.argv[2]}, metric="loss", num_trials=4,
             max_concurrent=2, storage_path=sys.argv[1], name="held", verbose=0, seed=3, tensorboard=False).fit()
