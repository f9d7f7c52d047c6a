"""Connecting to Ray: the cluster named by ``address``/RAY_ADDRESS, or a local one we start;
and what a driver through Ray Client needs of the storage."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any


_started_here = False  # whether ensure_ray started (or joined) the Ray this process runs
_local_here = False  # whether that is a local Ray of its own: no autoscaler, whatever files say


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
    global _started_here, _local_here
    _started_here, _local_here = True, address == "local"
    return True


def local_ray_of_our_own() -> bool:
    """Whether the Ray this process runs is a local one :func:`ensure_ray` started (no
    address, no RAY_ADDRESS): it has no autoscaler, even on a cluster's head."""
    import ray

    return _local_here and ray.is_initialized()


def shutdown_before_exit() -> None:
    """Shut down the Ray that :func:`ensure_ray` started, as the process exits on a SIGTERM
    (Ray's handler raises SystemExit): left to the interpreter's exit, its shutdown met
    MLflow's there and the process aborted (exit status 134, not 15) in about half the
    runs. One the user started is left to them."""
    global _started_here
    if not _started_here:
        return
    import ray

    _started_here = False
    ray.shutdown()


def check_client_storage(where: Any) -> None:
    """Under Ray Client (``address="ray://..."``) the driver's process is off the cluster,
    and workers that do not see a folder storage relay their checkpoints to the node the
    client reached, not to this machine: refused, before any trial, unless that node reads
    the experiment's folder (a file system shared at the same path)."""
    import ray

    if where.is_uri or not ray.util.client.ray.is_connected():
        return
    from raytuner._storage import relay
    from raytuner.errors import ExperimentError

    why = relay.unseen_from_driver_node(where)
    if why is not None:
        raise ExperimentError(
            f"The driver runs through Ray Client, off the cluster, and the cluster does not reach the experiment's "
            f"folder {where.location} ({why}): its trials' checkpoints would land on the cluster's head, not here. "
            "Pass a bucket URI every node reaches (storage_path='s3://...'), or a file system shared at the same "
            "path by this machine and the cluster's nodes; or run the script on the cluster (ray job submit).")


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
