"""The two tables search_sim.py and search_quality.py print, over the seeds of a comparison.

``best[m]``: per seed, the score of method m's incumbent after the budget (the true loss
of the report with the lowest noisy loss; on a table, its test value). The first table
compares medians with ``ref``'s (wins/ties/losses seed by seed), the epochs the
incumbent took to reach the target and, with ``trials``, the trials a run started and
those that ran the full budget. The second gives the regret, the score minus the
problem's least value, with the ratio of medians to a reference and its 90% paired
bootstrap interval (``_stats``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

import _synthetic as syn
from _stats import median_ratio, record


class Scores:
    """Per method, over the seeds: what the two tables print."""

    def __init__(self, methods: Sequence[str]) -> None:
        self.methods = list(methods)
        self.best: dict[str, list[float]] = {m: [] for m in methods}
        self.reach: dict[str, list[float]] = {m: [] for m in methods}
        self.chosen_val: dict[str, list[float]] = {m: [] for m in methods}
        self.trials: dict[str, list[int]] = {m: [] for m in methods}
        self.full: dict[str, list[int]] = {m: [] for m in methods}
        self.seconds = {m: 0.0 for m in methods}

    def add(self, method: str, rows: list[dict[str, Any]], budget: int, target: float, max_epochs: int,
            seconds: float, trials: int | None = None) -> np.ndarray:
        """Score one run from its reports in the order they were made (cut at ``budget``);
        ``trials``: the trials it started, where some may not have reported (else counted
        from the reports). Returns the incumbent's score after each epoch."""
        curve = syn.incumbent_curve(rows, budget)
        depth = syn.trial_depths(rows, budget)
        self.best[method].append(float(curve[-1]))
        self.reach[method].append(syn.epochs_to(curve, target))
        self.chosen_val[method].append(min(row["loss"] for row in rows[:budget]))
        self.trials[method].append(len(depth) if trials is None else trials)
        self.full[method].append(sum(epochs >= max_epochs for epochs in depth.values()))
        self.seconds[method] += seconds
        return curve


def results(scores: Scores, ref: str, stats: bool = True) -> None:
    """Median and mean score, its ratio to ``ref``'s median, epochs to the target; with
    ``stats`` the trials a run started and those that ran the full budget; seconds per seed."""
    best, reach = scores.best, scores.reach
    n = len(best[ref])
    header = (f"{'method':<24} {'median best':>11} {'mean best':>9} {'vs ' + ref:>16} {'epochs to target':>16} "
              f"{'reached':>8} {'W/T/L vs ' + ref:>18}")
    if stats:
        header += f" {'trials':>6} {'full':>5}"
    print(header + f" {'s/seed':>6}")
    for method in scores.methods:
        med, ref_med = syn.median(best[method]), syn.median(best[ref])
        hits = sum(math.isfinite(e) for e in reach[method])
        line = (f"{method:<24} {med:11.4f} {np.mean(best[method]):9.4f} {med / ref_med:16.3f} "
                f"{syn.median(reach[method]):16.0f} {hits:>4}/{n:<3} {record(best[method], best[ref]):>18}")
        if stats:
            line += f" {np.mean(scores.trials[method]):6.1f} {np.mean(scores.full[method]):5.1f}"
        print(line + f" {scores.seconds[method] / n:6.2f}", flush=True)


def regrets(scores: Scores, spec: SimpleNamespace, ref: str) -> None:
    """Regret with the ratio of medians to ``ref``'s; where the problem has a validation
    value of its own (``spec.val_minimum``, the MLP table), also the validation regret of
    the incumbent."""
    methods = scores.methods
    test = {m: np.asarray(scores.best[m]) - spec.minimum for m in methods}
    tables = [("regret", test)]
    if hasattr(spec, "val_minimum"):
        tables.append(("val regret", {m: np.asarray(scores.chosen_val[m]) - spec.val_minimum for m in methods}))
    print(f"regret: incumbent's {'test' if len(tables) > 1 else 'true'} value - least ({spec.minimum:.4f}); "
          f"ratios of medians to {ref}, [90% bootstrap interval]")
    print(f"{'method':<24}" + "".join(f" {'median ' + name:>17} {'mean':>8} {'vs ' + ref:>14} {'[90%]':>13} "
                                      f"{'W/T/L':>10}" for name, _ in tables))
    for m in methods:
        line = f"{m:<24}"
        for _, r in tables:
            ratio, low, high = median_ratio(r[m], r[ref])
            line += (f" {np.median(r[m]):17.4f} {np.mean(r[m]):8.4f} {ratio:14.3f} {f'[{low:.2f}, {high:.2f}]':>13} "
                     f"{record(r[m], r[ref]):>10}")
        print(line, flush=True)
