"""The local Ray the search benchmarks run their real sweeps on: 2 CPUs, quiet."""

from __future__ import annotations

import os
from types import ModuleType


def start(*ship: ModuleType) -> None:
    """Start a local Ray with 2 CPUs, and send the modules in ``ship`` to its workers by
    value: the benchmarks folder is not installed, so a worker could not import them."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import cloudpickle

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    for module in ship:
        cloudpickle.register_pickle_by_value(module)


def stop() -> None:
    import ray

    import raytuner as rt

    rt.release_workers()  # else the pool's keep-warm timer fires after shutdown and starts a new Ray
    ray.shutdown()
