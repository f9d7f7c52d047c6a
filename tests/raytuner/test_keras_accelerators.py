"""GPU settings for trial workers, checked on a CPU machine (stand-ins for TF and nvidia-smi)."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from types import SimpleNamespace

import pytest

from raytuner._worker import accelerators as acc

GPU_ENV = ("TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")


@pytest.fixture
def clean_env(monkeypatch):
    for key in (*GPU_ENV, "KERAS_BACKEND", "KERAS_HOME", "CUDA_VISIBLE_DEVICES"):
        # setenv first, so that monkeypatch also removes what configure() sets: it would
        # otherwise leak into Ray workers started later in the session.
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # else its backend wins over the env
    monkeypatch.setattr(acc, "tensorflow_memory_fraction", None)
    hooks = []
    monkeypatch.setattr(acc, "after_import", lambda name, hook: hooks.append((name, hook)))
    return hooks


def test_settings_grow_on_demand_or_cap_jax():
    assert acc.settings(None) == {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert acc.settings(0.25) == {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2500"}


def test_configure_without_a_gpu_hides_the_nodes_cards_and_sets_nothing_else(clean_env):
    acc.configure(0.5, has_gpu=False)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # a CPU trial on a GPU node takes no card
    assert not any(os.environ.get(k) for k in GPU_ENV)
    assert clean_env == [] and acc.tensorflow_memory_fraction is None


def test_configure_with_a_fraction_arms_the_tensorflow_cap(clean_env, monkeypatch):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")  # the user's own setting wins
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(acc, "_installed", lambda name: True)
    acc.configure(0.25, has_gpu=True)
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.9"
    assert acc.tensorflow_memory_fraction == 0.25
    ((name, hook),) = clean_env
    assert name == "tensorflow"
    monkeypatch.setattr(acc, "visible_gpu_memory_mb", lambda n: [8000] * n)
    fake = FakeTF(["GPU:0"])
    hook(fake)  # what importing TensorFlow in the trial triggers
    assert fake.configured == {"GPU:0": [2000]}


@pytest.mark.parametrize(("backend", "fraction"), [("jax", 0.25), ("torch", 0.25), ("tensorflow", None)])
def test_the_tensorflow_cap_only_for_tensorflow_keras_and_a_fraction(clean_env, monkeypatch, backend, fraction):
    monkeypatch.setenv("KERAS_BACKEND", backend)
    monkeypatch.setattr(acc, "_installed", lambda name: True)
    acc.configure(fraction, has_gpu=True)
    assert clean_env == [] and acc.tensorflow_memory_fraction is None
    expected = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if fraction is None else {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2500"}
    assert {k: os.environ[k] for k in expected} == expected


def test_keras_backend_follows_keras_own_order(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert acc.keras_backend() == "tensorflow"  # no keras.json
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert acc.keras_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert acc.keras_backend() == "jax"


class FakeTF:
    """The slice of ``tensorflow`` that limit_tensorflow_memory uses."""

    def __init__(self, gpus, fail=False):
        self.configured = {}
        fake = self

        class LogicalDeviceConfiguration:
            def __init__(self, memory_limit):
                self.memory_limit = memory_limit

        def set_logical_device_configuration(gpu, configs):
            if fail:
                raise RuntimeError("Virtual devices cannot be modified after being initialized")
            fake.configured[gpu] = [c.memory_limit for c in configs]

        self.config = SimpleNamespace(
            list_physical_devices=lambda kind: list(gpus) if kind == "GPU" else [],
            set_logical_device_configuration=set_logical_device_configuration,
            LogicalDeviceConfiguration=LogicalDeviceConfiguration,
        )


def test_limit_tensorflow_memory_caps_each_visible_card():
    tf = FakeTF(["GPU:0", "GPU:1"])
    limits = acc.limit_tensorflow_memory(tf, 0.25, totals_mb=lambda n: [81559, 40960][:n])
    assert limits == [20389, 10240]
    assert tf.configured == {"GPU:0": [20389], "GPU:1": [10240]}


def test_limit_tensorflow_memory_explains_what_it_could_not_do(caplog):
    with caplog.at_level(logging.WARNING, logger="raytuner"):
        assert acc.limit_tensorflow_memory(FakeTF(["GPU:0"]), 0.5, totals_mb=lambda n: [None]) == [None]
        acc.limit_tensorflow_memory(FakeTF(["GPU:0"], fail=True), 0.5, totals_mb=lambda n: [1000])
    assert "Cannot tell the memory of GPU:0" in caplog.text
    assert "Could not cap TensorFlow's memory on GPU:0 at 500 MiB" in caplog.text
    assert acc.limit_tensorflow_memory(FakeTF([]), 0.5, totals_mb=lambda n: 1 / 0) == []  # CPU only


def test_visible_gpu_memory_reads_nvidia_smi_by_index_or_uuid(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, GPU-aaa, 81559'\necho '1, GPU-bbb, 40960'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path), prepend=os.pathsep)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert acc.visible_gpu_memory_mb(1) == [40960]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaa,GPU-bbb")
    assert acc.visible_gpu_memory_mb(2) == [81559, 40960]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    assert acc.visible_gpu_memory_mb(2) == [None, None]
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert acc.visible_gpu_memory_mb(1) == [None]


def test_after_import_runs_the_hook_once_right_after_the_import(monkeypatch, tmp_path):
    (tmp_path / "rt_fake_framework.py").write_text("READY = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rt_fake_framework", raising=False)
    seen = []
    acc.after_import("rt_fake_framework", lambda module: seen.append(module.READY))
    assert seen == []  # nothing imported yet
    import rt_fake_framework  # noqa: F401

    assert seen == [True]
    assert not any(isinstance(f, acc._AfterImport) for f in sys.meta_path), "the hook must step aside"
    acc.after_import("rt_fake_framework", lambda module: seen.append("now"))  # already imported
    assert seen == [True, "now"]


def test_a_failing_hook_does_not_fail_the_import(monkeypatch, tmp_path, caplog):
    (tmp_path / "rt_fake_framework2.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    acc.after_import("rt_fake_framework2", lambda module: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="raytuner"):
        import rt_fake_framework2

    assert rt_fake_framework2.X == 1
    assert "setup hook for rt_fake_framework2 failed" in caplog.text
    monkeypatch.delitem(sys.modules, "rt_fake_framework2")
