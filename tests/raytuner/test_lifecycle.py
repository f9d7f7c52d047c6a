"""The trial lifecycle, driven by synthetic event streams: no Ray, exact commands asserted.

Workers are plain strings here; reports and exits are the records a real worker sends.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from raytuner._driver import events as ev
from raytuner._driver.lifecycle import Lifecycle
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.protocol import Event, Signal, TrialExit
from raytuner.errors import RayTunerError, ReportError, ResourceError
from raytuner.schedulers import ASHAScheduler, Decision, HyperbandScheduler
from raytuner.search import Outcome, TrialEnd


from tests.raytuner.lifecycle_fakes import (  # noqa: E402
    ListSearcher, ScriptedScheduler, check_index, make, of, report, reported, settings)


# -- starting trials -------------------------------------------------------------------------
def test_fill_launches_one_new_trial_per_idle_worker_up_to_max_concurrent():
    life = make()
    out = life.handle(ev.Fill(idle=("w1", "w2", "w3"), starting=0, pool_size=3))
    launches = of(out, ev.Launch)
    assert [(c.worker, c.trial_id, c.config, c.checkpoint, c.start_iteration) for c in launches] == [
        ("w3", "00000", {"k": 0}, None, 0), ("w2", "00001", {"k": 1}, None, 0)]
    assert of(out, ev.WriteConfig) == [ev.WriteConfig("00000", {"k": 0}), ev.WriteConfig("00001", {"k": 1})]
    assert [c.args[0] for c in of(out, ev.Notify)] == ["00000", "00001"]
    assert life.slots_used() == 2 and life.trials["00000"].start_time == 5.0
    check_index(life)


def test_fill_without_idle_workers_spawns_what_is_missing():
    life = make(max_concurrent=3)
    assert life.handle(ev.Fill(idle=(), starting=0, pool_size=0)) == [ev.Spawn(3)]
    assert life.handle(ev.Fill(idle=(), starting=2, pool_size=2)) == [ev.Spawn(1)]
    assert life.handle(ev.Fill(idle=(), starting=3, pool_size=3)) == []


def test_streamed_reports_get_no_decision_and_a_report_that_waits_gets_continue():
    life = make(ScriptedScheduler())
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(1, 0.5, awaits=False)))
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", None, 2)]
    out = life.handle(reported("00000", report(2, 0.4, awaits=True)))
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", Signal.CONTINUE, 3)]
    rows = of(out, ev.AppendResults)[0].rows
    assert rows == [{"loss": 0.4, "iteration": 2, "time_total_s": 2.0, "timestamp": 1002.0, "attempt": 1}]
    assert life.searcher.results == [("00000", 1, 0.5), ("00000", 2, 0.4)]


def test_max_mode_signs_values_for_searcher_and_scheduler():
    life = make(mode="max")
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5)))
    assert life.searcher.results == [("00000", 1, -0.5)]
    assert life.trials["00000"].best_value == -0.5


def test_a_completed_trial_frees_its_worker_and_is_closed_once_everywhere():
    life = make(searcher=ListSearcher(n=1), scheduler=(scheduler := ScriptedScheduler()))
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(1, 0.3), exit=TrialExit(Signal.COMPLETED)))
    assert of(out, ev.Release) == [ev.Release("w1")]
    assert life.trials["00000"].status is TrialStatus.COMPLETED and life.trials["00000"].end_time == 5.0
    assert life.searcher.ends["00000"] == Outcome(TrialEnd.COMPLETED, 0.3, 1, 9)
    assert ("complete", "00000") in scheduler.calls
    assert [c.args[0].status for c in of(out, ev.Notify) if c.hook == "on_trial_end"] == [TrialStatus.COMPLETED]
    assert not life.busy
    assert life.handle(ev.Fill(idle=("w1",), pool_size=1)) == []  # FINISHED: nothing more to run
    assert not life.may_have_work()
    check_index(life)


def test_a_stored_checkpoint_is_committed_by_the_row_that_names_it():
    life = make(checkpoints_to_keep=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(3, 0.3, checkpoint=True)))
    trial = life.trials["00000"]
    assert (trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time_s) == ("checkpoint_000003", 3, 3.0)
    # The worker stored the folder before it reported; the row that names it is the commit,
    # written before the trial's record.
    kinds = [type(c) for c in out if isinstance(c, (ev.AppendResults, ev.WriteTrial, ev.DeleteCheckpoints))]
    assert kinds[0] is ev.AppendResults and ev.DeleteCheckpoints not in kinds
    assert of(out, ev.AppendResults)[0].rows[0]["checkpoint"] == "checkpoint_000003"


def test_older_checkpoints_go_only_after_the_row_committing_a_newer_one():
    life = make(checkpoints_to_keep=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, checkpoint=True)))
    out = life.handle(reported("00000", report(2, 0.4, checkpoint=True)))
    commands = [c for c in out if isinstance(c, (ev.AppendResults, ev.DeleteCheckpoints))]
    assert [type(c) for c in commands] == [ev.AppendResults, ev.DeleteCheckpoints]
    assert commands[0].rows[0]["checkpoint"] == "checkpoint_000002"
    assert commands[1] == ev.DeleteCheckpoints("00000", ("checkpoint_000001",))


# -- the races of the report path ---------------------------------------------------------------
def test_stop_hands_the_worker_its_next_trial_at_once_and_the_stop_lands_later():
    scheduler = ScriptedScheduler({("00000", 1): Decision.STOP})
    life = make(scheduler, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(1, 9.0)))
    assert of(out, ev.Deliver, ev.Release) == [ev.Deliver("w1", "00000", Signal.STOP, math.inf), ev.Release("w1")]
    assert life.slots_used() == 0
    out = life.handle(ev.Fill(idle=("w1",), pool_size=1))
    assert [(c.worker, c.trial_id) for c in of(out, ev.Launch)] == [("w1", "00001")]
    # The stop's answer: the reports made meanwhile are recorded but not decided on, and the
    # worker is not released twice (it already runs 00001).
    out = life.handle(reported("00000", report(2, 8.0, awaits=False), exit=TrialExit(Signal.STOP)))
    assert of(out, ev.Release) == []
    assert life.trials["00000"].status is TrialStatus.STOPPED and life.trials["00000"].iteration == 2
    assert life.searcher.results == [("00000", 1, 9.0)]
    assert life.searcher.ends["00000"].end is TrialEnd.STOPPED
    check_index(life)


def test_stop_keeps_the_worker_when_there_is_nothing_left_to_hand_it():
    scheduler = ScriptedScheduler({("00000", 1): Decision.STOP})
    life = make(scheduler, searcher=ListSearcher(n=1), num_trials=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(1, 9.0)))
    assert of(out, ev.Release) == []
    out = life.handle(reported("00000", exit=TrialExit(Signal.STOP)))
    assert of(out, ev.Release) == [ev.Release("w1")]


def test_a_promotion_while_the_pause_is_in_flight_waits_for_the_pause_then_goes_first():
    scheduler = ScriptedScheduler({("00000", 2): Decision.PAUSE}, resume=["00000"])
    life = make(scheduler, max_concurrent=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=2))
    out = life.handle(reported("00000", report(1, 0.5), report(2, 0.4, checkpoint=True)))
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", Signal.PAUSE, math.inf)]
    assert of(out, ev.Release) == []  # a pausing trial keeps its slot
    # A slot frees: the scheduler resumes 00000 before its worker confirmed the pause, so
    # no new trial takes the slot.
    out = life.handle(ev.Fill(idle=("w2",), pool_size=2))
    assert of(out, ev.Launch) == []
    out = life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    assert of(out, ev.Release) == [ev.Release("w1")]
    assert life.trials["00000"].status is TrialStatus.PENDING
    out = life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    launches = of(out, ev.Launch)
    assert [(c.trial_id, c.checkpoint, c.start_iteration, c.start_time_s) for c in launches] == [
        ("00000", "checkpoint_000002", 2, 2.0), ("00001", None, 0, 0.0)]
    assert "00000" not in life.searcher.ends  # paused, never closed
    check_index(life)


def test_a_worker_lost_during_a_pause_retries_from_the_checkpoint():
    scheduler = ScriptedScheduler({("00000", 2): Decision.PAUSE})
    life = make(scheduler, max_failures=1, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(2, 0.4, checkpoint=True)))
    out = life.handle(ev.CallFailed("00000", "The trial's worker died: ActorDiedError", worker_lost=True))
    assert of(out, ev.Discard, ev.Release) == [ev.Discard("w1")]
    assert of(out, ev.AppendError)[0].text.endswith("The trial's worker died: ActorDiedError")
    trial = life.trials["00000"]
    assert trial.status is TrialStatus.PENDING and trial.num_failures == 1
    out = life.handle(ev.Fill(idle=("w2",), pool_size=1))
    assert [(c.trial_id, c.checkpoint) for c in of(out, ev.Launch)] == [("00000", "checkpoint_000002")]
    check_index(life)


def test_a_trial_out_of_retries_fails_and_everyone_hears_once():
    scheduler = ScriptedScheduler()
    life = make(scheduler, max_failures=0)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "Traceback...\nKeyError: 'x'", "KeyError", "'x'")))
    assert of(out, ev.Release) == [ev.Release("w1")]
    assert life.trials["00000"].status is TrialStatus.FAILED
    assert life.trials["00000"].error == "Traceback...\nKeyError: 'x'"
    assert life.searcher.ends["00000"].end is TrialEnd.FAILED
    assert ("error", "00000") in scheduler.calls
    assert life.abort is None


def test_fail_fast_aborts_with_a_message_that_says_how_to_resume():
    life = make(fail_fast=True)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "boom", "ValueError", "boom")))
    assert isinstance(life.abort, RayTunerError)
    assert "raytuner.Tuner.resume('/exp')" in str(life.abort)
    assert life.handle(ev.Fill(idle=("w1",), pool_size=1)) == []


def test_a_fatal_error_aborts_without_retrying_and_the_other_trials_stop():
    life = make(max_failures=3)
    life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    life.handle(reported("00001", exit=TrialExit(Signal.ERROR, "tb", "ReportError", "no 'loss'", fatal=True)))
    assert isinstance(life.abort, ReportError) and str(life.abort) == "no 'loss'"
    assert life.trials["00001"].status is TrialStatus.FAILED
    assert life.handle(ev.Fill(idle=("w1",), pool_size=2)) == []
    out = life.end_for_abort()
    assert of(out, ev.Discard) == [ev.Discard("w2")]
    assert (life.trials["00000"].status, life.trials["00000"].note) == (TrialStatus.STOPPED, "experiment aborted")
    check_index(life)


def test_a_fatal_error_keeps_its_raytuner_class_across_the_boundary():
    life = make()
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "tb", "ResourceError", "not increasing", fatal=True)))
    assert type(life.abort) is ResourceError and str(life.abort) == "not increasing"


def test_complete_at_full_budget_ends_the_trial_completed_without_telling_the_scheduler_again():
    scheduler = ScriptedScheduler({("00000", 9): Decision.COMPLETE})
    life = make(scheduler, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(9, 0.1)))
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", Signal.STOP, math.inf)]
    life.handle(reported("00000", exit=TrialExit(Signal.STOP)))
    assert life.trials["00000"].status is TrialStatus.COMPLETED
    assert life.searcher.ends["00000"] == Outcome(TrialEnd.COMPLETED, 0.1, 9, 9)
    assert ("complete", "00000") not in scheduler.calls


def test_a_resource_already_seen_is_not_decided_on_again():
    # A trial resumed from an older checkpoint re-reports resources the scheduler has seen.
    scheduler = ScriptedScheduler()
    life = make(scheduler)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5), report(2, 0.4)))
    life.handle(reported("00000", report(2, 0.45), report(3, 0.3)))
    assert life.searcher.results == [("00000", 1, 0.5), ("00000", 2, 0.4), ("00000", 3, 0.3)]


def test_asha_promotion_pauses_and_resumes_through_the_lifecycle():
    asha = ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion")
    life = make(asha, max_concurrent=1, num_trials=3)
    for trial_id, loss in (("00000", 0.5), ("00001", 2.0), ("00002", 1.0)):
        out = life.handle(ev.Fill(idle=("w1",), pool_size=1))
        assert [c.trial_id for c in of(out, ev.Launch)] == [trial_id]
        out = life.handle(reported(trial_id, report(1, loss, checkpoint=True)))
        assert of(out, ev.Deliver)[0].signal is Signal.PAUSE
        life.handle(reported(trial_id, exit=TrialExit(Signal.PAUSE)))
    # Three results at rung 1: the best (00000) is promoted and resumes from its checkpoint.
    out = life.handle(ev.Fill(idle=("w1",), pool_size=1))
    assert [(c.trial_id, c.checkpoint, c.start_iteration) for c in of(out, ev.Launch)] == [
        ("00000", "checkpoint_000001", 1)]
    check_index(life)


# -- the experiment's end ---------------------------------------------------------------------
def test_interrupt_puts_running_trials_back_to_pending_for_resume():
    life = make()
    life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    out = life.handle(ev.Interrupt())
    assert of(out, ev.Discard) == [ev.Discard("w2"), ev.Discard("w1")]
    assert {t.status for t in life.trials.values()} == {TrialStatus.PENDING}
    assert {t.note for t in life.trials.values()} == {"interrupted (Ctrl-C)"}
    assert life.searcher.ends == {}
    check_index(life)


def test_the_deadline_stops_running_and_paused_trials_and_nothing_new_starts():
    scheduler = ScriptedScheduler({("00000", 1): Decision.PAUSE})
    life = make(scheduler)
    life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    life.handle(reported("00000", report(1, 0.5)))
    life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    life.handle(ev.Deadline())
    assert {t: trial.status for t, trial in life.trials.items()} == {
        "00000": TrialStatus.STOPPED, "00001": TrialStatus.STOPPED}
    assert set(life.searcher.ends) == {"00000", "00001"}
    assert ("remove", "00000") in scheduler.calls and ("remove", "00001") in scheduler.calls
    assert life.handle(ev.Fill(idle=("w3",), pool_size=1)) == [] and not life.may_have_work()
    check_index(life)


def test_drained_closes_paused_trials_that_nothing_resumes():
    scheduler = ScriptedScheduler({("00000", 1): Decision.PAUSE})
    life = make(scheduler, searcher=ListSearcher(n=1), num_trials=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5)))
    life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    life.handle(ev.Drained())
    trial = life.trials["00000"]
    assert (trial.status, trial.note) == (TrialStatus.STOPPED, "paused when the experiment ended")
    assert life.searcher.ends["00000"].end is TrialEnd.STOPPED


def test_a_hyperband_loser_whose_pause_has_not_landed_ends_stopped_when_it_lands():
    """Another trial's report closes the round while a loser's PAUSE is still on its way
    from its worker: the scheduler names the loser once, and it ends STOPPED when its pause
    lands, not PAUSED until the experiment ends (found by the crash harness's Hyperband kind)."""
    life = make(HyperbandScheduler(max_resource=5), searcher=ListSearcher(n=3), num_trials=3, max_concurrent=2)
    life.handle(ev.Fill(idle=("w0", "w1"), pool_size=2))
    for trial_id, loss in [("00000", 0.1), ("00001", 0.5)]:  # both reach the milestone (report 2) and pause
        out = life.handle(reported(trial_id, report(1, loss, awaits=False), report(2, loss)))
        assert of(out, ev.Deliver)[0].signal is Signal.PAUSE
    life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    life.handle(ev.Fill(idle=("w0",), pool_size=2))  # 00002 starts; 00001's pause is still on its way
    out = life.handle(reported("00002", report(1, 0.9, awaits=False), report(2, 0.9)))
    assert of(out, ev.Deliver)[0].signal is Signal.STOP  # it closed the round, and lost it
    assert life.trials["00001"].status is TrialStatus.RUNNING
    life.handle(reported("00001", exit=TrialExit(Signal.PAUSE)))
    trial = life.trials["00001"]
    assert (trial.status, trial.note) == (TrialStatus.STOPPED, None)
    assert life.searcher.ends["00001"].end is TrialEnd.STOPPED
    assert [c.trial_id for c in of(life.handle(ev.Fill(idle=("w0", "w1"), pool_size=2)), ev.Launch)] == ["00000"]


def test_a_searcher_that_waits_with_nothing_running_is_an_error():
    life = make(searcher=ListSearcher(wait=True))
    with pytest.raises(RayTunerError, match=r"suggest\(\) returned None"):
        life.handle(ev.Fill(idle=("w1",), pool_size=1))


class ShapedSearcher(ListSearcher):
    """Suggests what a trial's config.json cannot hold as given."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def suggest(self, trial_id):
        return {"k": self.value}


def test_a_trial_gets_its_config_as_config_json_records_it_in_every_attempt():
    import numpy as np
    from pathlib import Path, PurePosixPath

    life = make(searcher=ShapedSearcher({"kernel": (3, 3), "units": np.int64(32), "lr": np.float32(0.5),
                                         "folder": Path("/data"), "pure": [PurePosixPath("/p")]}))
    out = life.handle(ev.Fill(idle=("w1",), pool_size=1))
    recorded = {"k": {"kernel": [3, 3], "units": 32, "lr": 0.5, "folder": "/data", "pure": ["/p"]}}
    assert of(out, ev.Launch)[0].config == of(out, ev.WriteConfig)[0].config == recorded  # as after a resume
    assert type(of(out, ev.Launch)[0].config["k"]["units"]) is int


@pytest.mark.parametrize("value", [{1, 2}, len, object()])
def test_a_searcher_suggesting_what_config_json_cannot_hold_is_an_error_naming_it(value):
    life = make(searcher=ShapedSearcher(value))
    with pytest.raises(RayTunerError, match=r"ShapedSearcher.suggest\(\) returned a config config.json cannot "
                                            r"record: .* is no JSON value"):
        life.handle(ev.Fill(idle=("w1",), pool_size=1))


# -- control commands ----------------------------------------------------------------------
def test_stop_trial_ends_a_running_trial_and_refuses_unknown_or_finished_ones():
    scheduler = ScriptedScheduler()
    life = make(scheduler, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(ev.StopTrial("00000", origin="dashboard"))
    # The worker's call is still out: the STOP answers it, never a second call of its kind
    # beside it; the worker hears at once that the trial's next report is its last.
    assert not of(out, ev.Deliver)
    assert of(out, ev.StopSoon) == [ev.StopSoon("w1", "00000")]
    assert of(out, ev.ControlApplied)[0].accepted
    assert ("remove", "00000") in scheduler.calls
    out = life.handle(reported("00000", report(1, 0.5)))
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", Signal.STOP, math.inf)]
    life.handle(reported("00000", exit=TrialExit(Signal.STOP)))
    trial = life.trials["00000"]
    assert (trial.status, trial.note) == (TrialStatus.STOPPED, "stopped by dashboard")
    (refused,) = of(life.handle(ev.StopTrial("00000")), ev.ControlApplied)
    assert not refused.accepted and "already ended as STOPPED" in refused.message
    (refused,) = of(life.handle(ev.StopTrial("12345")), ev.ControlApplied)
    assert not refused.accepted and "no trial '12345'" in refused.message


def test_a_stopped_trial_whose_next_report_ends_it_needs_no_second_stop():
    """The worker had the StopSoon before the trial's next report: that report and the
    trial's end come back in one answer, which ends the trial STOPPED with the report
    recorded, and no STOP goes out after it."""
    life = make(ScriptedScheduler(), max_concurrent=1, num_trials=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5)))
    life.handle(ev.StopTrial("00000", origin="cli"))
    out = life.handle(reported("00000", report(2, 0.4), exit=TrialExit(Signal.STOP)))
    assert not of(out, ev.Deliver) and of(out, ev.Release) == [ev.Release("w1")]
    trial = life.trials["00000"]
    assert (trial.status, trial.iteration, trial.note) == (TrialStatus.STOPPED, 2, "stopped by cli")


def test_a_searcher_that_raises_at_a_trials_end_leaves_that_trials_records_to_write():
    """A searcher's bug ends the run, but the reports and the status the event took in are
    handed to the driver (records_left) to write, and nothing else: no launch, no release."""
    class Raises(ListSearcher):
        def on_trial_complete(self, trial_id, outcome):
            raise RuntimeError("the searcher's bug")

    life = make(searcher=Raises(n=2), max_concurrent=1, num_trials=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    with pytest.raises(RuntimeError, match="the searcher's bug"):
        life.handle(reported("00000", report(1, 0.5, awaits=False), report(2, 0.25, awaits=False),
                             exit=TrialExit(Signal.COMPLETED)))
    left = life.records_left()
    (rows,) = of(left, ev.AppendResults)
    assert [row["loss"] for row in rows.rows] == [0.5, 0.25]
    assert of(left, ev.WriteTrial)[-1].record["status"] == "COMPLETED"
    assert left == of(left, ev.AppendResults, ev.WriteTrial, ev.WriteConfig, ev.AppendLog, ev.AppendError)
    assert life.records_left() == []


@pytest.mark.parametrize("how", ["its code raised", "its worker died"])
def test_a_trial_that_fails_while_a_stop_is_under_way_is_not_retried(how):
    """A stop (a command's, or the scheduler's) answered by a failure: the trial ends FAILED,
    with its error, and is not run again, whatever retries it has left."""
    life = make(ScriptedScheduler(), max_concurrent=1, num_trials=1, max_failures=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    assert of(life.handle(ev.StopTrial("00000", origin="cli")), ev.ControlApplied)[0].accepted
    if how == "its code raised":
        out = life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "Traceback ...", "ValueError", "boom")))
    else:
        out = life.handle(ev.CallFailed("00000", "The trial's worker died: ActorDiedError", worker_lost=True))
    trial = life.trials["00000"]
    assert trial.status is TrialStatus.FAILED and trial.num_failures == 1
    assert not of(out + life.handle(ev.Fill(idle=("w1",), pool_size=1)), ev.Launch)


def test_set_limits_changes_concurrency_and_the_trial_count():
    life = make(max_concurrent=2, num_trials=2)
    out = life.handle(ev.SetLimits(max_concurrent=1, num_trials=3))
    assert of(out, ev.ControlApplied)[0].message == "max_concurrent=1, num_trials=3"
    out = life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    assert len(of(out, ev.Launch)) == 1
    assert life.num_trials == 3
    (refused,) = of(life.handle(ev.SetLimits(num_trials=0)), ev.ControlApplied)
    assert not refused.accepted


def test_end_experiment_stops_everything():
    life = make()
    life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    out = life.handle(ev.EndExperiment())
    assert len(of(out, ev.Discard)) == 2
    assert {t.status for t in life.trials.values()} == {TrialStatus.STOPPED}
    assert not life.may_have_work()
    # The driver keeps running: the killed workers' calls come back, and are stale.
    assert life.handle(ev.CallFailed("00000", "killed", worker_lost=True)) == []
    assert life.handle(reported("00001", report(1, 0.5))) == []


def test_a_commands_line_comes_before_its_effects():
    """The driver records a command's history line (ControlApplied) before it carries out,
    or queues, any of its effects: a line the disk refuses leaves none of them written."""
    life = make(ScriptedScheduler(), max_concurrent=1, num_trials=3)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, checkpoint=True)))
    life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "Traceback...", "OSError", "disk")))
    out = life.handle(ev.RetryTrial("00000"))
    assert [type(c) for c in out] == [ev.ControlApplied, ev.WriteTrial] and out[0].accepted
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(ev.EndExperiment())
    assert type(out[0]) is ev.ControlApplied and out[0].accepted and len(out) > 1, out
    assert not of(out[1:], ev.ControlApplied)


def test_set_limits_changes_the_time_budget_and_refuses_bad_values():
    life = make()
    (applied,) = of(life.handle(ev.SetLimits(time_budget_s=90.0, origin="cli")), ev.ControlApplied)
    assert applied.accepted and applied.message == "time_budget_s=90"
    for bad, why in ((ev.SetLimits(max_concurrent=0), "`max_concurrent` is 0, but must be a whole number from 1"),
                     (ev.SetLimits(time_budget_s=-1.0), "`time_budget_s` is -1.0, but must be a finite number"),
                     # The bounds of every control value, whatever sent the event (issue 25).
                     (ev.SetLimits(max_concurrent=1e308), "`max_concurrent` is 1e+308, but must be a whole number "
                                                          "from 1 to 10,000. Give max_concurrent between 1"),
                     (ev.SetLimits(max_concurrent=10**400), "`max_concurrent` is a 401-digit integer"),
                     (ev.SetLimits(time_budget_s=math.nan), "`time_budget_s` is nan"),
                     (ev.SetLimits(num_trials=[3]), "`num_trials` is a list of 1 item")):
        (refused,) = of(life.handle(bad), ev.ControlApplied)
        assert not refused.accepted and why in refused.message, refused.message
    assert life.max_concurrent == 2 and life.num_trials == 4
    life.handle(ev.EndExperiment())
    (refused,) = of(life.handle(ev.SetLimits(max_concurrent=4)), ev.ControlApplied)
    assert not refused.accepted and "already ending" in refused.message


def test_an_error_inside_a_control_handler_refuses_that_command_and_the_lifecycle_goes_on():
    life = make()
    life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))

    class Broken(ListSearcher):
        @property
        def num_trials(self):
            return 4

        @num_trials.setter
        def num_trials(self, value):
            raise OverflowError("the searcher cannot take it")

    life.searcher = Broken(n=4)
    (refused,) = life.handle(ev.SetLimits(num_trials=5))
    assert not refused.accepted
    assert refused.message == "it could not be applied (OverflowError: 'the searcher cannot take it')"
    (applied,) = of(life.handle(ev.StopTrial("00000")), ev.ControlApplied)
    assert applied.accepted and life.slots_used() == 2
    check_index(life)


def test_retry_trial_reruns_a_failed_trial_from_its_checkpoint_and_the_searcher_hears_its_end_once():
    scheduler = ScriptedScheduler()
    searcher = ListSearcher(n=1)
    life = make(scheduler, searcher, max_concurrent=1, num_trials=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, checkpoint=True)))
    life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "Traceback...", "OSError", "disk")))
    trial = life.trials["00000"]
    assert trial.status is TrialStatus.FAILED and searcher.ends["00000"].end is TrialEnd.FAILED
    (refused,) = of(life.handle(ev.RetryTrial("00009")), ev.ControlApplied)
    assert not refused.accepted and "no trial '00009'" in refused.message

    out = life.handle(ev.RetryTrial("00000", origin="dashboard"))
    (applied,) = of(out, ev.ControlApplied)
    assert applied.accepted and applied.message == "trial 00000 queued to run again from checkpoint_000001"
    assert (trial.status, trial.note, trial.num_failures) == (TrialStatus.PENDING, "re-run by dashboard", 0)
    assert of(out, ev.WriteTrial)[0].record["status"] == "PENDING"
    assert life.may_have_work()
    out = life.handle(ev.Fill(idle=("w1",), pool_size=1))
    (launch,) = of(out, ev.Launch)
    # Neither searcher nor scheduler decides on a re-run: it never waits for a decision.
    assert (launch.trial_id, launch.checkpoint, launch.start_iteration, launch.decide_at) == (
        "00000", "checkpoint_000001", 1, math.inf)
    results_before, calls_before = list(searcher.results), list(scheduler.calls)
    out = life.handle(reported("00000", report(2, 0.1, awaits=False), exit=TrialExit(Signal.COMPLETED)))
    assert trial.status is TrialStatus.COMPLETED and trial.best_value == 0.1
    assert searcher.results == results_before and scheduler.calls == calls_before
    assert searcher.ends["00000"].end is TrialEnd.FAILED  # told once, when it failed
    (refused,) = of(life.handle(ev.RetryTrial("00000")), ev.ControlApplied)
    assert not refused.accepted and "is COMPLETED; only FAILED trials" in refused.message
    check_index(life)


def test_a_rerun_found_on_resume_stays_out_of_searcher_and_scheduler():
    trials = {"00000": Trial("00000", {"k": 0}, status=TrialStatus.PENDING, note="re-run by cli")}
    life = Lifecycle(settings(), ListSearcher(), ScriptedScheduler(), trials=trials, next_id=1, clock=lambda: 5.0)
    life.reconcile(next_id=1, closed={"00000"})
    (launch,) = of(life.handle(ev.Fill(idle=("w1",), pool_size=1)), ev.Launch)
    assert (launch.trial_id, launch.decide_at) == ("00000", math.inf)


def test_what_a_trial_printed_is_appended_to_its_log_before_anything_else():
    life = make()
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(ev.Reported("00000", Event([], None, "epoch 1\n")))
    assert out[0] == ev.AppendLog("00000", "epoch 1\n")
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", None, math.inf)]
    assert not of(life.handle(reported("00000", report(1, 0.3))), ev.AppendLog)


# -- resume ------------------------------------------------------------------------------------
def test_restored_trials_restart_and_reconcile_catches_the_searcher_up():
    trials = {
        "00000": Trial("00000", {"k": 0}, status=TrialStatus.COMPLETED, last_value=0.2, resource=3),
        "00001": Trial("00001", {"k": 1}, status=TrialStatus.RUNNING, checkpoint="checkpoint_000002",
                       checkpoint_iteration=2, checkpoint_time_s=2.0, iteration=3),
        "00002": Trial("00002", {"k": 99}, status=TrialStatus.PAUSED),
    }
    scheduler = ScriptedScheduler()
    life = Lifecycle(settings(), ListSearcher(), scheduler, trials=trials, next_id=1, clock=lambda: 5.0)
    assert life.trials["00001"].status is TrialStatus.PENDING
    life.reconcile(next_id=1, closed=set())
    # 00000 ended after the snapshot: both are told; 00001 and 00002 were created after it
    # and are proposed again (00002's config differs: it keeps its own).
    assert life.searcher.ends == {"00000": Outcome(TrialEnd.COMPLETED, 0.2, 3, 9)}
    assert life.searcher.asked == ["00001", "00002"]
    assert ("complete", "00000") in scheduler.calls and ("add", "00002") in scheduler.calls
    out = life.handle(ev.Fill(idle=("w1",), pool_size=1))
    assert [(c.trial_id, c.checkpoint, c.start_iteration) for c in of(out, ev.Launch)] == [
        ("00001", "checkpoint_000002", 2)]
    check_index(life)


class CorrectingSearcher(ListSearcher):
    def __init__(self):
        super().__init__()
        self.corrected: dict[str, dict] = {}

    def correct_config(self, trial_id, config):
        self.corrected[trial_id] = dict(config)
        return True


@pytest.mark.parametrize("corrects", [True, False])
def test_a_trial_the_restored_searcher_proposes_otherwise_is_credited_to_the_config_it_ran(corrects, caplog):
    # 00001 was created after the searcher's snapshot and ran {"k": 99}; the searcher now
    # proposes {"k": 1} for it. One that can take the correction learns at {"k": 99}; one
    # that cannot is named in a warning saying where it credits the results.
    trials = {"00001": Trial("00001", {"k": 99}, status=TrialStatus.PENDING)}
    searcher = CorrectingSearcher() if corrects else ListSearcher()
    life = Lifecycle(settings(), searcher, ScriptedScheduler(), trials=trials, next_id=1, clock=lambda: 5.0)
    with caplog.at_level("WARNING", logger="raytuner"):
        life.reconcile(next_id=1, closed=set())
    assert searcher.asked == ["00001"]
    if corrects:
        assert searcher.corrected == {"00001": {"k": 99}} and not caplog.records
    else:
        (record,) = caplog.records
        assert "00001" in record.getMessage() and "ListSearcher credits their results" in record.getMessage()
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00001", report(1, 0.3)))
    assert searcher.results == [("00001", 1, 0.3)]
    check_index(life)


def test_a_resume_that_misses_a_trial_between_others_never_reuses_a_taken_id():
    # 00001 is gone (a bucket that lost the last second of uploads, a folder moved out by
    # hand) and no state snapshot says which id comes next: new trials start past 00002.
    trials = {t: Trial(t, {"k": int(t)}, status=TrialStatus.COMPLETED, last_value=0.1, resource=1)
              for t in ("00000", "00002")}
    life = Lifecycle(settings(), ListSearcher(), ScriptedScheduler(), trials=trials, next_id=0, clock=lambda: 5.0)
    life.reconcile(next_id=0, closed=set())
    out = life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2))
    assert [c.trial_id for c in of(out, ev.Launch)] == ["00003", "00004"]
    assert set(life.trials) == {"00000", "00002", "00003", "00004"}
    check_index(life)


def test_the_lifecycle_imports_no_ray():
    code = "import sys, raytuner._driver.lifecycle; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
