"""Tune a small Keras network on scikit-learn's digits (bundled: no download) on local Ray.

TPE proposes the learning rate, width, dropout, batch size and whether to use data
augmentation layers; ASHA stops the poor trials after 1, 3 or 9 epochs. One callback in
``model.fit`` does the reporting, the checkpointing and the early stopping. At the end the
best trial's checkpoint is loaded and scored on a held-out test set.

    python examples/keras_digits.py                 # 30 trials, about a minute on 2 cores
    python examples/keras_digits.py --trials 8 --max-epochs 9
    python examples/keras_digits.py --single        # one config by hand, no Ray
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads, in every worker

import raytuner as rt  # noqa: E402
from raytuner.schedulers import ASHAScheduler  # noqa: E402
from raytuner.search import TPESearcher  # noqa: E402

SPACE = {
    "lr": rt.loguniform(1e-4, 3e-2),
    "units": rt.choice([32, 64, 128, 256]),
    "dropout": rt.uniform(0.0, 0.5),
    "batch_size": rt.choice([16, 32, 64, 128]),
    "augment": rt.choice([False, True]),
}


def load_digits_split():
    """Digits as 8x8x1 images in [0, 1]: 1,257 to train, 270 to validate, 270 to test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=540, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_test, y_test, test_size=270, stratify=y_test, random_state=0)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def build_model(config):
    import keras

    layers = [keras.Input((8, 8, 1))]
    if config["augment"]:
        # Active in training only: shift by up to a pixel, zoom by up to 10%.
        layers += [keras.layers.RandomTranslation(0.125, 0.125, fill_mode="constant"), keras.layers.RandomZoom(0.1)]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(config["units"], activation="relu"),
        keras.layers.Dropout(config["dropout"]),
        keras.layers.Dense(config["units"], activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(config["lr"]), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(config):
    (x_train, y_train), validation, _ = load_digits_split()
    model = build_model(config)
    model.fit(
        x_train, y_train,
        validation_data=validation,
        batch_size=config["batch_size"],
        epochs=config["max_epochs"],
        initial_epoch=rt.keras.restore(model),  # 0, or where a paused/retried trial stopped
        callbacks=[rt.keras.ReportCallback(metrics=["val_loss", "val_accuracy", "loss"])],
        verbose=0,
    )


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=27, help="ASHA's max_resource R")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=None, help="results root (default ~/raytuner_results)")
    parser.add_argument("--single", action="store_true", help="train one config here, without Ray")
    args = parser.parse_args(argv)

    if args.single:  # the same train() by hand: the callback says it is not in a trial
        train({"lr": 3e-3, "units": 128, "dropout": 0.2, "batch_size": 32, "augment": False,
               "max_epochs": args.max_epochs})
        return float("nan")

    results = rt.Tuner(
        train,
        space={**SPACE, "max_epochs": args.max_epochs},
        metric="val_loss",
        mode="min",
        num_trials=args.trials,
        searcher=TPESearcher(seed=args.seed),  # the default searcher; given here for its seed
        scheduler=ASHAScheduler(max_resource=args.max_epochs, reduction_factor=3),
        resources={"cpu": 1},
        storage_path=args.storage,
    ).fit()

    best = results.best
    print(f"\nbest trial {best.trial_id}: val_loss {best.metrics['val_loss']:.4f}, "
          f"val_accuracy {best.metrics['val_accuracy']:.3f} after {best.metrics['epoch']} epochs")
    print("  config:", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in best.config.items() if k != "max_epochs"))
    counts = results.dataframe().groupby("status").size()
    print("  trials:", ", ".join(f"{n} {status.lower()}" for status, n in counts.items()),
          "(stopped: ended early by ASHA)")

    _, _, (x_test, y_test) = load_digits_split()
    model = rt.keras.load_model(best.checkpoint)  # weights and all, from the trial's checkpoint
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy of the best trial's checkpoint: {test_accuracy:.3f} (270 held-out digits)")
    print(f"results in {results.path}")
    raytuner = _command("raytuner")
    shown = results.path.name if args.storage is None else results.path  # the CLI finds a name in the default root
    print(f"  look at them: {raytuner} show {shown} | {raytuner} report {shown} | "
          f"{_command('tensorboard')} --logdir {results.path / 'tensorboard'}")
    return float(test_accuracy)


def _command(name: str) -> str:
    """``name`` as the user's shell can run it: the console script beside this interpreter
    (a virtualenv's bin/, off PATH unless activated), else the bare name."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return os.path.relpath(beside) if os.path.exists(beside) and shutil.which(name) != beside else name


if __name__ == "__main__":
    main()
