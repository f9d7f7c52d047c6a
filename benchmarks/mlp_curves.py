"""A learning-curve table of real training runs (LCBench-style) for search_sim.py.

scikit-learn's ``MLPClassifier`` (one hidden layer, Adam, ReLU) is trained with
``partial_fit``, one epoch per call, on scikit-learn's bundled digits (nothing is
downloaded), with the split of benchmarks/_digits.py: 1,257 images to train, 270 to
validate, 270 to test (stratified, ``random_state=0``). After each of R = 27 epochs the
table records, for every point of a grid over four ordered hyperparameters,

- the validation and test cross-entropy (log loss, float32; a diverged run's NaN
  probabilities count as the worst, ``-log(1e-15)`` = 34.5 per image),
- the validation and test misclassifications (counts of 270),

and the seconds each run took. Grid: 8 ``learning_rate_init`` (1e-4, 3e-4 .. 0.3, about half
decades) x 5 widths (16 .. 256) x 7 ``alpha`` (L2; 10**-6 .. 1) x 4 batch sizes (32 .. 256)
= 1,120 configurations. Each run is one training run, seeded by ``SEED`` + its grid index
(weights and shuffling), so the table is deterministic: a config has one curve, and a
simulation seed changes only the searchers and the epoch timings (as in LCBench's
single-seed tables).

The table is cached in benchmarks/data/mlp_digits_curves.npz with the seed, the grid,
the build date and time and the package versions; rebuild it (5 minutes on one
core) with

    python benchmarks/mlp_curves.py --build
    python benchmarks/mlp_curves.py            # summary of the cached table
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

MAX_EPOCHS = 27
"""R: epochs of a full run."""
SEED = 0
PATH = Path(__file__).resolve().parent / "data" / "mlp_digits_curves.npz"
GRID: dict[str, list[Any]] = {
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3],
    "width": [16, 32, 64, 128, 256],
    "alpha": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0],
    "batch_size": [32, 64, 128, 256],
}
WORST = -math.log(1e-15)
METRICS = ("error", "logloss")


def configs() -> list[dict[str, Any]]:
    """Every grid point, in table order (the last parameter varies fastest)."""
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def _train(config: Mapping[str, Any], seed: int, data: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """One run: per epoch, validation and test log loss and misclassifications."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_train, y_train, x_val, y_val, x_test, y_test = data
    model = MLPClassifier(hidden_layer_sizes=(config["width"],), learning_rate_init=config["lr"],
                          alpha=config["alpha"], batch_size=config["batch_size"], random_state=seed)
    x_eval, y_eval = np.concatenate([x_val, x_test]), np.concatenate([y_val, y_test])
    out = {k: np.empty(MAX_EPOCHS) for k in ("val_loss", "test_loss", "val_err", "test_err")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in a diverging run
        for epoch in range(MAX_EPOCHS):
            model.partial_fit(x_train, y_train, classes=np.arange(10))
            proba = model.predict_proba(x_eval)  # validation and test in one call
            picked = proba[np.arange(len(y_eval)), y_eval]
            per_image = np.where(np.isfinite(picked), -np.log(np.clip(picked, 1e-15, 1.0)), WORST)
            wrong = ~np.isfinite(proba).all(axis=1) | (np.nan_to_num(proba, nan=-1.0).argmax(axis=1) != y_eval)
            for split, part in (("val", slice(None, len(y_val))), ("test", slice(len(y_val), None))):
                out[f"{split}_loss"][epoch] = per_image[part].mean()
                out[f"{split}_err"][epoch] = wrong[part].sum()
    return out


def build(path: Path = PATH, limit: int | None = None) -> None:
    """Train every grid point (or ``limit`` spread over the grid, to time it) and save."""
    import scipy
    import sklearn

    import _digits

    data = _digits.data()
    points = configs()
    chosen = range(len(points)) if limit is None else np.linspace(0, len(points) - 1, limit).astype(int)
    n = len(points)
    table = {k: np.full((n, MAX_EPOCHS), np.nan) for k in ("val_loss", "test_loss", "val_err", "test_err")}
    seconds = np.zeros(n)
    began = time.perf_counter()
    for done, i in enumerate(chosen, 1):
        t = time.perf_counter()
        run = _train(points[i], SEED + int(i), data)
        seconds[i] = time.perf_counter() - t
        for k, v in run.items():
            table[k][i] = v
        if done % 100 == 0 or done == len(chosen):
            print(f"{done}/{len(chosen)} runs, {time.perf_counter() - began:.0f} s", flush=True)
    total = time.perf_counter() - began
    if limit is not None:
        print(f"{limit} runs: {total:.1f} s, {total / limit:.3f} s a run; the grid's {n}: ~{total / limit * n:.0f} s")
        return
    meta = {"seed": SEED, "grid": GRID, "max_epochs": MAX_EPOCHS, "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "build_seconds": round(total, 1), "split": "benchmarks/_digits.py data(): 1257/270/270, random_state=0",
            "model": "MLPClassifier(hidden_layer_sizes=(width,), solver=adam, relu), partial_fit per epoch, "
                     "random_state=seed+index", "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                         "scikit-learn": sklearn.__version__}}
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(path, val_loss=table["val_loss"].astype(np.float32),
                        test_loss=table["test_loss"].astype(np.float32),
                        val_err=table["val_err"].astype(np.uint16), test_err=table["test_err"].astype(np.uint16),
                        seconds=seconds.astype(np.float32), meta=np.array(json.dumps(meta)))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB) in {total:.0f} s")


@functools.cache
def load(path: Path = PATH) -> dict[str, Any]:
    """The cached table: arrays (configs x epochs) and ``meta``."""
    with np.load(path) as f:
        out = {k: f[k] for k in f.files if k != "meta"}
        out["meta"] = json.loads(str(f["meta"]))
    if out["meta"]["grid"] != json.loads(json.dumps(GRID)):
        raise ValueError(f"{path} was built for another grid; rebuild it with --build")
    return out


def space(ordinal: bool = False) -> dict[str, Any]:
    """The search space in raytuner's DSL: a ``choice`` of the grid values per parameter
    (every searcher models it as unordered categories), or with ``ordinal`` the grid index
    as a ``randint`` (ordered: TPESearcher and Optuna model 3 as near 4)."""
    import raytuner as rt

    return {k: rt.randint(0, len(v)) if ordinal else rt.choice(list(v)) for k, v in GRID.items()}


def hyperopt_space(ordinal: bool = False) -> dict[str, Any]:
    """The same space as hyperopt expressions (for Ray Tune's HyperOptSearch)."""
    from hyperopt import hp

    return {k: hp.randint(k, len(v)) if ordinal else hp.choice(k, list(v)) for k, v in GRID.items()}


@functools.cache
def _index() -> dict[tuple[Any, ...], int]:
    return {tuple(c.values()): i for i, c in enumerate(configs())}


@functools.cache
def curves(metric: str = "logloss") -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) per config and epoch: log loss, or error rate."""
    t = load()
    if metric == "logloss":
        return t["val_loss"].astype(float), t["test_loss"].astype(float)
    return t["val_err"] / 270.0, t["test_err"] / 270.0


def lookup(config: Mapping[str, Any], epoch: int, metric: str = "logloss",
           ordinal: bool = False) -> tuple[float, float]:
    """(validation, test) value of ``config`` (grid indices if ``ordinal``) after ``epoch``
    epochs (1-based)."""
    val, test = curves(metric)
    i = _index()[tuple(v[int(config[k])] if ordinal else config[k] for k, v in GRID.items())]
    return float(val[i, epoch - 1]), float(test[i, epoch - 1])


def summary(metric: str) -> str:
    val, test = curves(metric)
    final = test[:, -1]
    by_val = test.flat[np.argmin(val)]
    quantiles = np.quantile(final, [0.0, 0.05, 0.25, 0.5, 0.75, 1.0])
    best_epoch = np.argmin(val, axis=1) + 1
    return (f"{metric}: test at epoch R, quantiles 0/5/25/50/75/100%: {np.round(quantiles, 4).tolist()}; "
            f"table minimum of test {test.min():.4f}; test at the table's best validation {by_val:.4f}; "
            f"configs whose best validation epoch is < R: {np.mean(best_epoch < MAX_EPOCHS):.0%}; "
            f"Spearman(val at epoch 3, val at R) {_spearman(val[:, 2], val[:, -1]):.2f}")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="train the whole grid and write the table")
    parser.add_argument("--time", type=int, metavar="N", help="train N grid points and estimate the build time")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.build or args.time:
        build(limit=args.time)
        if args.time:
            return
    meta = load()["meta"]
    print(json.dumps({k: v for k, v in meta.items() if k != "grid"}))
    print(f"{len(configs())} configs x {MAX_EPOCHS} epochs; grid {GRID}")
    for metric in METRICS:
        print(summary(metric))


if __name__ == "__main__":
    main()
