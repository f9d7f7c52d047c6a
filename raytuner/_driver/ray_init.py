"""Connecting to Ray: the cluster named by ``address``/RAY_ADDRESS, or a local one we start."""

from __future__ import annotations

import logging
import os
import sys
import warnings


def ensure_ray(address: str | None = None) -> bool:
    """Make sure Ray is initialised; return True if this call started it.

    With no address (argument or RAY_ADDRESS), a local Ray is started explicitly as local:
    a bare ``ray.init()`` would try to join the cluster named in a stale cluster file left by
    an earlier ``ray start``, and hang on a dead one.
    """
    import ray

    if ray.is_initialized():
        if address is not None:
            warnings.warn(
                f"address={address!r} is not used: Ray is already initialised in this process (a ray.init() "
                "before the Tuner), and the trials run on the Ray it joined. Call ray.shutdown() first to "
                "join that address, or leave `address` out.", stacklevel=4)
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    # Ray's own start-up notices (token authentication, ...) are not the user's concern.
    kwargs: dict = {"address": address, "logging_level": logging.ERROR, "log_to_driver": True}
    if address == "local":
        kwargs["include_dashboard"] = False
    ray.init(**kwargs)
    return True


def flush_worker_logs() -> None:
    """Print the worker output Ray holds back for de-duplication now, not at exit.

    Ray buffers repeated worker lines ("[repeated 3x across cluster]") and prints the
    leftovers when the process disconnects, i.e. after the user's script has printed its
    results. Flushing at the end of ``fit`` keeps the script's own output last. Ray's
    de-duplicator is private API: if it moves, this does nothing.
    """
    try:
        import ray
        from ray._private import ray_logging, worker

        if not ray.is_initialized():
            return
        ignore_prefix = worker._should_ignore_worker_log_prefix(worker.global_worker)
        for leftover in ray_logging.stdout_deduplicator.flush():
            worker.print_worker_logs(leftover, sys.stdout, ignore_prefix)
        for leftover in ray_logging.stderr_deduplicator.flush():
            worker.print_worker_logs(leftover, sys.stderr, ignore_prefix)
    except Exception:  # noqa: BLE001 - cosmetic: never fail a finished experiment over it
        return
