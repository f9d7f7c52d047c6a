"""TPESearcher's split of the observations into good and bad, for one or several objectives.

At the model's level r every trial i has a value y_i: a number, or with k objectives a
vector y_i = (y_i1, ..., y_ik), each entry signed to minimise; NaN where the trial has no
value at r (running, or stopped below r), +inf where it failed or diverged. Let F be the
trials with a finite value (every entry finite) and N the trials that count towards the
split: those finished, and those running with a value at r. The good group has

    n_good = max(1, min(ceil(γ |N|), max_good, |F|))

trials of F (none if F is empty); every other trial is bad, the running ones without a value
among them (the constant liar).

**One objective.** The good group is the n_good smallest y_i (ties by trial order).

**Several objectives** (Ozaki, Tanigaki, Watanabe and Onishi, "Multiobjective tree-structured
Parzen estimator for computationally expensive optimization problems", GECCO 2020; "...
Multiobjective tree-structured Parzen estimator", JAIR 73, 2022; Optuna's
``_split_complete_trials_multi_objective``). The trials of F are sorted into fronts
F_0, F_1, ... by non-dominated rank (F_0: no trial of F dominates them; y ≺ y' when y_j <=
y'_j for every j and y_j < y'_j for one). The good group takes whole fronts F_0, ..., F_{m-1}
while they fit, |F_0| + ... + |F_{m-1}| <= n_good, and fills the remaining
n_good - Σ_{r<m} |F_r| places from F_m by greedy hypervolume subset selection: repeatedly the
trial whose y adds the most hypervolume HV(S ∪ {y}; z) - HV(S; z) to the trials S of F_m
already taken, with the reference point z of F_m's values (``raytuner._pareto.
reference_point``: per objective, the worst value plus a tenth of the front's span), ties
to the earlier trial. This is the "ties in the last rank broken by hypervolume
contribution" of Ozaki et al.; the greedy choice is within 1 - 1/e of the best subset.

Differences from Optuna 5: n_good is capped by ``max_good`` as with one objective (Optuna
drops the cap of 25 with several objectives; ours binds past 250 trials, where a front
rarely holds more good trials than that), and the reference point is shift-invariant
(Optuna's is max(1.1 w, 0.9 w) of the front's worst values w).
"""

from __future__ import annotations

import math

import numpy as np

from raytuner._pareto import pareto_select


def finite_rows(values: np.ndarray) -> np.ndarray:
    """Which trials have a finite value: (n,) values, or (n, k) with every entry finite."""
    finite = np.isfinite(values)
    return finite if values.ndim == 1 else finite.all(axis=1)


def missing_rows(values: np.ndarray) -> np.ndarray:
    """Which trials have no value (NaN; a row of NaN with several objectives)."""
    missing = np.isnan(values)
    return missing if values.ndim == 1 else missing.all(axis=1)


def split(values: np.ndarray, in_rows: np.ndarray, pending: np.ndarray, gamma: float,
          max_good: int) -> tuple[np.ndarray, np.ndarray]:
    """(good rows, bad rows) among ``in_rows``, by the rules of the module docstring.

    Args:
        values: (n,) or (n, k) values at the model's level.
        in_rows: (n,) bool, the trials the split is made among.
        pending: (n,) bool, the trials still running.
        gamma: γ.
        max_good: The most good trials.
    """
    finite_mask = finite_rows(values)
    finite = np.flatnonzero(in_rows & finite_mask)
    ranked = np.count_nonzero(in_rows & (~pending | finite_mask))
    n_good = min(math.ceil(gamma * ranked), max_good, len(finite))
    if not len(finite):
        good = np.empty(0, dtype=int)
    elif values.ndim == 1:
        order = finite[np.argsort(values[finite], kind="stable")]
        good = np.sort(order[: max(n_good, 1)])
    else:
        good = finite[pareto_select(values[finite], max(n_good, 1))]
    bad_mask = in_rows.copy()
    bad_mask[good] = False
    return good, np.flatnonzero(bad_mask)
