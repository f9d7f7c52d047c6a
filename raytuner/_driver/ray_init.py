"""Connecting to Ray: the cluster named by ``address``/RAY_ADDRESS, or a local one we start."""

from __future__ import annotations

import logging
import os


def ensure_ray(address: str | None = None) -> bool:
    """Make sure Ray is initialised; return True if this call started it.

    With no address (argument or RAY_ADDRESS), a local Ray is started explicitly as local:
    a bare ``ray.init()`` would try to join the cluster named in a stale cluster file left by
    an earlier ``ray start``, and hang on a dead one.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    # Ray's own start-up notices (token authentication, ...) are not the user's concern.
    kwargs: dict = {"address": address, "logging_level": logging.ERROR, "log_to_driver": True}
    if address == "local":
        kwargs["include_dashboard"] = False
    ray.init(**kwargs)
    return True
