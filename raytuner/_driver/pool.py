"""Trial workers, reused across trials and, for a short while, across experiments.

Starting an actor costs about 0.4-1 s and importing TensorFlow in it about 5 s on a small
machine, so a worker that finishes a trial takes the next one. After ``fit`` returns,
idle workers stay warm for ``keep_workers_s`` so that the next experiment of the same
resource shape in this process (a notebook, a loop of sweeps, a test suite) starts at once.
A warm worker holds its resources: they are released when the time runs out, when an
experiment of another shape starts, or by :func:`release_workers`. One whose imported
modules changed on disk since it started is not reused (:mod:`raytuner._worker.freshness`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from raytuner._driver.resources import actor_options
from raytuner._worker.actor import WIND_UP, TrialWorker
from raytuner.errors import RayTunerError

logger = logging.getLogger("raytuner")
_lock = threading.Lock()
#: Workers in a row that may fail as they are built (an error in their __init__, such as
#: another raytuner version on the node) before the run stops: they would fail for ever.
MAX_FAILED_INITS = 3
_shared: WorkerPool | None = None
_remote_cls: Any = None


class WorkerPool:
    def __init__(self, key: tuple, options: dict[str, Any], gpu_memory_fraction: float | None):
        global _remote_cls
        import ray

        if _remote_cls is None:  # export the actor class once per process
            _remote_cls = ray.remote(concurrency_groups={WIND_UP: 1})(TrialWorker)
        # SPREAD: trials of a sweep are independent, so use every node before doubling up.
        self._cls = _remote_cls.options(**options, max_restarts=0, scheduling_strategy="SPREAD")
        self.key = key
        self._gpu = options["num_gpus"] > 0
        self._fraction = gpu_memory_fraction
        self._idle: list[Any] = []
        self._all: set[Any] = set()
        self._starting: dict[Any, Any] = {}  # ready-call ref -> worker whose actor is starting
        self._failed_inits = 0  # workers in a row whose __init__ raised (MAX_FAILED_INITS)
        self.in_use = False
        self._timer: threading.Timer | None = None

    @property
    def size(self) -> int:
        """Workers alive or starting: idle, busy and not yet started."""
        return len(self._all)

    @property
    def idle(self) -> list[Any]:
        """Started workers with nothing to do.

        Trials go only to started workers: an actor the cluster has no room for stays
        pending, and a trial handed to it would wait while other workers free up.
        """
        return list(self._idle)

    def take(self, worker: Any) -> None:
        """An idle worker was given a trial."""
        self._idle.remove(worker)

    def spawn(self) -> None:
        """Start one more worker; it joins the idle ones when :meth:`started` sees it up."""
        worker = self._cls.remote(self._fraction if self._gpu else None, self._gpu)
        self._all.add(worker)
        self._starting[worker.node_id.remote()] = worker

    def starting(self) -> list[Any]:
        """Refs that complete when a spawned worker is up (wait on them with trial events)."""
        return list(self._starting)

    def started(self, ref: Any) -> None:
        import ray

        worker = self._starting.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayError as exc:  # it could not start (its node died, ...)
            self.discard(worker)
            if getattr(exc, "actor_init_failed", False):
                self._failed_inits += 1
                if self._failed_inits >= MAX_FAILED_INITS:
                    raise RayTunerError(
                        f"{self._failed_inits} trial workers in a row failed as they were built, so no trial can "
                        "run. The worker's error, at the end of what Ray says below, names the cause; raytuner's "
                        "own code failing there (a missing attribute of raytuner._worker.actor.TrialWorker) means "
                        "the nodes run another version of raytuner than this driver: install the same one "
                        f"everywhere.\n{exc}") from None
            return
        self._failed_inits = 0
        self._idle.append(worker)

    def release(self, worker: Any) -> None:
        self._idle.append(worker)

    def discard(self, worker: Any) -> None:
        import ray

        self._all.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        for ref in [ref for ref, starting in self._starting.items() if starting is worker]:
            del self._starting[ref]  # else the next experiment would take it for started
        try:
            ray.kill(worker, no_restart=True)
        except Exception:  # noqa: BLE001 - a handle from a Ray session that has ended: the worker is gone
            pass

    def drop_unfit(self, timeout_s: float = 10.0) -> None:
        """Before an experiment takes the workers kept warm for it: forget those that died
        meanwhile (their node was lost, the OOM killer took them: handing one to a trial
        would count as that trial's failure), and stop those that hold a module whose file
        changed since they started (they would run the old code: :mod:`raytuner._worker.freshness`)."""
        import ray

        asked: dict[Any, Any] = {}
        for worker in list(self._idle):  # discard() takes them out of it
            try:
                asked[worker.changed_modules.remote()] = worker
            except Exception:  # noqa: BLE001 - a handle Ray can no longer send to (its session ended)
                self.discard(worker)
        if not asked:
            return
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=timeout_s)
        for ref in ready:
            try:
                changed = ray.get(ref)
            except ray.exceptions.RayError:
                self.discard(asked[ref])
                continue
            if changed:
                logger.debug("A warm trial worker is replaced: %s changed on disk since it started.",
                             ", ".join(sorted(changed)[:5]))
                self.discard(asked[ref])

    def shutdown(self) -> None:
        import ray

        if self._timer is not None:
            self._timer.cancel()
        # After ray.shutdown() the workers are gone with their session, and ray.kill would
        # start a new local Ray (its auto-init), from the timer's thread at that.
        for worker in self._all if ray.is_initialized() else ():
            try:
                ray.kill(worker, no_restart=True)
            except Exception:  # noqa: BLE001 - a handle from a Ray session that has ended
                pass
        self._all.clear()
        self._idle.clear()
        self._starting.clear()


def acquire_pool(resources: Mapping[str, float], gpu_memory_fraction: float | None) -> WorkerPool:
    """The pool for an experiment: the warm one if its shape matches, else a new one."""
    global _shared
    import ray

    options = actor_options(resources)
    # The job and the driver's node name the Ray session: after ray.shutdown() and a new
    # local Ray the job id starts again at the same value, and the workers kept warm died
    # with the old session.
    context = ray.get_runtime_context()
    key = (context.get_job_id(), context.get_node_id(), repr(sorted(options.items())), gpu_memory_fraction)
    with _lock:
        if _shared is not None and (_shared.key != key or _shared.in_use):
            if not _shared.in_use:
                _shared.shutdown()
            _shared = None
        pool = _shared or WorkerPool(key, options, gpu_memory_fraction)
        if pool._timer is not None:
            pool._timer.cancel()
            pool._timer = None
        pool.in_use = True
        _shared = pool
    pool.drop_unfit()
    return pool


def park_pool(pool: WorkerPool, keep_s: float) -> list[Any]:
    """The experiment is over: keep idle workers warm for ``keep_s`` seconds, then release.
    Returns the workers it killed because they were still running something."""
    with _lock:
        pool.in_use = False
        # Workers still running something we no longer wait for go; those still starting
        # stay, and the next experiment takes them once they are up.
        busy = list(pool._all.difference(pool._idle, pool._starting.values()))
        for worker in busy:
            pool.discard(worker)
        if keep_s <= 0 or pool is not _shared:
            pool.shutdown()
            return busy
        pool._timer = threading.Timer(keep_s, _expire, args=(pool,))
        pool._timer.daemon = True
        pool._timer.start()
        return busy


def all_gone(workers: list[Any], timeout_s: float = 10.0) -> bool:
    """Whether every one of these killed workers is dead, waiting up to ``timeout_s``: a
    call to each fails once its process is gone (Ray kills asynchronously). False if one
    answered (the kill had not landed) or did not say within the time."""
    import ray

    refs = []
    for worker in workers:
        try:
            refs.append(worker.node_id.remote())
        except Exception:  # noqa: BLE001 - a handle Ray can no longer send to: gone with its session
            continue
    if not refs:
        return True
    ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        return False
    for ref in ready:
        try:
            ray.get(ref)
        except ray.exceptions.RayError:
            continue
        return False
    return True


def _expire(pool: WorkerPool) -> None:
    global _shared
    with _lock:
        if pool.in_use:
            return
        pool.shutdown()
        if _shared is pool:
            _shared = None


def release_workers() -> None:
    """Stop the trial workers kept warm after the last experiment, freeing their resources."""
    global _shared
    with _lock:
        if _shared is not None and not _shared.in_use:
            _shared.shutdown()
            _shared = None
