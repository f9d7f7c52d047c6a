"""Fractional GPUs on a real card: Keras trials at ``{"gpu": 0.25}`` share one GPU at once.

Needs a machine with an NVIDIA GPU (CI has none; there, ``tests/integration/test_keras_gpu.py``
checks the same settings on GPUs that Ray only declares). Keras runs on JAX by default,
which is what the GPU machines lent to this project have (``--backend tensorflow`` where
TensorFlow has GPU support).

Four trials at a time each ask for a quarter of the card and train a small network on
scikit-learn's digits through raytuner's Keras callback. Each trial records what it
saw: its process, the devices its framework found, the accelerator environment raytuner
set, when its training ran, and the memory its framework may take and did take. The
script then checks what a user counts on:

- the trials ran on the GPU, four at the same time;
- with ``--fraction F``, each process was capped at F of the card, so all of them fit;
  with ``--fraction none``, each grows its memory as it needs.

``--control`` runs the same training in four plain Ray tasks of ``num_gpus=0.25`` with none
of raytuner's settings, to show what they prevent (JAX preallocates 75% of the card in
each process by default).

    python benchmarks/gpu_share.py                     # --fraction 0.2
    python benchmarks/gpu_share.py --fraction none
    python benchmarks/gpu_share.py --control
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
            "TF_FORCE_GPU_ALLOW_GROWTH")


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y


def _model(units: int, lr: float):
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _memory() -> dict:
    """The framework's view of GPU memory in this process: its limit and its peak, in MiB."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "gpu":
            return {}
        stats = device.memory_stats() or {}
        return {"limit_mib": stats.get("bytes_limit", 0) / 2**20, "peak_mib": stats.get("peak_bytes_in_use", 0) / 2**20}
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return {}
    info = tf.config.experimental.get_memory_info("GPU:0")
    return {"limit_mib": None, "peak_mib": info["peak"] / 2**20}


def _devices() -> list[str]:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")]


def train(config):
    import raytuner as rt

    x, y = _digits()
    model = _model(config["units"], config["lr"])
    began = time.time()
    model.fit(x[:1500], y[:1500], validation_data=(x[1500:], y[1500:]), batch_size=32, epochs=config["epochs"],
              callbacks=[rt.keras.ReportCallback(metrics=["val_loss", "val_accuracy"], checkpoint=False)], verbose=0)
    seen = {"pid": os.getpid(), "began": began, "ended": time.time(), "devices": _devices(),
            "env": {key: os.environ.get(key) for key in ENV_KEYS}, **_memory()}
    (rt.get_context().trial_dir / "gpu_seen.json").write_text(json.dumps(seen))


def plain_task(config):
    """The same training in a plain Ray task: no raytuner, none of its settings."""
    x, y = _digits()
    began = time.time()
    try:
        model = _model(config["units"], config["lr"])
        model.fit(x[:1500], y[:1500], batch_size=32, epochs=config["epochs"], verbose=0)
        error = None
    except Exception as exc:  # noqa: BLE001 - what a plain task hits is the finding
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
    return {"pid": os.getpid(), "began": began, "ended": time.time(), "error": error,
            "env": {key: os.environ.get(key) for key in ENV_KEYS}, **(_memory() if error is None else {})}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans running at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def card_mib() -> float | None:
    """The first card's memory, or None on a machine without nvidia-smi."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", default="0.2", help="gpu_memory_fraction for each trial, or 'none'")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--backend", default="jax", choices=("jax", "tensorflow"))
    parser.add_argument("--control", action="store_true", help="plain Ray tasks, without raytuner's settings")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend  # before any worker starts: they inherit it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import ray

    import raytuner as rt

    total = card_mib()
    # Without a card, Ray declares one, and the run only checks placement and settings.
    ray.init(address="local", num_cpus=8, num_gpus=None if total else 1, include_dashboard=False,
             logging_level="ERROR", log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    print(f"card: {f'{total:.0f} MiB' if total else 'none (a GPU declared to Ray)'}; Ray sees {gpus:g} GPU(s); "
          f"backend {args.backend}", flush=True)
    config = {"units": 256, "lr": 1e-3, "epochs": args.epochs}
    if args.control:
        task = ray.remote(num_gpus=0.25, num_cpus=2)(plain_task)
        seen = ray.get([task.remote(config) for _ in range(4)])
        label = "plain Ray tasks, num_gpus=0.25"
    else:
        fraction = None if args.fraction == "none" else float(args.fraction)
        space = {"units": rt.choice([128, 256, 512]), "lr": rt.loguniform(1e-4, 1e-2), "epochs": args.epochs}
        with tempfile.TemporaryDirectory() as root:
            results = rt.Tuner(train, space=space, metric="val_loss", num_trials=args.trials, max_concurrent=4,
                               resources={"cpu": 2, "gpu": 0.25}, gpu_memory_fraction=fraction,
                               storage_path=root, verbose=0, tensorboard=False).fit()
            assert not results.errors, results.errors
            seen = [json.loads((t.path / "gpu_seen.json").read_text()) for t in results.trials]
            best = results.best
        label = f"raytuner trials, gpu=0.25, gpu_memory_fraction={fraction}"
        print(f"best val_loss {best.metrics['val_loss']:.4f} (val_accuracy {best.metrics['val_accuracy']:.3f}) "
              f"of {len(seen)} trials", flush=True)
    print(label)
    for s in seen:
        memory = "" if s.get("peak_mib") is None else (
            f"limit {s['limit_mib']:.0f} MiB, peak {s['peak_mib']:.0f} MiB" if s.get("limit_mib") is not None
            else f"peak {s['peak_mib']:.0f} MiB")
        print(f"  pid {s['pid']}: {s.get('error') or ', '.join(s.get('devices', []))}; {memory}; "
              f"env {json.dumps({k: v for k, v in s['env'].items() if v is not None})}")
    spans = [(s["began"], s["ended"]) for s in seen]
    failed = [s for s in seen if s.get("error")]
    processes = {s["pid"]: s for s in seen if not s.get("error")}
    print(f"{len(seen) - len(failed)} of {len(seen)} ran; at most {max_overlap(spans)} trained at once, "
          f"in {len(processes)} processes", flush=True)
    preallocated = all(s["env"].get("XLA_PYTHON_CLIENT_PREALLOCATE") != "false" for s in processes.values())
    limits = [s["limit_mib"] for s in processes.values() if s.get("limit_mib")]
    if limits and total and preallocated and args.backend == "jax":
        # JAX takes its whole limit up front unless told not to preallocate.
        print(f"memory the processes took up front: {sum(limits):.0f} MiB of the card's {total:.0f} "
              f"({100 * sum(limits) / total:.0f}%)")
    peaks = [s["peak_mib"] for s in processes.values() if s.get("peak_mib") is not None]
    if peaks and total:
        print(f"memory the processes used at most: {sum(peaks):.0f} MiB ({100 * sum(peaks) / total:.1f}%)")
    ray.shutdown()


if __name__ == "__main__":
    main()
