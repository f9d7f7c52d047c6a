"""How noisy a benchmark's comparison is: a paired bootstrap over seeds, and wins/ties/losses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def median_ratio(values: Any, ref: Any, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(median(values) / median(ref), 5% and 95% quantiles of that ratio over bootstrap
    resamples of the seeds). ``values[i]`` and ``ref[i]`` come from seed i, and a resample
    keeps the pairs together. NaN where the reference median is 0 (the ratio is undefined;
    a resample whose reference median is 0 is left out of the interval)."""
    a, b = np.asarray(values, dtype=float), np.asarray(ref, dtype=float)
    ratio = float(np.median(a) / np.median(b)) if np.median(b) > 0 else math.nan
    picks = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    num, den = np.median(a[picks], axis=1), np.median(b[picks], axis=1)
    boot = num[den > 0] / den[den > 0]
    if not len(boot):
        return ratio, math.nan, math.nan
    low, high = np.quantile(boot, [0.05, 0.95])
    return ratio, float(low), float(high)


def record(values: Any, ref: Any) -> str:
    """Wins/ties/losses of ``values`` against ``ref``, seed by seed (lower is better)."""
    a, b = np.asarray(values, dtype=float), np.asarray(ref, dtype=float)
    wins, losses = int(np.sum(a < b)), int(np.sum(a > b))
    return f"{wins}/{len(a) - wins - losses}/{losses}"
