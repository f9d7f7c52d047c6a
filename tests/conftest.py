"""Shared fixtures: one local Ray per test session (started on first use), temp storage."""

from __future__ import annotations

import os

import pytest

# Keep TensorFlow quiet and off any GPU in tests; it is imported by Keras tests only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
