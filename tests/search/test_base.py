"""The searcher plumbing every built-in searcher shares (search/_base.py)."""

from __future__ import annotations

import math

import pytest

from raytuner import search
from raytuner.errors import ConfigError, ProtocolError
from raytuner.search import Outcome, TrialEnd
from raytuner.search._base import check_version, is_full_budget


@pytest.mark.parametrize(
    ("outcome", "full", "failed"),
    [
        (Outcome(TrialEnd.COMPLETED, 1.0), True, False),
        (Outcome(TrialEnd.COMPLETED, math.nan, 9, 9), True, True),  # nothing to learn
        (Outcome(TrialEnd.STOPPED, 1.0, 9, 9), True, False),  # the stop met the end of training
        (Outcome(TrialEnd.STOPPED, None, 9, 9), True, True),
        (Outcome(TrialEnd.STOPPED, 1.0, 3, 9), False, False),  # a low-fidelity value
        (Outcome(TrialEnd.STOPPED, None, None, 9), False, False),  # stopped before reporting
        (Outcome(TrialEnd.FAILED, 1.0, 9, 9), False, True),
    ],
)
def test_how_an_outcome_counts(outcome, full, failed):
    assert (outcome.full_budget, outcome.failed) == (full, failed)
    assert is_full_budget(outcome.end.value, outcome.resource, outcome.max_resource) is full


def test_a_record_still_running_has_not_run_its_budget():
    assert not is_full_budget("pending", None, math.inf)


@pytest.mark.parametrize("state", [{"version": 1}, {}, None, {"version": "2"}])
def test_a_state_of_another_version_is_refused_naming_both(state):
    with pytest.raises(ConfigError, match=r"^S: cannot restore state version .*; this version reads 2\.$"):
        check_version("S", state, 2)
    check_version("S", {"version": 2}, 2)


@pytest.mark.parametrize("name", ["TPESearcher", "HyperOptSearcher", "GPSearcher", "OptunaSearcher"])
def test_each_trial_ends_exactly_once_and_ids_are_new(name):
    searcher = getattr(search, name)({"x": search.uniform(0, 1)}, seed=0)
    searcher.setup(None, 5)
    searcher.on_trial_result("never", 1, 0.5)  # ignored, as a trial the searcher declined
    with pytest.raises(ProtocolError, match=rf"{name}: trial 'never' was never suggested"):
        searcher.on_trial_complete("never", Outcome(TrialEnd.COMPLETED, 1.0))
    searcher.suggest("a")
    searcher.on_trial_complete("a", Outcome(TrialEnd.COMPLETED, 1.0))
    with pytest.raises(ProtocolError, match=rf"{name}: trial 'a' has already ended"):
        searcher.on_trial_complete("a", Outcome(TrialEnd.COMPLETED, 1.0))
    with pytest.raises(ProtocolError, match=rf"{name}: trial 'a' was already suggested"):
        searcher.suggest("a")
