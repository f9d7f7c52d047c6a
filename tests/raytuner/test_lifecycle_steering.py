"""Control commands that meet a trial or the search in the middle of something: a stop while
a pause is on its way, a trial budget raised after the search had finished. Synthetic event
streams, no Ray, as in test_lifecycle.py."""

from __future__ import annotations

import math

import pytest

from raytuner._driver import events as ev
from raytuner._driver.lifecycle import Lifecycle
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import ASHAScheduler, Decision
from tests.raytuner.lifecycle_fakes import (
    ListSearcher, ScriptedScheduler, check_index, make, of, report, reported, settings)


@pytest.mark.parametrize("promoted", [False, True], ids=["paused", "promoted before the pause landed"])
def test_a_stop_sent_while_a_pause_is_on_its_way_ends_the_trial_when_the_pause_lands(promoted):
    """A pause is not an end: a stop sent while the worker saves the trial's checkpoint is
    taken, and the trial ends STOPPED when the pause lands, even if the scheduler chose to
    promote it meanwhile; it never trains again."""
    scheduler = ScriptedScheduler({("00000", 2): Decision.PAUSE}, resume=["00000"] if promoted else [])
    life = make(scheduler, max_concurrent=2, num_trials=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=2))
    out = life.handle(reported("00000", report(1, 0.5), report(2, 0.4, checkpoint=True)))
    assert of(out, ev.Deliver) == [ev.Deliver("w1", "00000", Signal.PAUSE, math.inf)]
    if promoted:
        assert of(life.handle(ev.Fill(idle=("w2",), pool_size=2)), ev.Launch) == []  # the slot waits for 00000
    (applied,) = of(life.handle(ev.StopTrial("00000", origin="cli")), ev.ControlApplied)
    assert applied.accepted, applied.message
    assert ("remove", "00000") in scheduler.calls
    life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    trial = life.trials["00000"]
    assert (trial.status, trial.note) == (TrialStatus.STOPPED, "stopped by cli")
    assert life.searcher.ends["00000"].end.value == "stopped"
    launches = of(life.handle(ev.Fill(idle=("w1", "w2"), pool_size=2)), ev.Launch)
    assert [c.trial_id for c in launches] == ["00001"]  # not 00000 again
    check_index(life)


def test_a_stop_is_still_refused_while_a_stop_is_on_its_way():
    scheduler = ScriptedScheduler({("00000", 1): Decision.STOP})
    life = make(scheduler, max_concurrent=1, num_trials=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5)))
    (refused,) = of(life.handle(ev.StopTrial("00000", origin="cli")), ev.ControlApplied)
    assert not refused.accepted and "already ending (stop)" in refused.message


def test_a_stop_that_reaches_a_trial_after_it_returned_leaves_it_completed():
    """The stop goes out while the trial's last report and its end are on their way: the
    trainable returned on its own, so the trial ran its whole course and is COMPLETED."""
    scheduler = ScriptedScheduler({})
    life = make(scheduler, max_concurrent=1, num_trials=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, awaits=False)))
    (applied,) = of(life.handle(ev.StopTrial("00000", origin="cli")), ev.ControlApplied)
    assert applied.accepted
    out = life.handle(reported("00000", report(2, 0.4, awaits=False), exit=TrialExit(Signal.COMPLETED)))
    trial = life.trials["00000"]
    assert (trial.status, trial.note, trial.iteration) == (TrialStatus.COMPLETED, "completed before it was stopped by cli", 2)
    assert [c.record["status"] for c in of(out, ev.WriteTrial)] == ["COMPLETED"]
    assert life.searcher.ends["00000"].end.value == "completed"
    check_index(life)


def asha_after_the_search_finished(raise_to: int | None) -> tuple:
    """ASHA (promotion) with 1 slot and 2 trials: 00000 pauses at rung 1, 00001 is the last
    trial (the search finishes) and, while it runs, num_trials is raised to ``raise_to``."""
    asha = ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion")
    life = make(asha, ListSearcher(), max_concurrent=1, num_trials=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    out = life.handle(reported("00000", report(1, 0.5, checkpoint=True)))
    assert of(out, ev.Deliver)[0].signal is Signal.PAUSE
    life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    assert [c.trial_id for c in of(life.handle(ev.Fill(idle=("w1",), pool_size=1)), ev.Launch)] == ["00001"]
    if raise_to is not None:
        (applied,) = of(life.handle(ev.SetLimits(num_trials=raise_to, origin="cli")), ev.ControlApplied)
        assert applied.accepted
    out = life.handle(reported("00001", report(1, 1.0, checkpoint=True)))
    (signal,) = [c.signal for c in of(out, ev.Deliver)]
    life.handle(reported("00001", exit=TrialExit(signal)))
    return life


def test_a_trial_budget_raised_after_the_search_finished_keeps_paused_trials_for_the_new_ones():
    """Without the raise, nothing could ever promote them: ASHA stops the last trial at the
    rung and the paused one. With it, both pause and the new trials run, as if num_trials
    had been 4 all along."""
    life = asha_after_the_search_finished(raise_to=None)
    assert {t.status for t in life.trials.values()} == {TrialStatus.STOPPED}
    life = asha_after_the_search_finished(raise_to=4)
    assert {t.status for t in life.trials.values()} == {TrialStatus.PAUSED}
    launches = of(life.handle(ev.Fill(idle=("w1",), pool_size=1)), ev.Launch)
    assert [c.trial_id for c in launches] == ["00002"]
    # The third result at rung 1 promotes the best of the three (00000), which is the fourth
    # trial's slot's next tenant once 00002 pauses.
    out = life.handle(reported("00002", report(1, 2.0, checkpoint=True)))
    assert of(out, ev.Deliver)[0].signal is Signal.PAUSE
    life.handle(reported("00002", exit=TrialExit(Signal.PAUSE)))
    launches = of(life.handle(ev.Fill(idle=("w1",), pool_size=1)), ev.Launch)
    assert [(c.trial_id, c.checkpoint) for c in launches] == [("00000", "checkpoint_000001")]
    check_index(life)


def test_a_resume_with_a_larger_trial_budget_reopens_a_search_the_saved_state_had_finished():
    """The scheduler's saved state says the search finished (its last trial had started);
    a resume with num_trials raised must not let it stop the paused trial at the next rung
    as if no new trial could come."""
    asha = ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion")
    life = make(asha, ListSearcher(), max_concurrent=1, num_trials=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, checkpoint=True)))
    life.handle(reported("00000", exit=TrialExit(Signal.PAUSE)))
    life.handle(ev.Fill(idle=("w1",), pool_size=1))  # 00001, the last: the search finished
    saved = life.state()
    trials = {trial_id: Trial.from_record(trial.to_record(), dict(trial.config)) for trial_id, trial in life.trials.items()}
    restored = ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion")
    restored.restore(saved["scheduler"])
    resumed = Lifecycle(settings(max_concurrent=1, num_trials=4), ListSearcher(), restored, trials=trials,
                        next_id=2, clock=lambda: 5.0)
    resumed.reconcile(next_id=2, closed=set())
    out = resumed.handle(ev.Fill(idle=("w1",), pool_size=1))
    assert [c.trial_id for c in of(out, ev.Launch)] == ["00001"]  # restarts, as the folder says RUNNING
    out = resumed.handle(reported("00001", report(1, 1.0, checkpoint=True)))
    assert [c.signal for c in of(out, ev.Deliver)] == [Signal.PAUSE]  # not STOP: two more trials will come
    resumed.handle(reported("00001", exit=TrialExit(Signal.PAUSE)))
    assert {t.status for t in resumed.trials.values()} == {TrialStatus.PAUSED}
    check_index(resumed)


def test_a_second_end_of_the_experiment_is_refused_as_any_command_after_the_first():
    life = make(max_concurrent=1, num_trials=2)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    (first,) = of(life.handle(ev.EndExperiment(origin="cli")), ev.ControlApplied)
    assert first.accepted and first.ended == ("00000",)
    (second,) = of(life.handle(ev.EndExperiment(origin="dashboard")), ev.ControlApplied)
    assert not second.accepted and "already ending" in second.message


@pytest.mark.parametrize("checkpointed", [True, False])
def test_the_restart_warning_gives_advice_that_fits_the_trial(checkpointed, caplog):
    """A trial that checkpoints and restarts behind its last report lost what the store
    interval held back: the warning names the interval, not "pass checkpoint=", which it
    already does. One that never checkpointed is told to."""
    life = make(ScriptedScheduler(), max_failures=1, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, checkpoint=checkpointed), report(2, 0.4), report(3, 0.3)))
    with caplog.at_level("WARNING", logger="raytuner"):
        life.handle(ev.CallFailed("00000", "The trial's worker died: ActorDiedError", worker_lost=True))
        out = life.handle(ev.Fill(idle=("w2",), pool_size=1))
    (warning,) = [m for m in caplog.messages if "restarts from" in m]
    # The trial's log says where the new attempt's output starts.
    start = "its checkpoint at report 1" if checkpointed else "scratch"
    assert [c.text for c in of(out, ev.AppendLog)] == [f"[raytuner] attempt 2 (retry) starts from {start}\n"]
    (retry,) = [m for m in caplog.messages if "retries used" in m]
    if checkpointed:
        assert "restarts from its checkpoint at report 1; its reports 2-3 are superseded" in warning
        assert "checkpoint_interval_s=0" in warning and "Pass `checkpoint=`" not in warning
        assert retry.endswith("retrying from its latest checkpoint.")
    else:
        assert "restarts from scratch (it has no checkpoint); its reports 1-3" in warning
        assert "Pass `checkpoint=` to raytuner.report" in warning
        # A Keras user has the callback already: the advice is what it checkpoints by default.
        assert "or use the Keras callback" not in warning and "ReportCallback(checkpoint=True)" in warning
        assert retry.endswith("retrying from scratch (it has no checkpoint yet).")
