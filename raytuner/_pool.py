"""Trial workers, reused across trials of the experiment (one resource shape per pool).

Starting an actor costs about 0.4 s and importing TensorFlow in it about 5 s on a small
machine, so a worker that finishes a trial takes the next one.
"""

from __future__ import annotations

from typing import Any, Mapping

from raytuner._resources import actor_options
from raytuner._worker import TrialWorker


class WorkerPool:
    def __init__(self, resources: Mapping[str, float], gpu_memory_fraction: float | None = None):
        import ray

        options = actor_options(resources)
        # SPREAD: trials of a sweep are independent, so use every node before doubling up.
        self._cls = ray.remote(TrialWorker).options(**options, max_restarts=0, scheduling_strategy="SPREAD")
        self._gpu = options["num_gpus"] > 0
        self._fraction = gpu_memory_fraction
        self._idle: list[Any] = []
        self._all: set[Any] = set()

    def acquire(self) -> Any:
        if self._idle:
            return self._idle.pop()
        worker = self._cls.remote(self._fraction if self._gpu else None, self._gpu)
        self._all.add(worker)
        return worker

    def release(self, worker: Any) -> None:
        self._idle.append(worker)

    def discard(self, worker: Any) -> None:
        import ray

        self._all.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        ray.kill(worker, no_restart=True)

    def shutdown(self) -> None:
        import ray

        for worker in self._all:
            ray.kill(worker, no_restart=True)
        self._all.clear()
        self._idle.clear()
