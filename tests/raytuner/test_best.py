"""The one definition of the best trial (raytuner._best), on known answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from raytuner._best import best_trial


@dataclass
class T:
    trial_id: str
    status: str
    metrics: dict = field(default_factory=dict)
    best_value: float | None = None


def test_failed_trials_lose_to_any_trial_with_a_value():
    trials = [T("0", "FAILED", {"loss": 0.1}), T("1", "STOPPED", {"loss": 0.9}), T("2", "STOPPED", {"loss": 0.5})]
    assert best_trial(trials, "loss", "min").trial_id == "2"
    only_failed = [T("0", "FAILED", {"loss": 0.3}), T("1", "FAILED", {"loss": 0.2}), T("2", "STOPPED", {})]
    assert best_trial(only_failed, "loss", "min").trial_id == "1"


def test_damaged_and_non_finite_never_count_and_ties_go_to_the_first():
    trials = [T("0", "DAMAGED", {"acc": 1.0}), T("1", "COMPLETED", {"acc": math.nan}),
              T("2", "COMPLETED", {"acc": math.inf}), T("3", "COMPLETED", {"acc": 0.7}),
              T("4", "RUNNING", {"acc": 0.7}), T("5", "COMPLETED", {"acc": True})]
    assert best_trial(trials, "acc", "max").trial_id == "3"
    assert best_trial([T("0", "DAMAGED", {"acc": 1.0})], "acc", "max") is None


def test_scope_all_ranks_by_each_trials_best_report():
    trials = [T("0", "COMPLETED", {"loss": 0.5}, best_value=0.1), T("1", "COMPLETED", {"loss": 0.3}, best_value=0.3)]
    assert best_trial(trials, "loss", "min", "last").trial_id == "1"
    assert best_trial(trials, "loss", "min", "all").trial_id == "0"
    # another metric than the Tuner's: only last values are known
    assert best_trial(trials, "loss", "min", "all", own_metric=False).trial_id == "1"
