"""A resume makes the commands its last run recorded as applied hold (no Ray): the driver
writes a command's history line before its effects, so a crash in between leaves the line
alone (raytuner._driver.control.replay)."""

from __future__ import annotations

import pytest

from raytuner._driver.control import replay
from raytuner._storage.control import control_store
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus

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


def test_lines_without_a_run_or_with_bad_values_are_left_out(storage, caplog):
    control_store(storage).record(
        line("stop_trial", {"trial_id": "t0"}, run_id=None),  # written by an older raytuner
        line("set_limits", {"num_trials": -3}),  # edited by hand
    )
    meta = {"run_id": "last"}
    held = trials(t0=TrialStatus.RUNNING)
    assert replay(storage, meta, held) == [] and "limits" not in meta
    assert "is not a command" in caplog.text and "num_trials" in caplog.text
