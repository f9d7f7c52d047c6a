"""Control command files, the driver's inbox and history, and the bounded trial log (no Ray).

The reader must not be poisoned (issue 25): whatever lies in ``control/`` (a folder, a FIFO,
a link, a huge file, huge numbers, another run's command) is refused, set aside and
recorded, and the reader never blocks."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raytuner._driver import events as ev
from raytuner._driver.control import POLL_S, ControlInbox
from raytuner._storage.control import (CONTROL_DIR, MAX_FILE_BYTES, REJECTED_DIR, ControlRefused, Rejected,
                                       control_store)
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.lock import DriverLock
from raytuner.errors import ConfigError


@pytest.fixture
def storage(tmp_path):
    """A RUNNING experiment with one trial, held by a live driver (this process's lock)."""
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "RUNNING"})
    storage.write_config("00000", {"x": 1})
    with DriverLock(storage.path).acquire() as lock:
        storage.run_id = lock.run_id
        yield storage


def inbox_of(storage, **kw):
    return ControlInbox(storage, storage.run_id, **kw)


def write_command(storage, name, payload):
    folder = storage.path / CONTROL_DIR
    folder.mkdir(exist_ok=True)
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    (folder / name).write_bytes(data)
    return folder / name


def command(storage, **fields):
    """A well-formed command file's content for the live run, with ``fields`` changed."""
    base = {"id": "c0ffee", "command": "set_limits", "args": {"max_concurrent": 2}, "origin": "cli", "time": 1.0,
            "run_id": storage.run_id}
    return {**base, **fields}


def test_commands_are_taken_in_order_once_and_turned_into_lifecycle_events(storage):
    store = control_store(storage)
    store.submit("set_limits", {"max_concurrent": 4, "time_budget_s": 90}, origin="cli")
    store.submit("stop_trial", {"trial_id": "00000"}, origin="dashboard")
    store.submit("retry_trial", {"trial_id": "00000"}, origin="cli")
    store.submit("end_experiment", origin="cli")
    now = [100.0]
    inbox = inbox_of(storage, clock=lambda: now[0])
    assert inbox.poll() == [ev.SetLimits(max_concurrent=4, origin="cli", time_budget_s=90.0),
                            ev.StopTrial("00000", origin="dashboard"), ev.RetryTrial("00000", origin="cli"),
                            ev.EndExperiment(origin="cli")]
    store.submit("end_experiment", origin="cli")
    now[0] += POLL_S / 2
    assert inbox.poll() == []  # looked too lately: the folder is not listed again yet
    now[0] += POLL_S
    (last,) = inbox.poll()
    assert last == ev.EndExperiment(origin="cli")
    assert inbox.poll() == [] and store.history() == []  # nothing refused; the lifecycle's answers come later
    assert len(list(store.inbox.iterdir())) == 5  # each file stays until its outcome is recorded
    inbox.record(ev.ControlApplied(last, True, "experiment ended"))
    assert len(list(store.inbox.iterdir())) == 4 and [e["command"] for e in store.history()] == ["end_experiment"]


def test_each_command_carries_the_run_of_the_live_driver(storage):
    sent = control_store(storage).submit("end_experiment", origin="cli")
    (path,) = (storage.path / CONTROL_DIR).iterdir()
    assert sent.run_id == storage.run_id == json.loads(path.read_text())["run_id"]
    assert storage.live_driver().run_id == storage.run_id


def test_each_outcome_is_recorded_with_the_commands_id_time_and_origin(storage):
    store = control_store(storage)
    sent = store.submit("set_limits", {"num_trials": 3}, origin="dashboard")
    inbox = inbox_of(storage)
    (event,) = inbox.poll()
    inbox.record(ev.ControlApplied(event, False, "num_trials=3 is below the 5 trials already created"))
    (entry,) = store.history()
    assert (entry["id"], entry["origin"], entry["command"], entry["args"], entry["accepted"]) == (
        sent.id, "dashboard", "set_limits", {"num_trials": 3}, False)
    assert entry["time"] >= entry["sent"] == sent.time
    assert store.outcome(sent.id) == entry


# -- the reader that cannot be poisoned ------------------------------------------------------
def _fifo(folder, name):
    os.mkfifo(folder / name)


def _folder(folder, name):
    (folder / name).mkdir()
    (folder / name / "inside").write_text("x")


def _link_to_secret(folder, name):
    secret = folder.parent / "secret.json"
    secret.write_text('{"command": "end_experiment"}')
    os.symlink(secret, folder / name)


def _link_to_fifo(folder, name):
    os.mkfifo(folder.parent / "pipe")
    os.symlink(folder.parent / "pipe", folder / name)


FILES = {  # name: (how to make it in the control folder, what the history says)
    "fifo": (_fifo, "it is a FIFO (named pipe); a command is a regular file"),
    "folder": (_folder, "it is a folder; a command is a regular file"),
    "link": (_link_to_secret, "it is a symbolic link; a command is a regular file"),
    "link-to-fifo": (_link_to_fifo, "it is a symbolic link"),
    "huge": (lambda f, n: (f / n).write_bytes(b" " * (MAX_FILE_BYTES + 1)), "more than 64 KiB"),
    "not-json": (lambda f, n: (f / n).write_text('{"command": '), "it is not valid JSON"),
    "not-utf8": (lambda f, n: (f / n).write_bytes(b'{"id": "\xff"}'), "it is not UTF-8 text"),
    "nested": (lambda f, n: (f / n).write_text("[" * 20_000 + "]" * 20_000), "nested too deeply"),
    "empty": (lambda f, n: (f / n).write_text(""), "it is not valid JSON"),
}


@pytest.mark.parametrize("kind", FILES)
def test_a_file_that_is_not_a_command_is_set_aside_and_recorded_without_blocking(storage, kind):
    make, says = FILES[kind]
    folder = storage.path / CONTROL_DIR
    folder.mkdir()
    make(folder, f"00000000000000000001-{kind}.json")
    store = control_store(storage)
    sent = store.submit("end_experiment", origin="cli")  # the good command after it still gets through
    got, inbox = [], inbox_of(storage)
    reader = threading.Thread(target=lambda: got.append(inbox.poll()), daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "the reader blocked"
    assert got == [[ev.EndExperiment(origin="cli")]]
    (entry,) = store.history()
    assert not entry["accepted"] and says in entry["message"], entry["message"]
    assert entry["file"] == f"00000000000000000001-{kind}.json"
    assert f"moved to control/rejected/00000000000000000001-{kind}.json" in entry["message"]
    # Nothing is left to meet again (the good command's file goes once its outcome is recorded).
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(f"-{sent.id}.json")) == [REJECTED_DIR]
    assert (folder / REJECTED_DIR / entry["file"]).exists() or os.path.islink(folder / REJECTED_DIR / entry["file"])
    inbox.record(ev.ControlApplied(got[0][0], True, "experiment ended"))
    assert inbox_of(storage, clock=lambda: 1e9).poll() == [] and len(store.history()) == 2


@pytest.mark.parametrize(("fields", "says"), [
    ({"time": 10**400}, "its time is a 401-digit integer, not seconds since the epoch"),
    ({"time": float("nan")}, "its time is nan"),
    ({"args": {"max_concurrent": 10**400}}, "`max_concurrent` is a 401-digit integer"),
    ({"args": {"max_concurrent": 1e308}}, "`max_concurrent` is 1e+308, but must be a whole number from 1 to 10,000"),
    ({"args": {"time_budget_s": float("inf")}}, "`time_budget_s` is inf"),
    ({"args": {"num_trials": "x" * 50_000}}, "(50000 characters)"),
    ({"args": [1, 2]}, "`args` is a list of 2 items"),
    ({"command": ["end_experiment"]}, "`command` is a list of 1 item"),
    ({"command": "rm -rf /"}, "`command` is 'rm -rf /', but must be one of stop_trial"),
    ({"id": None}, "its id is None"),
    ({"id": "a" * 65}, "its id is 'aaaa"),
    ({"origin": "x" * 1000}, "its origin is 'xxx"),
    ({"extra": 1}, "'extra' is not a field of a command"),
    ({"run_id": None}, "it names no run"),
    ({"run_id": "0123abcd"}, "it was written for run '0123abcd', not this run"),
])
def test_a_command_with_bad_values_is_refused_naming_what_is_wrong(storage, fields, says):
    write_command(storage, "00000000000000000001-x.json", command(storage, **fields))
    assert inbox_of(storage).poll() == []
    (entry,) = control_store(storage).history()
    assert not entry["accepted"] and says in entry["message"], entry["message"]
    assert len(entry["message"]) < 700  # a value is shown shortened, never whole


def test_a_command_for_another_run_is_refused_and_says_how_to_send_it_again(storage):
    write_command(storage, "00000000000000000001-x.json", command(storage, run_id="0123abcd"))
    assert inbox_of(storage).poll() == []
    (entry,) = control_store(storage).history()
    assert (entry["id"], entry["command"], entry["args"], entry["origin"]) == ("c0ffee", "set_limits",
                                                                               {"max_concurrent": 2}, "cli")
    assert f"control {storage.path} --max-concurrent 2`" in entry["message"]


def test_commands_written_while_no_driver_was_alive_are_refused_at_the_next_start(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "RUNNING"})
    with DriverLock(storage.path).acquire():
        control_store(storage).submit("end_experiment", origin="cli")
    # The driver died before taking it up; the next run (a resume) is another run.
    with pytest.raises(ControlRefused, match="no live driver to apply end_experiment: its driver is gone"):
        control_store(storage).submit("end_experiment", origin="cli")
    with DriverLock(storage.path).acquire() as lock:
        assert ControlInbox(storage, lock.run_id).poll() == []
    (entry,) = control_store(storage).history()
    assert entry["command"] == "end_experiment" and not entry["accepted"]
    assert "while no driver ran the experiment, or for an earlier run" in entry["message"]


def test_a_command_taken_by_a_driver_killed_before_its_outcome_is_recorded_is_refused_by_the_next_run(tmp_path):
    """Not lost silently: its file stays until its line is written, so the next run finds it,
    and the history says it was not applied."""
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "RUNNING"})
    with DriverLock(storage.path).acquire() as lock:
        sent = control_store(storage).submit("end_experiment", origin="cli")
        assert ControlInbox(storage, lock.run_id).poll() == [ev.EndExperiment(origin="cli")]
    # Killed here: applied in memory at most, nothing recorded.
    with DriverLock(storage.path).acquire() as lock:
        assert ControlInbox(storage, lock.run_id).poll() == []
    (entry,) = control_store(storage).history()
    assert (entry["id"], entry["accepted"]) == (sent.id, False)
    assert "for an earlier run" in entry["message"]


def test_a_command_whose_outcome_is_recorded_is_never_recorded_again(tmp_path):
    """A driver killed after the command's line, before removing its file: the next run
    removes the file, and the history keeps its one line (applied, by the run that took it)."""
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "RUNNING"})
    with DriverLock(storage.path).acquire() as lock:
        sent = control_store(storage).submit("set_limits", {"num_trials": 9}, origin="cli")
        inbox = ControlInbox(storage, lock.run_id)
        (event,) = inbox.poll()
        (file,) = storage.path.glob(f"{CONTROL_DIR}/*.json")
        content = file.read_bytes()
        inbox.record(ev.ControlApplied(event, True, "num_trials=9"))
        first = lock.run_id
    file.write_bytes(content)  # as a driver killed between the line and the file's removal leaves it
    with DriverLock(storage.path).acquire() as lock:
        assert ControlInbox(storage, lock.run_id).poll() == []
    (entry,) = control_store(storage).history()
    assert (entry["id"], entry["accepted"], entry["run_id"]) == (sent.id, True, first)
    assert not list(storage.path.glob(f"{CONTROL_DIR}/*.json"))
    assert not (storage.path / CONTROL_DIR / REJECTED_DIR).exists()


def test_a_new_command_in_a_file_named_as_a_recorded_one_is_taken_up_and_recorded(storage):
    """File names are the writer's to choose: a command written under the name of one whose
    outcome is recorded (in this run, or by an earlier one) is another command, taken up and
    recorded as any; only the recorded command itself (its id) is never recorded twice."""
    name = "00000000000000000001-x.json"
    now = [100.0]
    inbox = inbox_of(storage, clock=lambda: now[0])
    write_command(storage, name, command(storage, id="first", args={"max_concurrent": 2}))
    (event,) = inbox.poll()
    inbox.record(ev.ControlApplied(event, True, "max_concurrent=2"))
    write_command(storage, name, command(storage, id="second", args={"max_concurrent": 3}))
    now[0] += POLL_S
    (event,) = inbox.poll()
    assert event == ev.SetLimits(max_concurrent=3, origin="cli")
    inbox.record(ev.ControlApplied(event, True, "max_concurrent=3"))
    # The next run: the same name once more, now with another run's command.
    write_command(storage, name, command(storage, id="third", run_id="0123abcd"))
    assert inbox_of(storage).poll() == []
    history = control_store(storage).history()
    assert [(e["id"], e["accepted"], e["file"]) for e in history] == [
        ("first", True, name), ("second", True, name), ("third", False, name)]
    assert "it was written for run '0123abcd'" in history[-1]["message"]
    assert (storage.path / CONTROL_DIR / REJECTED_DIR / name).exists()


@pytest.mark.parametrize("died", ["after its line", "in the middle of its line"])
def test_a_refused_file_goes_only_once_its_line_is_written(storage, died):
    """A driver killed between a refusal's line and the file's going: the next run sets the
    file aside without a second line; killed while writing the line (a torn tail): the next
    run refuses it again, and the history holds that one whole line."""
    name = "00000000000000000001-x.json"
    folder = storage.path / CONTROL_DIR
    write_command(storage, name, command(storage, run_id="0123abcd"))
    store = control_store(storage)
    (taken,) = store.take(storage.run_id)
    assert isinstance(taken, Rejected) and (folder / name).exists()
    line = (json.dumps(taken.entry()) + "\n").encode()
    with open(store.history_path, "ab") as history:  # the line, then the driver dies
        history.write(line if died == "after its line" else line[: len(line) // 2])
    again = inbox_of(storage)
    assert again.poll() == []
    (entry,) = control_store(storage).history()
    assert entry["file"] == name and "it was written for run '0123abcd'" in entry["message"]
    assert not (folder / name).exists() and (folder / REJECTED_DIR / name).exists()


def test_a_file_that_cannot_be_moved_is_removed_and_never_taken_twice(storage):
    folder = storage.path / CONTROL_DIR
    folder.mkdir()
    (folder / REJECTED_DIR).write_text("a file where the folder of rejected commands goes")
    write_command(storage, "00000000000000000001-x.json", b"[1, 2]")
    assert inbox_of(storage).poll() == []
    (entry,) = control_store(storage).history()
    assert "it holds a list of 2 items" in entry["message"] and "is removed" in entry["message"]
    assert sorted(p.name for p in folder.iterdir()) == [REJECTED_DIR]


def test_commands_still_waiting_when_the_run_ends_are_refused_each_with_its_line(storage):
    """A command written while the driver winds up (after its last look at the folder) gets
    a line saying nothing of it was applied, and its file goes: none is left for the next run
    to refuse as written "while no driver ran the experiment"."""
    store = control_store(storage)
    inbox = inbox_of(storage)
    assert inbox.poll() == []  # the run's last look, just now: too lately to look again by its clock
    sent = [store.submit("set_limits", {"num_trials": 9}, origin="cli"),
            store.submit("stop_trial", {"trial_id": "00000"}, origin="dashboard")]
    write_command(storage, "00000000000000000001-x.json", b"[1, 2]")  # and a damaged one, as any poll does
    for n in range(120):  # past one poll's bound
        store.submit("end_experiment", origin="cli")
    inbox.refuse_the_rest("the run ended (COMPLETED) before its driver read this command; nothing of it was applied")
    history = store.history()
    assert len(history) == 123 and not any(entry["accepted"] for entry in history)
    for cmd in sent:
        entry = store.outcome(cmd.id)
        assert entry["command"] == cmd.command and "the run ended (COMPLETED) before" in entry["message"]
    assert "it holds a list of 2 items" in history[0]["message"]
    assert sorted(p.name for p in store.inbox.iterdir()) == [REJECTED_DIR]
    inbox.refuse_the_rest("again")  # nothing left: nothing more recorded
    assert len(store.history()) == 123


def test_a_flood_of_files_is_taken_a_bounded_number_at_a_time(storage):
    for n in range(150):
        write_command(storage, f"{n:020d}-x.json", b"{}")
    store = control_store(storage)
    assert len(store.take(storage.run_id)) == 100
    assert len(store.take(storage.run_id)) == 50


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
    | st.sampled_from(["set_limits", "stop_trial", "end_experiment", "max_concurrent", "00000", "cli"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "command", "args", "origin", "time", "run_id", "max_concurrent", "num_trials",
                         "time_budget_s", "trial_id", "x"]), children, max_size=6),
    max_leaves=20))
def test_any_json_in_a_command_file_is_applied_only_if_clean_or_else_recorded(storage, payload):
    if isinstance(payload, dict) and "run_id" in payload and payload["run_id"] == "live":
        payload["run_id"] = storage.run_id
    name = f"{time.time_ns():020d}-x.json"  # a new file each time, as writers name them
    write_command(storage, name, json.dumps(payload).encode())
    store = control_store(storage)
    before = len(store.history())
    (taken,) = store.take(storage.run_id)
    if isinstance(taken, Rejected):
        store.record(taken.entry())
        assert len(store.history()) == before + 1
        assert (storage.path / CONTROL_DIR / name).exists()  # until its line is written
        store.set_aside(taken.file, taken.set_aside)
        assert (storage.path / CONTROL_DIR / REJECTED_DIR / name).exists()
    else:
        assert taken.run_id == storage.run_id and taken.command in ("set_limits", "stop_trial", "end_experiment")
        store.done(taken)
    assert not (storage.path / CONTROL_DIR / name).exists()


# -- the writers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("command", "args", "error", "says"), [
    ("set_limits", {"max_concurrent": 0}, ConfigError, "`max_concurrent` is 0"),
    ("set_limits", {"max_concurrent": 2.5}, ConfigError, "whole number"),
    ("set_limits", {"time_budget_s": float("nan")}, ConfigError, "`time_budget_s` is nan"),
    ("set_limits", {"max_concurrent": True}, ConfigError, "`max_concurrent` is True"),
    ("stop_trial", {"trial_id": "../../etc"}, ConfigError, "`trial_id` is '../../etc'"),
    ("stop_trial", {"trial_id": "00000\n"}, ConfigError, "`trial_id` is '00000\\n'"),
    ("stop_trial", {"trial_id": "00009"}, ControlRefused, "has no trial '00009'"),
    ("end_experiment", {"now": 1}, ConfigError, "'now' is not one of its arguments"),
])
def test_writers_refuse_bad_commands_naming_the_value(storage, command, args, error, says):
    with pytest.raises(error, match=says.replace("(", r"\(").replace("\\n", "\\\\n")):
        control_store(storage).submit(command, args, origin="cli")
    assert not (storage.path / CONTROL_DIR).exists()


def test_no_command_is_written_without_a_live_driver_and_the_refusal_names_the_resume_option(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "status": "COMPLETED"})
    store = control_store(storage)
    with pytest.raises(ControlRefused) as refused:
        store.submit("set_limits", {"max_concurrent": 3, "time_budget_s": 60}, origin="cli")
    message = str(refused.value)
    assert "no live driver to apply set_limits: it is COMPLETED" in message
    assert f"resume {storage.path} --max-concurrent 3 --time-budget 60`" in message
    with pytest.raises(ControlRefused, match="There is nothing to end"):
        store.submit("end_experiment", origin="cli")
    storage.write_experiment({"name": "exp", "status": "RUNNING"})  # its driver was killed
    with pytest.raises(ControlRefused, match="its driver is gone .* then send stop_trial while it runs"):
        store.submit("stop_trial", {"trial_id": "00000"}, origin="cli")
    assert not store.inbox.exists()


def test_the_history_is_append_only_a_torn_tail_is_cut_before_the_first_append(storage):
    store = control_store(storage)
    store.history_path.write_text('{"id": "a", "accepted": true}\n{"id": "b", "acc')
    assert [e["id"] for e in store.history()] == ["a"]  # a reader skips the torn tail
    store.record({"id": "c", "accepted": False})
    assert store.history_path.read_text() == '{"id": "a", "accepted": true}\n{"id": "c", "accepted": false}\n'
    assert (storage.path / "history.torn").read_text() == '{"id": "b", "acc\n'
    store.history_path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    assert [e["id"] for e in store.history()] == ["a", "c"]  # a damaged line: the rest is still read


def test_the_trial_log_is_cut_with_a_note_past_its_limit(storage):
    storage.append_log("00000", "a" * 60, max_bytes=100)
    storage.append_log("00000", "b" * 60, max_bytes=100)
    storage.append_log("00000", "c" * 60, max_bytes=100)
    text = storage.log_path("00000").read_text()
    assert text.startswith("a" * 60 + "b" * 40 + "\n[raytuner: this log reached 100 bytes")
    assert "ccc" not in text and text.count("\n") == 2
    assert storage.read_log("00000", 60, 10) == ("b" * 10, 70)
