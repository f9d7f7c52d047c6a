"""A resume makes the commands its last run recorded as applied hold (no Ray): the driver
writes a command's history line before its effects, so a crash in between leaves the line
alone (raytuner._driver.control.replay)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raytuner._control_values import COMMANDS
from raytuner._driver import events as ev
from raytuner._driver.control import ControlInbox, replay, stored_limits
from raytuner._driver.lifecycle import Lifecycle
from raytuner._storage.control import control_store
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import FIFOScheduler
from tests.raytuner.lifecycle_fakes import ListSearcher, of, reported
from tests.raytuner.lifecycle_fakes import settings as life_settings

T0 = 1_700_000_000.0


@pytest.fixture
def storage(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    return storage


def line(command, args, *, run_id="last", accepted=True, time=T0 + 10, origin="cli"):
    return {"time": time, "id": f"{command}{len(args)}", "origin": origin, "command": command, "args": args,
            "accepted": accepted, "message": "", "sent": time, "run_id": run_id, "file": None}


def trials(**statuses):
    made = {}
    for trial_id, status in statuses.items():
        trial = Trial(trial_id, {"x": 1})
        trial.status, trial.end_time = status, (T0 if status.is_finished() else None)
        made[trial_id] = trial
    return made


def test_the_last_runs_applied_commands_hold_again_and_nothing_else(storage):
    control_store(storage).record(
        line("stop_trial", {"trial_id": "t0"}),
        line("retry_trial", {"trial_id": "t1"}),
        line("set_limits", {"num_trials": 7, "max_concurrent": 2}),
        line("stop_trial", {"trial_id": "t2"}, accepted=False),  # refused: no effect to make hold
        line("stop_trial", {"trial_id": "t3"}, run_id="earlier"),  # the run after it made it hold
        line("stop_trial", {"trial_id": "gone"}),
    )
    held = trials(t0=TrialStatus.RUNNING, t1=TrialStatus.FAILED, t2=TrialStatus.RUNNING, t3=TrialStatus.PENDING)
    meta = {"run_id": "last", "limits": {"num_trials": 5}}
    assert replay(storage, meta, held) == ["t0", "t1"]
    assert (held["t0"].status, held["t0"].note, held["t0"].end_time) == (TrialStatus.STOPPED, "stopped by cli", T0 + 10)
    assert (held["t1"].status, held["t1"].num_failures, held["t1"].end_time) == (TrialStatus.PENDING, 0, None)
    assert held["t2"].status is TrialStatus.RUNNING and held["t3"].status is TrialStatus.PENDING
    assert meta["limits"] == {"num_trials": 7, "max_concurrent": 2} and meta["num_trials"] == 7
    # Idempotent: a second resume (or a line whose effect had landed) changes nothing more.
    assert replay(storage, meta, held) == []
    assert meta["limits"] == {"num_trials": 7, "max_concurrent": 2}


def test_a_rerun_that_failed_again_is_not_run_a_third_time(storage):
    control_store(storage).record(line("retry_trial", {"trial_id": "t1"}, time=T0 - 5))
    held = trials(t1=TrialStatus.FAILED)  # failed at T0, after the command: the re-run's own failure
    assert replay(storage, {"run_id": "last"}, held) == [] and held["t1"].status is TrialStatus.FAILED


def test_an_ended_experiment_keeps_the_trials_it_stopped_stopped(storage):
    control_store(storage).record(line("end_experiment", {}, origin="dashboard"))
    held = trials(a=TrialStatus.RUNNING, b=TrialStatus.PAUSED, c=TrialStatus.PENDING, d=TrialStatus.COMPLETED)
    assert replay(storage, {"run_id": "last"}, held) == ["a", "b"]
    assert {t.trial_id: t.status for t in held.values()} == {
        "a": TrialStatus.STOPPED, "b": TrialStatus.STOPPED, "c": TrialStatus.PENDING, "d": TrialStatus.COMPLETED}
    assert held["a"].note == "experiment ended by dashboard"


def applied(life, inbox, event):
    """Hand ``event`` to the lifecycle and record its outcome as the driver does."""
    (outcome,) = of(life.handle(event), ev.ControlApplied)
    assert outcome.accepted, outcome.message
    inbox.record(outcome)


def test_a_stopped_trial_that_failed_then_was_re_run_keeps_its_re_run(storage):
    # The stop is queued on the trial's call, whose answer is its failure; a retry then
    # re-runs the FAILED trial, which is on a worker when the driver dies. The later line wins.
    life = Lifecycle(life_settings(num_trials=1), ListSearcher(n=1), FIFOScheduler(), clock=lambda: 5.0)
    inbox = ControlInbox(storage, "last")
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    applied(life, inbox, ev.StopTrial("00000", origin="cli"))
    life.handle(reported("00000", exit=TrialExit(Signal.ERROR, "tb", "ValueError", "boom")))
    assert life.trials["00000"].status is TrialStatus.FAILED
    applied(life, inbox, ev.RetryTrial("00000", origin="cli"))
    life.handle(ev.Fill(idle=("w2",), pool_size=1))
    assert life.trials["00000"].status is TrialStatus.RUNNING
    held = {"00000": Trial("00000", {"k": 0}, status=TrialStatus.RUNNING, attempt=2)}  # its record, as written
    assert replay(storage, {"run_id": "last"}, held) == []
    assert held["00000"].status is TrialStatus.RUNNING  # the resume runs the re-run again


def test_an_ended_experiment_leaves_a_trial_that_waited_for_a_worker_to_the_resume(storage):
    # A resumed run: two trials lost their workers with the run before it (RUNNING in their
    # trial.json, waiting unrecorded in the lifecycle); with one worker only 00000 runs again
    # before the experiment is ended. The end stops 00000; 00001, on no worker, is not ended.
    def on_disk():
        return {t: Trial(t, {"k": int(t)}, status=TrialStatus.RUNNING, attempt=1) for t in ("00000", "00001")}

    life = Lifecycle(life_settings(max_concurrent=1, num_trials=2), ListSearcher(n=2), FIFOScheduler(),
                     trials=on_disk(), next_id=2, clock=lambda: 5.0)
    life.reconcile(next_id=2, closed=set())
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    inbox = ControlInbox(storage, "last")
    applied(life, inbox, ev.EndExperiment(origin="cli"))
    assert (life.trials["00000"].status, life.trials["00001"].status) == (TrialStatus.STOPPED, TrialStatus.PENDING)
    held = on_disk()  # the driver died before writing 00000's end; 00001's record is never rewritten
    assert replay(storage, {"run_id": "last"}, held) == ["00000"]
    assert (held["00000"].status, held["00001"].status) == (TrialStatus.STOPPED, TrialStatus.RUNNING)


def test_lines_without_a_run_or_with_bad_values_are_left_out(storage, caplog):
    control_store(storage).record(
        line("stop_trial", {"trial_id": "t0"}, run_id=None),  # written by an older raytuner
        line("set_limits", {"num_trials": -3}),  # edited by hand
    )
    meta = {"run_id": "last"}
    held = trials(t0=TrialStatus.RUNNING)
    assert replay(storage, meta, held) == [] and "limits" not in meta
    assert "is not a command" in caplog.text and "num_trials" in caplog.text


_SCALARS = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=20)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.fixed_dictionaries(
    {"command": st.sampled_from(sorted(COMMANDS)) | _VALUES,
     "args": st.fixed_dictionaries({}, optional={"trial_id": st.sampled_from(["t0", "t1", "t2", "nope"]) | _VALUES,
                                                 "num_trials": _VALUES, "max_concurrent": _VALUES,
                                                 "time_budget_s": _VALUES}) | _VALUES,
     "accepted": st.just(True) | _VALUES, "run_id": st.just("last") | _VALUES},
    optional={"time": _VALUES, "origin": _VALUES}), max_size=6))
def test_hand_edited_lines_of_the_last_run_never_break_a_resume(tmp_path_factory, lines):
    """Anyone who can write the folder can edit history.jsonl: replay obeys the lines that are
    commands, leaves out the rest, and never raises; it only ever stops an unfinished trial
    or puts a failed one back to PENDING, and keeps only valid limits."""
    storage = ExperimentStorage(tmp_path_factory.mktemp("fuzz") / "exp")
    storage.create()
    control_store(storage).record(*lines)
    held = trials(t0=TrialStatus.RUNNING, t1=TrialStatus.FAILED, t2=TrialStatus.COMPLETED)
    before = {trial_id: trial.status for trial_id, trial in held.items()}
    meta = {"run_id": "last"}
    changed = replay(storage, meta, held)
    assert set(changed) <= {"t0", "t1"}
    for trial_id, trial in held.items():
        assert trial.status in (before[trial_id], {TrialStatus.RUNNING: TrialStatus.STOPPED,
                                                   TrialStatus.FAILED: TrialStatus.PENDING}.get(before[trial_id]))
    assert set(meta.get("limits", {})) <= set(COMMANDS["set_limits"])
    assert stored_limits(meta) == meta.get("limits", {})  # what replay kept reads back whole


def test_a_grid_extended_by_resume_again_and_again_counts_repetitions_of_its_points():
    """``num_trials`` given to a resume counts repetitions of a grid, as the Tuner's does;
    the limits recorded count trials in all. Before: the second resume multiplied the
    first's recorded count by the repetitions (a 3-point grid, 1, then 2, then 3
    repetitions ran 3, 6, then 18 trials)."""
    from types import SimpleNamespace

    from raytuner._driver.resume import _restore_limits
    from raytuner.errors import ConfigError
    from raytuner.search import GridSearcher, grid

    meta: dict = {"num_trials": 3}
    for repetitions, total in ((2, 6), (3, 9), (5, 15)):
        searcher, tuner_settings = GridSearcher(), SimpleNamespace(num_trials=1, max_concurrent=2, time_budget_s=None)
        searcher.setup({"g": grid(["a", "b", "c"])}, tuner_settings.num_trials)  # as resume rebuilds it
        _restore_limits(meta, tuner_settings, searcher, repetitions, None, None)
        assert searcher.num_trials == total and meta["num_trials"] == meta["limits"]["num_trials"] == total
    searcher, tuner_settings = GridSearcher(), SimpleNamespace(num_trials=1, max_concurrent=2, time_budget_s=None)
    searcher.setup({"g": grid(["a", "b", "c"])}, 1)
    with pytest.raises(ConfigError, match=r"`num_trials` is 4, 12 trials as repetitions of the grid's 3 points, but "
                                          r"the experiment already has 15. Pass at least 5"):
        _restore_limits(meta, tuner_settings, searcher, 4, None, None)
