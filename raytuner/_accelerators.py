"""GPU settings for a worker, applied before any framework in it initialises the GPU.

Ray gives a trial on ``{"gpu": f}`` a share of a card by setting CUDA_VISIBLE_DEVICES; it
does not stop the framework from taking the whole card. TensorFlow maps all GPU memory on
first use and JAX preallocates 75% of it, so without these settings the first of four
quarter-GPU trials starves the other three.
"""

from __future__ import annotations

import os

ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
)


def settings(gpu_memory_fraction: float | None) -> dict[str, str]:
    """Environment for a GPU trial: grow memory on demand, or cap it at a fraction.

    Args:
        gpu_memory_fraction: None to let TensorFlow and JAX allocate as they go; a number
            in (0, 1] to cap JAX at that fraction of the card (TensorFlow's cap needs its
            own API and is applied by the Keras integration).
    """
    env = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if gpu_memory_fraction is None:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    else:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{gpu_memory_fraction:.4f}"
    return env


def configure(gpu_memory_fraction: float | None, *, has_gpu: bool | None = None) -> None:
    """Apply :func:`settings` to this process if it was given a GPU; keep user overrides."""
    if has_gpu is None:
        has_gpu = bool(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not has_gpu:
        return
    for key, value in settings(gpu_memory_fraction).items():
        os.environ.setdefault(key, value)
