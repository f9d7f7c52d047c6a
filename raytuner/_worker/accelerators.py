"""GPU settings for a worker, applied before any framework in it initialises the GPU.

Ray gives a trial on ``{"gpu": f}`` a share of a card by setting CUDA_VISIBLE_DEVICES; it
does not stop the framework from taking the whole card. TensorFlow maps all GPU memory on
first use and JAX preallocates 75% of it, so without these settings the first of four
quarter-GPU trials starves the other three.

Environment variables cover growth for TensorFlow and JAX and a cap for JAX. TensorFlow's
cap needs its API (a logical device with a memory limit), which must run after TensorFlow
is imported and before it initialises the GPU: :func:`configure` arms an import hook that
applies it the moment the trial's code imports TensorFlow, so processes that never use
TensorFlow never pay for importing it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import logging
import os
import subprocess
import sys
from typing import Any, Callable, Sequence

logger = logging.getLogger("raytuner")

ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
)

#: The TensorFlow memory cap (fraction of each visible card) armed in this process, or None.
tensorflow_memory_fraction: float | None = None


def settings(gpu_memory_fraction: float | None) -> dict[str, str]:
    """Environment for a GPU trial: grow memory on demand, or cap it at a fraction.

    Args:
        gpu_memory_fraction: None to let TensorFlow and JAX allocate as they go; a number
            in (0, 1] to cap JAX at that fraction of the card (TensorFlow's cap needs its
            own API: see :func:`limit_tensorflow_memory`).
    """
    env = {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if gpu_memory_fraction is None:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    else:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{gpu_memory_fraction:.4f}"
    return env


def configure(gpu_memory_fraction: float | None, *, has_gpu: bool | None = None) -> None:
    """Apply :func:`settings` to this process if it was given a GPU; keep user overrides.

    With a fraction, and TensorFlow as the Keras backend, also cap TensorFlow's memory
    when TensorFlow is imported (at once if it already is). A worker of trials that asked
    for no GPU (``has_gpu=False``) sees none: Ray leaves a 0-GPU actor every card of its
    node, and TensorFlow or JAX in a CPU trial placed on a GPU node would take a whole card
    from the trials that asked for it.
    """
    if has_gpu is False:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return
    if has_gpu is None:
        has_gpu = bool(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not has_gpu:
        return
    for key, value in settings(gpu_memory_fraction).items():
        os.environ.setdefault(key, value)
    if gpu_memory_fraction is not None and keras_backend() == "tensorflow" and _installed("tensorflow"):
        global tensorflow_memory_fraction
        tensorflow_memory_fraction = gpu_memory_fraction
        after_import("tensorflow", lambda tf: limit_tensorflow_memory(tf, gpu_memory_fraction))


def _installed(name: str) -> bool:
    return name in sys.modules or importlib.util.find_spec(name) is not None


def keras_backend() -> str:
    """The backend Keras 3 will use in this process, found without importing Keras.

    Keras' own order: KERAS_BACKEND, then ``backend`` in ``$KERAS_HOME/keras.json`` (default
    ``~/.keras``), then TensorFlow.
    """
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except AttributeError:  # Keras still importing
            pass
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return str(json.load(f).get("backend", "tensorflow"))
    except (OSError, ValueError):
        return "tensorflow"


def tensorflow_memory_limits(fraction: float, totals_mb: Sequence[int | None]) -> list[int | None]:
    """Memory limit in MiB for each visible card (None where its size is unknown)."""
    return [None if total is None else max(1, int(total * fraction)) for total in totals_mb]


def limit_tensorflow_memory(
    tf: Any, fraction: float, totals_mb: Callable[[int], list[int | None]] | None = None
) -> list[int | None]:
    """Give each visible GPU one logical device capped at ``fraction`` of the card.

    Must run before TensorFlow initialises its GPUs; afterwards TensorFlow refuses, and
    the refusal is logged (the trial still runs, uncapped but with memory growth).

    Args:
        tf: The ``tensorflow`` module (a stand-in in tests).
        fraction: Share of each card, in (0, 1].
        totals_mb: ``fn(n) -> [MiB of each of the n visible cards]``; default asks
            ``nvidia-smi``.

    Returns:
        The limits applied, in MiB, one per visible GPU (None: size unknown, not capped).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return []
    limits = tensorflow_memory_limits(fraction, (totals_mb or visible_gpu_memory_mb)(len(gpus)))
    for gpu, limit in zip(gpus, limits):
        if limit is None:
            logger.warning("Cannot tell the memory of %s, so TensorFlow's memory is not capped on it "
                           "(it still grows on demand).", getattr(gpu, "name", gpu))
            continue
        try:
            tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
        except (RuntimeError, ValueError) as exc:
            logger.warning("Could not cap TensorFlow's memory on %s at %d MiB: %s",
                           getattr(gpu, "name", gpu), limit, exc)
    return limits


def visible_gpu_memory_mb(count: int) -> list[int | None]:
    """Total memory (MiB) of the first ``count`` cards in CUDA_VISIBLE_DEVICES.

    Asks ``nvidia-smi``; a card it does not list (or no ``nvidia-smi``) gives None.
    CUDA_VISIBLE_DEVICES may name cards by index or by UUID, as Ray does either.
    """
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return [None] * count
    total: dict[str, int] = {}
    indices: list[str] = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[2].isdigit():
            total[parts[0]] = total[parts[1]] = int(parts[2])
            indices.append(parts[0])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [v.strip() for v in visible.split(",")] if visible else indices
    return [total.get(name) for name in names[:count]] + [None] * max(0, count - len(names))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs each of ``hooks`` on the module right after ``name`` is imported, then steps aside."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hooks: list[Callable[[Any], None]] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or isinstance(spec.loader, type):
            return spec  # a class as loader (built-in modules) is shared: leave it alone
        loader, hooks = spec.loader, self.hooks
        inner = loader.exec_module  # maybe another hook's wrapper (quiet_tf): keep it in the chain

        def exec_module(module: Any) -> None:
            inner(module)
            for hook in hooks:
                try:
                    hook(module)
                except Exception:  # a failed hook must not fail the user's import
                    logger.exception("raytuner's setup hook for %s failed", fullname)

        loader.exec_module = exec_module  # this spec's own loader instance only
        return spec


def after_import(name: str, hook: Callable[[Any], None]) -> None:
    """Call ``hook(module)`` once ``name`` is imported: now if it already is."""
    if name in sys.modules:
        hook(sys.modules[name])
        return
    finder = next((f for f in sys.meta_path if isinstance(f, _AfterImport) and f.name == name), None)
    if finder is None:
        finder = _AfterImport(name)
        sys.meta_path.insert(0, finder)
    if hook not in finder.hooks:
        finder.hooks.append(hook)
