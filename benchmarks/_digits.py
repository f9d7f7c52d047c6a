"""A real multi-fidelity task for search_quality.py: a small Keras MLP on scikit-learn's digits.

scikit-learn bundles the data (1,797 8x8 images; no download): 1,257 to train, 270 to
validate, 270 to test. Each epoch reports the validation loss as ``loss`` (what the
schedulers and searchers see, and what picks the incumbent) and the test loss as
``true_loss`` (what the incumbent is scored by), so the score is not the quantity that was
selected on. ``R = 9`` epochs keeps a trial to seconds on 2 cores.

Four hyperparameters: the learning rate, the width, the dropout rate and the batch size.
Training is seeded per (seed, config), so the same config gives the same curve.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import zlib
from typing import Any, Mapping

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MAX_EPOCHS = 9
"""R: epochs of a full run."""


def space() -> dict[str, Any]:
    """The search space in raytuner's DSL."""
    import raytuner as rt

    return {
        "lr": rt.loguniform(1e-4, 1e-1),
        "units": rt.quniform(16, 256, 16),
        "dropout": rt.uniform(0.0, 0.6),
        "batch_size": rt.choice([16, 32, 64, 128]),
    }


def hyperopt_space() -> dict[str, Any]:
    """The same space as hyperopt expressions (for Ray Tune's HyperOptSearch)."""
    from hyperopt import hp

    return {
        "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
        "units": hp.quniform("units", 16, 256, 16),
        "dropout": hp.uniform("dropout", 0.0, 0.6),
        "batch_size": hp.choice("batch_size", [16, 32, 64, 128]),
    }


def settings(seed: int, max_epochs: int = MAX_EPOCHS) -> dict[str, Any]:
    """Constants to merge into the search space: the trainable reads them from its config."""
    return {"_seed": seed, "_epochs": max_epochs}


@functools.lru_cache(maxsize=1)
def data() -> tuple[Any, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=540, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=270, stratify=y_rest, random_state=0)
    return x_train, y_train, x_val, y_val, x_test, y_test


def _fit(config: Mapping[str, Any], report: Any) -> None:
    """Train for ``_epochs`` epochs; ``report`` is a Keras callback that reports each epoch's
    logs, to which ``test_loss`` and ``began`` (the epoch's start time) are added first."""
    import keras

    x_train, y_train, x_val, y_val, x_test, y_test = data()
    key = json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, sort_keys=True)
    keras.utils.set_random_seed(zlib.crc32(f"{config['_seed']}:{key}".encode()))
    units = int(config["units"])
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dropout(config["dropout"]),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(config["lr"]), "sparse_categorical_crossentropy")

    class Score(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.began = time.time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            # Keras hands the same logs dict to the callbacks that follow (the reporter).
            test = float(self.model.evaluate(x_test, y_test, batch_size=270, verbose=0))
            # A diverged run reports a large finite loss, which every scheduler can rank.
            logs["val_loss"] = _finite(logs["val_loss"])
            logs["test_loss"] = _finite(test)
            logs["began"] = self.began

    model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=int(config["batch_size"]),
              epochs=config["_epochs"], callbacks=[Score(), report], verbose=0)


def _finite(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else 1e3


def train(config: Mapping[str, Any]) -> None:
    """The raytuner trainable, reporting through raytuner's Keras callback (no checkpoints:
    stopping ASHA and FIFO need none)."""
    import raytuner as rt

    metrics = {"loss": "val_loss", "true_loss": "test_loss", "began": "began"}
    _fit(config, rt.keras.ReportCallback(metrics=metrics, checkpoint=False))


def train_ray_tune(config: Mapping[str, Any]) -> None:
    """The same trainable for Ray Tune, with a plain reporting callback (Ray's own Keras
    callbacks raise a DeprecationWarning in Ray 2.60)."""
    import keras
    from ray import tune

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            tune.report({"loss": logs["val_loss"], "true_loss": logs["test_loss"], "epoch": epoch + 1,
                         "began": logs["began"], "timestamp_s": time.time()})

    _fit(config, Report())

