"""cluster.yaml passes Ray's own cluster-launcher validation and says what the docs promise.

Only Ray's local checks run (JSON schema, defaults, node-type bounds): no network, no cloud.
The setup commands are run for real, in a fresh virtualenv, against this checkout.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("jsonschema")  # validate_config needs it; ray[default] installs it
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
CHECKOUT = "/home/ray/raytuner"  # where file_mounts puts the checkout on each node


@pytest.fixture
def config():
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _node_types(config, gpus: bool):
    types = config["available_node_types"]
    return [name for name, spec in types.items()
            if name != config["head_node_type"] and (spec["resources"].get("GPU", 0) > 0) == gpus]


def test_ray_validates_the_file_as_written_and_as_ray_up_prepares_it(config):
    validate_config(config)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"


def test_the_validation_used_here_rejects_a_broken_config(config):
    """Guards the test above against validating nothing."""
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["node_cfg"] = broken["available_node_types"]["gpu_worker"].pop("node_config")
    with pytest.raises(Exception, match="node_config|node_cfg"):
        validate_config(broken)
    too_many = copy.deepcopy(config)
    too_many["available_node_types"]["cpu_worker"]["min_workers"] = config["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(too_many)


def test_a_head_a_cpu_worker_type_and_a_gpu_worker_type_with_worker_bounds(config):
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    cpu, gpu = _node_types(config, gpus=False), _node_types(config, gpus=True)
    assert cpu and gpu, f"need a CPU and a GPU worker type; have {sorted(types)}"
    for name in cpu + gpu:
        spec = types[name]
        assert 0 <= spec["min_workers"] <= spec["max_workers"] <= config["max_workers"], name
        assert spec["resources"].get("CPU", 0) >= 1, f"{name} declares no CPU for trials"
    prepared = prepare_config(copy.deepcopy(config))
    assert prepared["available_node_types"][config["head_node_type"]]["max_workers"] == 0


def test_every_node_type_installs_raytuner(config):
    prepared = prepare_config(copy.deepcopy(config))
    installs = {"head": prepared["head_setup_commands"]}
    for name in _node_types(config, gpus=False) + _node_types(config, gpus=True):
        # A node type's own worker_setup_commands replace the global ones (Ray's schema).
        installs[name] = prepared["available_node_types"][name].get("worker_setup_commands",
                                                                     prepared["worker_setup_commands"])
    for name, commands in installs.items():
        text = " ".join(commands)
        assert "pip install" in text and "raytuner" in text, f"{name} does not install raytuner: {commands}"
    for name in _node_types(config, gpus=True):
        text = " ".join(installs[name])
        assert "tensorflow-cpu" not in text and "raytuner[keras]" not in text, (
            f"{name} would install the CPU-only TensorFlow of the keras extra")


def test_the_checkout_travels_with_the_cluster_and_nothing_is_left_to_fill_in(config):
    assert config["file_mounts"] == {CHECKOUT: "."}, "ray up (from the repository root) ships the checkout"
    prepared = prepare_config(copy.deepcopy(config))
    commands = prepared["head_setup_commands"] + [
        c for spec in prepared["available_node_types"].values() for c in spec.get("worker_setup_commands", [])]
    assert commands and all(f'-e "{CHECKOUT}[' in c for c in commands if "pip install" in c), commands
    values = yaml.safe_dump(config)  # comments aside: what Ray reads
    for placeholder in ("REPLACE", "YOUR-ORG", "<your", "git+https"):
        assert placeholder not in values, placeholder


def test_the_setup_commands_install_the_checkout_in_a_fresh_virtualenv(config, tmp_path):
    """Runs the head's setup commands (those every node runs) against this checkout.

    Offline: the new virtualenv sees this one's packages through a .pth file, and pip gets
    ``--no-deps --no-build-isolation`` (the yaml's commands download the dependencies on a
    real node; here they are already installed and nothing may be downloaded).
    """
    venv = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages")]
    Path(site_dir, "_test_deps.pth").write_text("\n".join(ours) + "\n")
    probe = [str(python), "-c", "import raytuner, raytuner.search, raytuner.schedulers; print(raytuner.__file__)"]
    assert subprocess.run(probe, cwd=tmp_path, capture_output=True).returncode != 0, "raytuner importable before setup"

    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    for command in prepare_config(copy.deepcopy(config))["head_setup_commands"]:
        command = command.replace(CHECKOUT, str(REPO)).replace("pip install", "pip install --no-deps --no-build-isolation")
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    imported = subprocess.run(probe, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).resolve().is_relative_to(REPO)


def test_the_dashboard_stays_on_the_heads_loopback(config):
    start = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in start
    assert "0.0.0.0" not in start, "the job server would accept jobs from anyone who can reach the head"
