"""GPU trials on Ray's declared GPUs (no real card): each sees its own device and the
TensorFlow/JAX memory settings are in place before the trial's code runs."""

from __future__ import annotations

import json
import os
import sys

import pytest

import raytuner as rt

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _meet_the_other_trial(trial_dir, timeout_s=120.0):
    """A rendezvous of the two trials through their folders: neither goes on until both run."""
    (trial_dir / "arrived").touch()
    wait_for(lambda: len(list(trial_dir.parent.glob("*/arrived"))) >= 2,
             "the other trial to run at the same time as this one", timeout_s=timeout_s, interval_s=0.02)


def report_gpu_settings(config):
    from raytuner._worker import accelerators as _accelerators
    from raytuner._worker import tf_gradients as _tf_gradients

    seen = {key: os.environ.get(key) for key in _accelerators.ENV_KEYS}
    seen["tf_cap"] = _accelerators.tensorflow_memory_fraction
    # Every worker arms raytuner._worker.tf_gradients.install; only a capped GPU worker more.
    seen["tf_hook_armed"] = any(
        hook is not _tf_gradients.install
        for f in sys.meta_path if isinstance(f, _accelerators._AfterImport) for hook in f.hooks
    )
    seen["tf_imported"] = "tensorflow" in sys.modules
    seen["pid"] = os.getpid()
    _meet_the_other_trial(rt.get_context().trial_dir)  # both workers in use at once
    (rt.get_context().trial_dir / "gpu.json").write_text(json.dumps(seen))
    rt.report({"x": config["x"]})


def _seen(storage, **tuner_args):
    results = rt.Tuner(report_gpu_settings, space={"x": rt.grid([0, 1])}, resources={"cpu": 1, "gpu": 1},
                       max_concurrent=2, storage_path=storage, verbose=0, keep_workers_s=0, **tuner_args).fit()
    assert not results.errors
    return [json.loads((t.path / "gpu.json").read_text()) for t in results.trials]


def test_each_gpu_trial_gets_its_card_and_tensorflow_jax_settings(storage):
    capped = _seen(storage, gpu_memory_fraction=0.5)
    devices = {s["pid"]: s["CUDA_VISIBLE_DEVICES"] for s in capped}
    assert set(devices.values()) <= {"0", "1"}
    assert len(set(devices.values())) == len(devices), "two workers at once must hold different cards"
    for seen in capped:
        assert seen["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert seen["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5000"
        # TensorFlow is Keras' backend here: its cap waits for the trial to import it.
        assert seen["tf_cap"] == 0.5 and seen["tf_hook_armed"] and not seen["tf_imported"]

    growing = _seen(storage / "growth")
    for seen in growing:
        assert seen["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert seen["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        assert seen["XLA_PYTHON_CLIENT_MEM_FRACTION"] is None
        assert seen["tf_cap"] is None and not seen["tf_hook_armed"]
