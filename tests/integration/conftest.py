"""Fixtures of the integration tests that run drivers in subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from tests._helpers import start_ray_head

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_ray():
    """A Ray head of the tests' own (2 CPUs), in its own process group, killed at the end of
    the session; the environment driver subprocesses join it with (RAY_ADDRESS). Each
    driver then costs its own start-up only, not a Ray start-up."""
    import ray._private.services as services

    temp_dir = tempfile.mkdtemp(prefix="rt-ch-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYTUNER_FAULT_AFTER_WRITES")}
    env.update(RAY_AUTH_MODE="disabled", PYTHONPATH=str(REPO))
    head = start_ray_head(
        [f"--port={port}", "--num-cpus=2", f"--temp-dir={temp_dir}", "--include-dashboard=false",
         f"--ray-client-server-port={_free_port()}", "--dashboard-agent-listen-port=0", "--disable-usage-stats"],
        env, lambda head: os.killpg(head.pid, signal.SIGKILL))
    env["RAY_ADDRESS"] = f"{services.get_node_ip_address()}:{port}"
    try:
        yield env
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head, its raylet and the workers it started
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
