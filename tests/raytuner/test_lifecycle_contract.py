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


def test_after_reconcile_the_trials_the_last_driver_ran_are_recorded_waiting_for_a_worker():
    trials = {"00000": Trial("00000", {"x": 0.1}, status=TrialStatus.RUNNING),
              "00001": Trial("00001", {"x": 0.2}, status=TrialStatus.PAUSED),
              "00002": Trial("00002", {"x": 0.3}, status=TrialStatus.RUNNING)}
    life = make(trials)
    out = life.reconcile(3, set())
    # Readers show them PENDING until a worker takes them, not RUNNING (a resume with fewer
    # slots than they are keeps some waiting); each record once, the paused trial's as it was.
    written = {c.trial_id: c.record["status"] for c in out if isinstance(c, ev.WriteTrial)}
    assert written == {"00000": "PENDING", "00002": "PENDING"}
    assert not [c for c in life.reconcile(3, set()) if isinstance(c, ev.WriteTrial)]


def test_a_restored_pbt_trial_is_ranked_by_the_value_at_its_last_fed_resource():
    from raytuner.schedulers import PBTScheduler

    trial = Trial("00000", {"x": 0.1}, status=TrialStatus.PAUSED, fed_resource=4.0)
    trial.trajectory = [(1, 1.0, 0.9), (2, 2.0, 0.5), (3, 3.0, 0.45), (4, 4.0, 0.3)]
    pbt = PBTScheduler(2, {"x": uniform(0, 1)})  # its saved state (none here) saw no perturbation of 00000
    life = Lifecycle(LifecycleSettings(metric="loss", mode="min", num_trials=1, max_concurrent=1, resource_attr=None,
                                       max_failures=0, fail_fast=False, checkpoints_to_keep=None),
                     RandomSearcher({"x": uniform(0, 1)}, seed=0), pbt, trials={"00000": trial}, next_id=1)
    assert life.scheduler is pbt
    assert (pbt._members["00000"].point, pbt._members["00000"].score) == (4.0, 0.3)
