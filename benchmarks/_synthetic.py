"""A synthetic multi-fidelity problem: config-dependent learning curves over a known function.

Four hyperparameters (a learning rate, a width, a dropout rate and an activation) decide

- the *final* loss ``f(config)``, a known function with its optimum at lr=10**-2.5,
  width=128, dropout=0.3, activation "relu" (f = 0.10 there; about 0.8 for a random config);
- the *speed* of learning: a larger learning rate learns faster early, so curves cross and
  an early rung is a noisy, biased guide to the final ranking, as in real training;
- *overfitting*: wide models with little dropout get worse late, so a trial stopped early can
  look better than it would at the end (what a searcher's ``stopped_trials`` policy is about);
- Gaussian noise on every reported loss, the same for the same (seed, config, epoch).

``loss(config, epoch) = f + gap * (1 + epoch)**-speed + overfit * (epoch / R)**2 + noise``.

Epochs take milliseconds; ``epoch_time_s`` adds a sleep per epoch, scaled per config by the
width and jittered per epoch when ``jitter`` > 0, for utilisation benchmarks.

Everything is deterministic from the seed (carried in the config as ``_seed`` so that a
trainable on any worker computes the same curve). With ``settings(checkpoint=True)`` the
trainable checkpoints its epoch, so that pausing schedulers (promotion ASHA, Hyperband)
resume it where it stopped.

    >>> from benchmarks._synthetic import final_loss, OPTIMUM
    >>> round(final_loss(OPTIMUM), 3)
    0.1
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

MAX_EPOCHS = 27
"""R: epochs of a full run."""

OPTIMUM = {"lr": 10**-2.5, "width": 128, "dropout": 0.3, "act": "relu"}
_ACT = {"relu": 0.0, "tanh": 0.05, "sigmoid": 0.25}


def space() -> dict[str, Any]:
    """The search space in raytuner's DSL."""
    import raytuner as rt

    return {
        "lr": rt.loguniform(1e-5, 1.0),
        "width": rt.quniform(16, 512, 16),
        "dropout": rt.uniform(0.0, 0.8),
        "act": rt.choice(list(_ACT)),
    }


def hyperopt_space() -> dict[str, Any]:
    """The same space as hyperopt expressions (for Ray Tune's HyperOptSearch)."""
    from hyperopt import hp

    return {
        "lr": hp.loguniform("lr", math.log(1e-5), 0.0),
        "width": hp.quniform("width", 16, 512, 16),
        "dropout": hp.uniform("dropout", 0.0, 0.8),
        "act": hp.choice("act", list(_ACT)),
    }


def final_loss(config: Mapping[str, Any]) -> float:
    """f(config): the noise-free loss a full run converges to."""
    lr = math.log10(config["lr"]) + 2.5
    width = math.log2(config["width"]) - 7.0
    return 0.1 + 0.12 * lr**2 + 0.04 * width**2 + 1.2 * (config["dropout"] - 0.3) ** 2 + _ACT[config["act"]]


def true_loss(config: Mapping[str, Any], epoch: int, max_epochs: int = MAX_EPOCHS) -> float:
    """The noise-free loss after ``epoch`` epochs."""
    speed = 0.3 + 0.25 * (math.log10(config["lr"]) + 5.0)  # 0.3 at lr=1e-5 .. 1.55 at lr=1
    gap = 3.0
    overfit = 0.6 * config.get("_overfit", 1.0) * max(0.0, 0.25 - config["dropout"]) * config["width"] / 512
    return final_loss(config) + gap * (1 + epoch) ** -speed + overfit * (epoch / max_epochs) ** 2 * 4


def minimum(max_epochs: int = MAX_EPOCHS) -> float:
    """The least true loss of any config at any epoch up to ``max_epochs``: at width 128,
    dropout 0.3 and relu (no overfitting there, so at the last epoch), with the learning
    rate that best trades the final loss against the speed of learning (about 0.2175 at
    lr = 10**-2.14 for R = 27), found on a grid of 100,001 learning rates."""
    u = np.linspace(-5.0, 0.0, 100_001)  # log10(lr)
    speed = 0.3 + 0.25 * (u + 5.0)
    return float(np.min(0.1 + 0.12 * (u + 2.5) ** 2 + 3.0 * (1 + max_epochs) ** -speed))


def noise(config: Mapping[str, Any], epoch: int, seed: int, sd: float) -> float:
    """Gaussian noise, the same for the same (seed, config, epoch)."""
    if sd == 0:
        return 0.0
    key = json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, sort_keys=True)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode()), epoch])
    return float(rng.normal(0.0, sd))


def epoch_time(config: Mapping[str, Any], epoch: int, seed: int, base_s: float, jitter: float) -> float:
    """Seconds one epoch takes: ``base_s`` scaled by width (0.5x to 2x), jittered by ``jitter``."""
    if base_s <= 0:
        return 0.0
    scale = 0.5 + 1.5 * (config["width"] - 16) / (512 - 16)
    if jitter > 0:
        key = json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, sort_keys=True)
        rng = np.random.default_rng([seed, zlib.crc32(key.encode()), epoch, 1])
        scale *= float(rng.lognormal(0.0, jitter))
    return base_s * scale


def settings(seed: int, *, noise_sd: float = 0.02, epoch_time_s: float = 0.0, jitter: float = 0.0,
             max_epochs: int = MAX_EPOCHS, checkpoint: bool = False, overfit: float = 1.0) -> dict[str, Any]:
    """Constants to merge into the search space: the trainable reads them from its config.

    ``overfit`` scales how much wide, little-regularised models get worse late (at 1, up to
    +0.6 at epoch R). ``checkpoint=True`` makes the trainable checkpoint every epoch, which pausing schedulers
    need; stopping ones do not, and it costs a storage write per epoch.
    """
    return {"_seed": seed, "_noise": noise_sd, "_epoch_s": epoch_time_s, "_jitter": jitter, "_epochs": max_epochs,
            "_checkpoint": checkpoint, "_overfit": overfit}


def train(config: Mapping[str, Any]) -> None:
    """The raytuner trainable: one report per epoch, ``loss`` and ``true_loss``."""
    import raytuner as rt

    seed, sd, max_epochs = config["_seed"], config["_noise"], config["_epochs"]
    checkpoint = rt.get_checkpoint()
    start = json.loads((checkpoint / "epoch.json").read_text())["epoch"] if checkpoint else 0
    for epoch in range(start + 1, max_epochs + 1):
        began = time.time()
        pause = epoch_time(config, epoch, seed, config["_epoch_s"], config["_jitter"])
        if pause:
            time.sleep(pause)
        true = true_loss(config, epoch, max_epochs)
        metrics = {"loss": true + noise(config, epoch, seed, sd), "true_loss": true, "epoch": epoch,
                   "began": began}
        if not config["_checkpoint"]:
            rt.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "epoch.json").write_text(json.dumps({"epoch": epoch}))
            rt.report(metrics, checkpoint=folder)


def train_ray_tune(config: Mapping[str, Any]) -> None:
    """The same trainable for Ray Tune (no checkpoints: its ASHA only stops trials)."""
    from ray import tune

    config = dict(config)
    config["width"] = int(config["width"])
    seed, sd, max_epochs = config["_seed"], config["_noise"], config["_epochs"]
    for epoch in range(1, max_epochs + 1):
        began = time.time()
        pause = epoch_time(config, epoch, seed, config["_epoch_s"], config["_jitter"])
        if pause:
            time.sleep(pause)
        true = true_loss(config, epoch, max_epochs)
        tune.report({"loss": true + noise(config, epoch, seed, sd), "true_loss": true, "epoch": epoch,
                     "began": began, "timestamp_s": time.time()})


def random_configs(n: int = 20_000, seed: int = 12345) -> list[dict[str, Any]]:
    """``n`` random configs (no Ray): to set targets as quantiles of their final loss."""
    from raytuner.search import RandomSearcher

    sampler = RandomSearcher(space(), seed=seed)
    sampler.setup(None, n)
    return [sampler.suggest(str(i)) for i in range(n)]


def register() -> None:
    """Ship this module to Ray workers by value (the benchmarks folder is not installed)."""
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


# -- measuring runs --------------------------------------------------------------------


def epoch_budget(inner: Any, budget: int) -> Any:
    """``inner``, but it stops proposing once its trials have run ``budget`` epochs in all.

    Epochs are counted from the reports the controller passes to the searcher, so the
    experiment ends soon after the budget is spent (running trials finish; the evaluation
    cuts the timeline at ``budget`` anyway).
    """
    from raytuner.search import FINISHED, Searcher

    class EpochBudget(Searcher):
        def __init__(self) -> None:
            self.used = 0
            self._reached: dict[str, float] = {}

        def setup(self, space: Any, num_trials: int) -> None:
            inner.setup(space, num_trials)
            self.space, self.num_trials = inner.space, inner.num_trials

        def suggest(self, trial_id: str) -> Any:
            return FINISHED if self.used >= budget else inner.suggest(trial_id)

        def on_trial_result(self, trial_id: str, resource: float, value: float) -> None:
            self.used += int(resource - self._reached.get(trial_id, 0))
            self._reached[trial_id] = resource
            inner.on_trial_result(trial_id, resource, value)

        def on_trial_complete(self, trial_id: str, outcome: Any) -> None:
            inner.on_trial_complete(trial_id, outcome)

        def state(self) -> dict[str, Any]:
            return inner.state()

        def restore(self, state: dict[str, Any]) -> None:
            inner.restore(state)

    return EpochBudget()


def raytuner_reports(results: Any) -> list[dict[str, Any]]:
    """Every report of an experiment, in the order they were made."""
    rows = []
    for trial in results.trials:
        for row in results.history(trial.trial_id).to_dict("records"):
            rows.append({"trial": trial.trial_id, "t": row["timestamp"], "loss": row["loss"],
                         "true_loss": row["true_loss"], "epoch": row["epoch"], "began": row["began"]})
    rows.sort(key=lambda r: r["t"])
    return rows


def incumbent_curve(rows: list[dict[str, Any]], budget: int | None = None) -> np.ndarray:
    """After each of the first ``budget`` epochs: the true loss of the incumbent, the report
    with the lowest noisy loss so far (what a user would pick)."""
    rows = rows[:budget] if budget is not None else rows
    out = np.empty(len(rows))
    best, chosen = math.inf, math.inf
    for i, row in enumerate(rows):
        if row["loss"] < best:
            best, chosen = row["loss"], row["true_loss"]
        out[i] = chosen
    return out


def trial_depths(rows: list[dict[str, Any]], budget: int | None = None) -> dict[Any, int]:
    """Per trial, the last epoch it reported within the first ``budget`` reports."""
    depth: dict[Any, int] = {}
    for row in rows[:budget] if budget is not None else rows:
        depth[row["trial"]] = max(depth.get(row["trial"], 0), int(row["epoch"]))
    return depth


def epochs_to(curve: np.ndarray, target: float) -> float:
    """Epochs until the incumbent's true loss is at most ``target``; inf if never."""
    hit = np.nonzero(curve <= target)[0]
    return float(hit[0] + 1) if len(hit) else math.inf


def median(values: Any) -> float:
    """Median that keeps inf (a run that never reached the target) as a value."""
    return float(np.median(np.asarray(list(values), dtype=float)))
