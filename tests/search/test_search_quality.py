"""TPE must beat random search on a simple problem, clearly and over several seeds."""

from __future__ import annotations

import math

import numpy as np

from raytuner.search import HyperOptSearcher, Outcome, RandomSearcher, TrialEnd, loguniform, uniform

SPACE = {"x": uniform(-5, 5), "y": uniform(-5, 5), "lr": loguniform(1e-5, 1.0)}
SEEDS = range(8)
BUDGET = 40


def quadratic(config) -> float:
    return (config["x"] - 1.3) ** 2 + (config["y"] + 0.7) ** 2 + (math.log10(config["lr"]) + 2.5) ** 2


def best_after_budget(searcher) -> float:
    searcher.setup(None, BUDGET)
    best = math.inf
    for i in range(BUDGET):
        trial_id = f"{i:05d}"
        value = quadratic(searcher.suggest(trial_id))
        best = min(best, value)
        searcher.on_trial_complete(trial_id, Outcome(TrialEnd.COMPLETED, value))
    return best


def test_tpe_beats_random_on_a_quadratic():
    tpe = np.array([best_after_budget(HyperOptSearcher(SPACE, n_startup=10, seed=s)) for s in SEEDS])
    rnd = np.array([best_after_budget(RandomSearcher(SPACE, seed=s)) for s in SEEDS])
    # Measured: medians 0.72 (TPE) vs 1.96 (random); TPE better on 7 of 8 seeds.
    assert np.median(tpe) < 0.5 * np.median(rnd)
    assert (tpe < rnd).sum() >= 6
