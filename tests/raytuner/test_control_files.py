"""Control command files, the driver's inbox and history, and the bounded trial log (no Ray)."""

from __future__ import annotations

import pytest

from raytuner._driver import events as ev
from raytuner._driver.control import POLL_S, ControlInbox
from raytuner._storage.control import ControlRefused, control_store
from raytuner._storage.experiment import ExperimentStorage


@pytest.fixture
def storage(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "RUNNING"})
    storage.write_config("00000", {"x": 1})
    return storage


def test_commands_are_taken_in_order_once_and_turned_into_lifecycle_events(storage):
    store = control_store(storage)
    store.submit("set_limits", {"max_concurrent": "4", "time_budget_s": 90}, origin="cli")
    store.submit("stop_trial", {"trial_id": "00000"}, origin="dashboard")
    store.submit("retry_trial", {"trial_id": "00000"}, origin="cli")
    store.submit("end_experiment", origin="cli")
    now = [100.0]
    inbox = ControlInbox(storage, clock=lambda: now[0])
    assert inbox.poll() == [ev.SetLimits(max_concurrent=4, origin="cli", time_budget_s=90.0),
                            ev.StopTrial("00000", origin="dashboard"), ev.RetryTrial("00000", origin="cli"),
                            ev.EndExperiment(origin="cli")]
    store.submit("end_experiment", origin="cli")
    now[0] += POLL_S / 2
    assert inbox.poll() == []  # looked too lately: the folder is not listed again yet
    now[0] += POLL_S
    assert inbox.poll() == [ev.EndExperiment(origin="cli")]
    assert inbox.poll() == [] and list(store.inbox.iterdir()) == []


def test_each_outcome_is_recorded_with_the_commands_id_time_and_origin(storage):
    store = control_store(storage)
    sent = store.submit("set_limits", {"num_trials": 3}, origin="dashboard")
    inbox = ControlInbox(storage)
    (event,) = inbox.poll()
    inbox.record(ev.ControlApplied(event, False, "num_trials=3 is below the 5 trials already created"))
    (entry,) = store.history()
    assert (entry["id"], entry["origin"], entry["command"], entry["args"], entry["accepted"]) == (
        sent.id, "dashboard", "set_limits", {"num_trials": 3}, False)
    assert entry["time"] >= entry["sent"] == sent.time
    assert store.outcome(sent.id) == entry


def test_a_damaged_command_file_is_refused_in_the_history(storage):
    store = control_store(storage)
    store.inbox.mkdir()
    (store.inbox / "00000000000000000001-bad.json").write_text('{"command": "rm -rf /"}')
    assert ControlInbox(storage).poll() == []
    (entry,) = store.history()
    assert not entry["accepted"] and "not a valid command file" in entry["message"]


@pytest.mark.parametrize(("command", "args", "says"), [
    ("set_limits", {"max_concurrent": 0}, "max_concurrent=0 is not valid"),
    ("set_limits", {"max_concurrent": 2.5}, "whole number"),
    ("set_limits", {"time_budget_s": float("nan")}, "time_budget_s=nan"),
    ("set_limits", {"max_concurrent": True}, "max_concurrent=True"),
    ("stop_trial", {"trial_id": "../../etc"}, "not a trial id"),
    ("stop_trial", {"trial_id": "00009"}, "has no trial '00009'"),
    ("end_experiment", {"now": 1}, "takes no arguments, not now"),
])
def test_writers_refuse_bad_commands_naming_the_value(storage, command, args, says):
    with pytest.raises(ControlRefused, match=says):
        control_store(storage).submit(command, args, origin="cli")


def test_a_finished_experiment_refuses_commands_saying_so(storage):
    storage.write_experiment({"name": "exp", "status": "COMPLETED"})
    with pytest.raises(ControlRefused, match="'exp' is COMPLETED, so no driver is there to apply end_experiment"):
        control_store(storage).submit("end_experiment", origin="cli")


def test_the_trial_log_is_cut_with_a_note_past_its_limit(storage):
    storage.append_log("00000", "a" * 60, max_bytes=100)
    storage.append_log("00000", "b" * 60, max_bytes=100)
    storage.append_log("00000", "c" * 60, max_bytes=100)
    text = storage.log_path("00000").read_text()
    assert text.startswith("a" * 60 + "b" * 40 + "\n[raytuner: this log reached 100 bytes")
    assert "ccc" not in text and text.count("\n") == 2
    assert storage.read_log("00000", 60, 10) == ("b" * 10, 70)
