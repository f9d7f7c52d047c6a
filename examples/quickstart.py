"""A real sweep on local Ray with nothing to configure: TPE proposes, ASHA stops early.

The trainable fits a small ridge-regularised polynomial model to noisy data with gradient
descent, reporting its validation loss every epoch. Run it with

    python examples/quickstart.py

Results land in ~/raytuner_results/<name>; `raytuner ls` lists them.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np

import raytuner as rt
from raytuner.schedulers import ASHAScheduler
from raytuner.search import TPESearcher

EPOCHS = 27


def make_data(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(400, 1))
    y = np.sin(3 * x[:, 0]) + 0.1 * rng.normal(size=400)
    features = np.hstack([x**k for k in range(1, 8)])
    return features[:300], y[:300], features[300:], y[300:]


def train(config: dict) -> None:
    x_train, y_train, x_val, y_val = make_data()
    rng = np.random.default_rng(config["seed"])
    weights = rng.normal(scale=0.1, size=x_train.shape[1])
    bias = 0.0
    for _epoch in range(EPOCHS):
        for batch in np.array_split(rng.permutation(len(x_train)), len(x_train) // config["batch_size"]):
            error = x_train[batch] @ weights + bias - y_train[batch]
            grad = x_train[batch].T @ error / len(batch) + config["l2"] * weights
            weights -= config["lr"] * grad
            bias -= config["lr"] * error.mean()
        val_loss = float(np.mean((x_val @ weights + bias - y_val) ** 2))
        rt.report({"val_loss": val_loss if np.isfinite(val_loss) else float("inf")})


def main() -> None:
    results = rt.Tuner(
        train,
        space={
            "lr": rt.loguniform(1e-3, 1.0),
            "l2": rt.loguniform(1e-6, 1e-1),
            "batch_size": rt.choice([8, 16, 32, 64]),
            "seed": rt.randint(0, 1000),
        },
        metric="val_loss",
        mode="min",
        num_trials=40,
        searcher=TPESearcher(seed=0),  # the default searcher; shown for its seed
        scheduler=ASHAScheduler(max_resource=EPOCHS, reduction_factor=3),
        name=None,
    ).fit()
    best = results.best
    config = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.config.items())
    print(f"\nbest val_loss {best.metrics['val_loss']:.4f} after {best.iteration} epochs with {config}")
    counts = results.dataframe().groupby("status").size()
    print("trials:", ", ".join(f"{n} {status.lower()}" for status, n in counts.items()))
    print(f"results in {results.path}; look at them with: {_command('raytuner')} show {results.path.name}")



def _command(name: str) -> str:
    """``name`` as the user's shell can run it: the console script beside this interpreter
    (a virtualenv's bin/, off PATH unless activated), else the bare name."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return os.path.relpath(beside) if os.path.exists(beside) and shutil.which(name) != beside else name


if __name__ == "__main__":
    main()
