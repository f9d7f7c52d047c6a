"""Parameter importance by fANOVA over a random forest, as Optuna computes it.

Hutter, Hoos and Leyton-Brown, "An Efficient Approach for Assessing Hyperparameter
Importance" (ICML 2014): fit a random forest to (config, metric); in each tree, the
prediction is piecewise constant over boxes of the space, so the variance of the
prediction over the whole space, and the variance of its marginal in one parameter
(the prediction averaged over all the others), are exact sums over the tree's leaves.
A parameter's importance is the share of the tree's variance that its marginal explains,
averaged over the trees. Optuna's ``FanovaImportanceEvaluator`` does the same with
scikit-learn's ``RandomForestRegressor(n_estimators=64, max_depth=64)``; so does this.

Differences from Optuna, on purpose: a categorical parameter is one ordinal column (its
values' codes) instead of a one-hot group, and a parameter's range is the one its trials
span (log-scaled for log-uniform ones) instead of its distribution's bounds. Shares are
not rescaled to sum to 1: what the main effects leave over is the interactions' share.

Unlike the correlation ratio it replaces, a parameter that does not matter scores near 0
also with few trials: the forest has no reason to split on it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

N_TREES = 64
MAX_DEPTH = 64


def encode(params: Sequence[Any]) -> np.ndarray:
    """One column per :class:`raytuner._report._data.Param`: numbers (log10 of log-scaled
    ones) as they are, categories as the codes of their sorted labels."""
    from raytuner._report._data import label

    columns = []
    for param in params:
        if param.numeric:
            values = np.asarray([float(v) for v in param.values])
            columns.append(np.log10(values) if param.log else values)
        else:
            labels = [label(v) for v in param.values]
            codes = {text: i for i, text in enumerate(sorted(set(labels)))}
            columns.append(np.asarray([codes[t] for t in labels], dtype=float))
    return np.column_stack(columns) if columns else np.zeros((0, 0))


def fanova(x: np.ndarray, y: Sequence[float], seed: int = 0) -> np.ndarray:
    """The main-effect share of the variance of ``y`` for each column of ``x``.

    Args:
        x: (n, d) parameter values, numbers.
        y: n metric values; non-finite ones are left out.
        seed: The forest's random state (importances are reproducible).
    """
    from sklearn.ensemble import RandomForestRegressor

    y = np.asarray(y, dtype=float)
    keep = np.isfinite(y)
    x, y = np.asarray(x, dtype=float)[keep], y[keep]
    d = x.shape[1] if x.ndim == 2 else 0
    if len(y) < 3 or d == 0 or np.ptp(y) == 0:
        return np.zeros(d)
    low, high = x.min(axis=0), x.max(axis=0)
    width = np.where(high > low, high - low, 1.0)
    forest = RandomForestRegressor(n_estimators=N_TREES, max_depth=MAX_DEPTH, min_samples_split=2,
                                   min_samples_leaf=1, random_state=seed).fit(x, y)
    shares = [_tree_shares(est.tree_, low, high, width) for est in forest.estimators_]
    return np.mean([s for s in shares if s is not None] or [np.zeros(d)], axis=0)


def _leaf_boxes(tree: Any, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each leaf's box (lower and upper bounds per parameter) and its prediction."""
    los, his, values = [], [], []
    stack = [(0, low.copy(), high.copy())]
    while stack:
        node, lo, hi = stack.pop()
        left, right = tree.children_left[node], tree.children_right[node]
        if left == right:  # a leaf
            los.append(lo)
            his.append(hi)
            values.append(tree.value[node].ravel()[0])
            continue
        f, t = tree.feature[node], tree.threshold[node]
        split = min(max(t, lo[f]), hi[f])
        lo_right, hi_left = lo.copy(), hi.copy()
        hi_left[f], lo_right[f] = split, split
        stack.append((left, lo, hi_left))
        stack.append((right, lo_right, hi))
    return np.asarray(los), np.asarray(his), np.asarray(values)


def _tree_shares(tree: Any, low: np.ndarray, high: np.ndarray, width: np.ndarray) -> np.ndarray | None:
    lo, hi, value = _leaf_boxes(tree, low, high)
    span = high > low
    frac = np.where(span, (hi - lo) / width, 1.0)  # each leaf's share of the range, per parameter
    volume = frac.prod(axis=1)
    mean = float(volume @ value)
    total = float(volume @ (value - mean) ** 2)
    if not total > 0:
        return None
    shares = np.zeros(lo.shape[1])
    for f in np.flatnonzero(span):
        # The marginal in f is constant between consecutive leaf edges: each leaf adds its
        # value, weighted by its volume in the other parameters, over its own interval.
        edges = np.unique(np.concatenate([lo[:, f], hi[:, f]]))
        sizes = np.diff(edges) / width[f]
        with np.errstate(invalid="ignore", divide="ignore"):
            other = np.where(frac[:, f] > 0, volume / frac[:, f], 0.0)
        step = np.zeros(len(edges))
        np.add.at(step, np.searchsorted(edges, lo[:, f]), value * other)
        np.add.at(step, np.searchsorted(edges, hi[:, f]), -value * other)
        marginal = np.cumsum(step)[:-1]
        shares[f] = float(sizes @ (marginal - mean) ** 2) / total
    return shares


def importance(data: Any) -> dict[str, float]:
    """fANOVA shares of the report's parameters, largest first (for report and dashboard)."""
    if len(data.values) < 3 or not data.params:
        return {p.name: 0.0 for p in data.params}
    shares = fanova(encode(data.params), [data.sign * v for v in data.values])
    scores = {p.name: float(s) if math.isfinite(s) else 0.0 for p, s in zip(data.params, shares)}
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))
