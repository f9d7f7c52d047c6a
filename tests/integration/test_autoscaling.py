"""Sweeps on an autoscaling cluster: Ray's fake multi-node provider (RAY_FAKE_CLUSTER=1),
whose "nodes" are raylets on this machine started by Ray's own autoscaler on demand.

The cluster is ours alone: its own GCS port and temp dir, started with ``--block`` in a
process group of its own, and ended by killing that group and the processes that carry
our temp dir (never ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

from tests._helpers import start_ray_head

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent("""
    import json, sys, time
    import ray
    import raytuner as rt
    from raytuner.errors import ConfigError

    def train(config):
        import os
        rt.report({"loss": config["x"], "sees_gpu": float(os.environ.get("CUDA_VISIBLE_DEVICES", "") != "")})

    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
    refused = None
    try:
        rt.Tuner(train, space={"x": 1.0}, num_trials=1, resources={"cpu": 1, "tpu_v9": 1},
                 storage_path=sys.argv[2], verbose=0, tensorboard=False).fit()
    except ConfigError as exc:
        refused = str(exc)
    results = rt.Tuner(train, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=3,
                       resources={"cpu": 1, "gpu": 1}, storage_path=sys.argv[2], name="gpu_sweep",
                       verbose=1, tensorboard=False).fit()
    gpu_nodes = sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU"))
    # Resume must ask for its nodes too: once the idle GPU nodes are gone, only it can.
    rt.release_workers()  # the sweep's warm workers hold the GPU nodes
    deadline = time.monotonic() + 120
    while any(n["Alive"] and n["Resources"].get("GPU") for n in ray.nodes()):
        assert time.monotonic() < deadline, "the idle GPU nodes were never removed"
        time.sleep(0.5)
    print("RESUMING", flush=True)
    resumed = rt.Tuner.resume(results.path, train, num_trials=5, verbose=1, tensorboard=False)
    print("RESULT " + json.dumps({
        "statuses": [t.status.value for t in results.trials],
        "sees_gpu": [t.metrics.get("sees_gpu") for t in results.trials],
        "max_concurrent": results.meta["max_concurrent"],
        "gpu_nodes": gpu_nodes,
        "refused": refused,
        "resumed_statuses": [t.status.value for t in resumed.trials],
        "resumed_sees_gpu": [t.metrics.get("sees_gpu") for t in resumed.trials],
    }))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_ours(head: subprocess.Popen, temp_dir: str) -> None:
    import psutil

    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait(timeout=30)
    # Raylets of the launched nodes may live outside the group; they carry our temp dir.
    for proc in psutil.process_iter(["cmdline"]):
        if any(temp_dir in part for part in proc.info.get("cmdline") or []):
            proc.kill()


@pytest.fixture
def fake_cluster(tmp_path):
    """A head with 1 CPU and no GPU; the autoscaler may launch up to 2 GPU workers."""
    import ray._private.services as services

    port = _free_port()
    ip = services.get_node_ip_address()
    temp_dir = tempfile.mkdtemp(prefix="rt-fake-", dir="/tmp")  # short: Ray's socket paths have a length limit
    config = {
        # Idle nodes go after 6 s, so that a resume finds none and must ask for its own.
        "cluster_name": "fake", "max_workers": 2, "upscaling_speed": 10, "idle_timeout_minutes": 0.1,
        "provider": {"type": "fake_multinode", "gcs_address": f"{ip}:{port}", "disable_launch_config_check": True,
                     "disable_node_updaters": True, "use_node_id_as_ip": True},
        "auth": {"ssh_user": "ubuntu"}, "docker": {},
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 2},
        },
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }
    config_path = tmp_path / "autoscaling.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # Token authentication off on both sides: a token file left in ~/.ray by another cluster
    # would otherwise make `ray start` require one that our driver does not send.
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    head = start_ray_head(
        [f"--port={port}", "--num-cpus=1", "--num-gpus=0", f"--autoscaling-config={config_path}",
         f"--temp-dir={temp_dir}", "--include-dashboard=false", f"--ray-client-server-port={_free_port()}",
         "--dashboard-agent-listen-port=0", "--disable-usage-stats"],
        env, lambda head: _kill_ours(head, temp_dir))
    try:
        yield f"{ip}:{port}", env
    finally:
        _kill_ours(head, temp_dir)


def test_a_gpu_sweep_on_a_cluster_with_no_gpu_node_gets_its_nodes_and_completes_and_so_does_its_resume(
        fake_cluster, tmp_path):
    address, env = fake_cluster
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("RAY_FAKE_CLUSTER")
    done = subprocess.run([sys.executable, str(script), address, str(tmp_path / "results")], env=env,
                          capture_output=True, text=True, timeout=360)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT "):])
    assert out["refused"] and "tpu_v9" in out["refused"] and "gpu_worker (up to 2): {CPU: 1, GPU: 1}" in out["refused"]
    assert out["statuses"] == ["COMPLETED"] * 3
    assert out["sees_gpu"] == [1.0] * 3  # each ran on a launched GPU node
    assert out["max_concurrent"] == 2  # what the launchable GPU nodes hold; the head has no GPU
    assert out["gpu_nodes"] >= 1
    fit_output, resume_output = done.stdout.split("RESUMING\n")
    assert "waiting for nodes: 2 x gpu_worker" in fit_output
    assert out["resumed_statuses"] == ["COMPLETED"] * 5
    assert out["resumed_sees_gpu"] == [1.0] * 5
    assert "waiting for nodes: 2 x gpu_worker" in resume_output
