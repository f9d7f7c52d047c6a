"""Shared fixtures: one local Ray per test session (started on first use), temp storage."""

from __future__ import annotations

import os

import pytest

# Keep TensorFlow quiet and off any GPU in tests; it is imported by Keras tests only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI folds its messages at $COLUMNS when that is set (as a terminal does), and tests
# compare its messages whole: pytest-xdist's workers set COLUMNS=80, a user's shell may too.
# Tests that need a width set their own.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``full_sweep`` (the crash harness's every-write sweep, many minutes) run
    only when ``-m`` asks for them (``-m slow`` or ``-m full_sweep``), not in the default run."""
    if config.getoption("markexpr"):
        return
    chosen, left_out = [], []
    for item in items:
        (left_out if item.get_closest_marker("full_sweep") else chosen).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = chosen


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray with 2 CPUs (and 2 declared GPUs, so GPU placement is testable on CPU)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def storage(tmp_path):
    """A fresh storage root for one test's experiments."""
    return tmp_path / "results"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reserved_port() -> int:
    """A free port that nothing else in the session will be handed before moto binds it.

    A port from ``bind(0)`` comes from the kernel's ephemeral range, and every later
    ``bind(0)`` (Ray's raylets, object managers, dashboards, a test's server) and outgoing
    connection may take it again before the session's first S3 test starts moto on it (CI
    met that: moto exited on a taken port). Ports 20000-32767 lie between Ray's worker
    ports (10002-19999) and the ephemeral range (32768 up), so nobody else picks them.
    """
    import random
    import socket

    for port in random.Random().sample(range(20000, 32768), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return _free_port()


# S3 as every process of the session sees it, Ray's workers included: they upload checkpoints
# to the bucket themselves, and a worker has the environment its raylet started with, so
# this must be in place before the first test starts Ray. moto's server (s3_server) listens
# on this port once a test asks for it. Nothing leaves the machine; the instance-metadata
# lookup for credentials is switched off.
_S3_PORT = _reserved_port()
_S3_ENV = {
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_S3_PORT}", "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull,
}
os.environ.update(_S3_ENV)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone S3 server on the session's S3 port, for the whole session.

    The client side is the real one (s3fs over HTTP), configured as users configure any
    S3-compatible store: AWS_ENDPOINT_URL and credentials in the environment (set above).
    """
    import subprocess
    import sys
    import threading
    from pathlib import Path

    pytest.importorskip("moto.server", reason="moto[server] is in the `test` extra")
    pytest.importorskip("s3fs", reason="s3fs is in the `cloud` extra")
    log = tmp_path_factory.mktemp("moto") / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(_S3_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    said = []
    for line in server.stderr:  # werkzeug announces the port it bound
        if f"Running on http://127.0.0.1:{_S3_PORT}" in line:
            break
        said.append(line)
    else:
        server.kill()
        pytest.fail(f"moto's server did not start on port {_S3_PORT} (exit code {server.wait()}):\n"
                    + "".join(said[-20:]))
    # Keep reading its request log, or the server blocks once the pipe is full.
    threading.Thread(target=lambda: Path(log).write_text("".join(server.stderr)), daemon=True).start()
    yield _S3_ENV["AWS_ENDPOINT_URL"]
    server.terminate()
    server.wait()


@pytest.fixture
def bucket(s3_server, request, tmp_path, monkeypatch):
    """A fresh, empty bucket as ``s3://<name>``; a fresh local cache (a new machine's)."""
    import re
    import uuid

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", f"t-{request.node.name.lower()}")[:40].strip("-") + f"-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return f"s3://{name}"
