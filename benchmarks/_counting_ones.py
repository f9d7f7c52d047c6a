"""Counting ones: the multi-fidelity benchmark of the BOHB paper, with a known optimum.

Falkner, Klein and Hutter (BOHB, ICML 2018, section 5.1) define, over ``N_cat`` binary
and ``N_cont`` continuous parameters,

    f(x) = -( sum_{i < N_cat} x_i + sum_{j < N_cont} E[B(p = x_j)] ) / (N_cat + N_cont)

with x_i in {0, 1}, x_j in [0, 1] and B(p) a Bernoulli variable. At budget b each
expectation is estimated from b Bernoulli samples, so low budgets are noisy estimates of
the same function; the optimum is -1 (every parameter 1). The paper uses 8 + 8 parameters
and budgets 9 to 729 samples.

Here a report after epoch t of R = 27 estimates the expectations from the first 27 t
samples (b = 27, 81, 243, 729 at ASHA's rungs 1, 3, 9, 27), drawn once per (seed,
config), so a trial's reports form a curve that converges on its true value f(x) and
two methods on one seed see the same samples for the same config.

    >>> round(true_loss({**{f"c{i}": 1 for i in range(N_CAT)}, **{f"x{j}": 1.0 for j in range(N_CONT)}}), 3)
    -1.0
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Mapping

import numpy as np

N_CAT = N_CONT = 8
MAX_EPOCHS = 27
SAMPLES_PER_EPOCH = 27
MINIMUM = -1.0
"""f at the optimum: every binary parameter 1 and every probability 1."""

_CATS = [f"c{i}" for i in range(N_CAT)]
_CONTS = [f"x{j}" for j in range(N_CONT)]


def space() -> dict[str, Any]:
    """The search space in raytuner's DSL: ``choice([0, 1])`` and ``uniform(0, 1)``."""
    import raytuner as rt

    return {**{k: rt.choice([0, 1]) for k in _CATS}, **{k: rt.uniform(0.0, 1.0) for k in _CONTS}}


def hyperopt_space() -> dict[str, Any]:
    """The same space as hyperopt expressions (for Ray Tune's HyperOptSearch)."""
    from hyperopt import hp

    return {**{k: hp.choice(k, [0, 1]) for k in _CATS}, **{k: hp.uniform(k, 0.0, 1.0) for k in _CONTS}}


def true_loss(config: Mapping[str, Any]) -> float:
    """f(x): the value an infinite budget would report."""
    total = sum(int(config[k]) for k in _CATS) + sum(float(config[k]) for k in _CONTS)
    return -total / (N_CAT + N_CONT)


def report(config: Mapping[str, Any], epoch: int, seed: int) -> tuple[float, float]:
    """(estimate of f after ``epoch`` epochs, f): the estimate uses ``27 * epoch`` samples
    per continuous parameter, the first ones of a stream fixed by (seed, config)."""
    key = json.dumps({k: config[k] for k in _CATS + _CONTS}, sort_keys=True)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    p = np.clip([float(config[k]) for k in _CONTS], 0.0, 1.0)
    hits = rng.binomial(SAMPLES_PER_EPOCH, p, size=(epoch, N_CONT)).sum(axis=0)
    estimate = sum(int(config[k]) for k in _CATS) + float(np.sum(hits)) / (SAMPLES_PER_EPOCH * epoch)
    return -estimate / (N_CAT + N_CONT), true_loss(config)


def random_configs(n: int = 20_000, seed: int = 12345) -> list[dict[str, Any]]:
    """Uniform draws from the space (for the simulation's target quantile)."""
    rng = np.random.default_rng(seed)
    cats, conts = rng.integers(0, 2, size=(n, N_CAT)), rng.uniform(size=(n, N_CONT))
    return [{**dict(zip(_CATS, map(int, c))), **dict(zip(_CONTS, map(float, x)))} for c, x in zip(cats, conts)]
