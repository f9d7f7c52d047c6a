"""The lifecycle's contract as types and tables: every event has a handler, and a trial's
status moves only along the transitions table, restored trials included."""

from __future__ import annotations

import typing

import pytest

from raytuner._driver import events as ev
from raytuner._driver.lifecycle import Lifecycle, LifecycleSettings
from raytuner._driver.trial_state import TRANSITIONS
from raytuner._trial import Trial, TrialStatus
from raytuner.schedulers import FIFOScheduler
from raytuner.search import RandomSearcher, uniform


def make(trials: dict[str, Trial] | None = None) -> Lifecycle:
    settings = LifecycleSettings(metric="loss", mode="min", num_trials=4, max_concurrent=2, resource_attr=None,
                                 max_failures=0, fail_fast=False, checkpoints_to_keep=None)
    searcher = RandomSearcher({"x": uniform(0, 1)}, seed=0)
    searcher.setup(None, 4)
    return Lifecycle(settings, searcher, FIFOScheduler(), trials=trials, clock=lambda: 5.0)


def test_every_event_has_a_handler_and_every_handled_type_is_an_event():
    assert set(typing.get_args(ev.Event)) == set(Lifecycle._HANDLERS)
    assert set(typing.get_args(ev.Control)) <= set(typing.get_args(ev.Event))


def test_the_transitions_table_covers_every_status_and_finished_trials_stay_finished():
    assert set(TRANSITIONS) == set(TrialStatus)
    assert TRANSITIONS[TrialStatus.COMPLETED] == TRANSITIONS[TrialStatus.STOPPED] == frozenset()
    assert TRANSITIONS[TrialStatus.FAILED] == {TrialStatus.PENDING}  # only a re-run


def test_a_status_change_outside_the_table_is_refused():
    life = make({"00000": Trial("00000", {"x": 0.5}, status=TrialStatus.COMPLETED)})
    with pytest.raises(AssertionError, match="00000: COMPLETED -> RUNNING"):
        life._set_status(life.trials["00000"], TrialStatus.RUNNING)
    assert life.ids(TrialStatus.COMPLETED) == ["00000"]


def test_restored_trials_enter_as_recorded_and_running_ones_wait_for_a_worker_unrecorded():
    trials = {"00000": Trial("00000", {"x": 0.1}, status=TrialStatus.RUNNING),
              "00001": Trial("00001", {"x": 0.2}, status=TrialStatus.PAUSED),
              "00002": Trial("00002", {"x": 0.3}, status=TrialStatus.FAILED)}
    life = make(trials)
    assert life.ids(TrialStatus.PENDING) == ["00000"]
    assert life.ids(TrialStatus.PAUSED) == ["00001"] and life.ids(TrialStatus.FAILED) == ["00002"]
    # Drained closes the paused trial: its record is the only one written, none for the
    # restored RUNNING trial, whose record is rewritten when it runs again.
    out = life.handle(ev.Drained())
    assert [c.trial_id for c in out if isinstance(c, ev.WriteTrial)] == ["00001"]
