"""Control commands that could break a live sweep, sent while a real sweep runs on local Ray
(issue 25): a limit far beyond the cluster, and a fuzz of hostile files in the control
folder. The sweep runs in the test's thread; the commands come from a thread beside it,
each once the experiment's files show the moment it is meant for."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import raytuner as rt
from raytuner import TrialStatus
from raytuner._control_values import clean_command
from raytuner._storage.control import CONTROL_DIR, MAX_FILE_BYTES, control_store
from raytuner._storage.experiment import ExperimentStorage
from raytuner.cli import main
from raytuner.errors import ConfigError

from tests._helpers import Steer, reported, wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def until_done(config):
    """Reports every 20 ms until the test says it is done."""
    done = Path(config["dir"]) / "done"
    for step in range(1, 20_000):
        rt.report({"loss": 1.0 / step})
        if done.exists():
            return
        time.sleep(0.02)


def outcome(path: Path, command_id: str) -> dict | None:
    return control_store(path).outcome(command_id)


def test_a_limit_far_beyond_the_cluster_starts_no_more_workers_than_it_holds_and_ctrl_c_still_works(
        storage, tmp_path, capsys):
    from raytuner._driver import pool as pool_module

    path = storage / "huge"
    sizes: list[int] = []
    interrupted_at: list[float] = []

    class Watch(rt.Callback):
        """Samples the worker pool on the driver's thread; Ctrl-C once the limit has been in force a while."""

        def on_trial_result(self, trial_id, result):
            sizes.append(pool_module._shared.size)
            if (tmp_path / "interrupt").exists() and not interrupted_at:
                interrupted_at.append(time.monotonic())
                raise KeyboardInterrupt

    def script(path):
        try:
            assert main(["control", str(path), "--max-concurrent", "10000", "--num-trials", "30"]) == 0
            seen = len(sizes)
            wait_for(lambda: len(sizes) > seen + 40, "40 more reports under the new limit")
            (tmp_path / "interrupt").touch()
        finally:
            if not (tmp_path / "interrupt").exists():
                (tmp_path / "done").touch()  # the test failed: let the sweep end

    with Steer(path, script, ready=reported):
        results = rt.Tuner(until_done, space={"dir": str(tmp_path)}, metric="loss", num_trials=50, max_concurrent=1,
                           storage_path=storage, name="huge", verbose=1, tensorboard=False, callbacks=[Watch()]).fit()
        returned = time.monotonic()
    # The 2-CPU cluster holds 2 one-CPU trials: 10,000 is the limit, 2 the workers.
    assert max(sizes) <= 2 and 2 in sizes
    assert results.meta["status"] == "INTERRUPTED" and returned - interrupted_at[0] < 30
    assert results.meta["limits"] == {"max_concurrent": 10000, "num_trials": 30}
    assert (results.meta["max_concurrent"], results.meta["num_trials"]) == (10000, 30)
    # The sweep's terminal says what changed it, and counts to the new total.
    out = capsys.readouterr().out
    assert "[raytuner] control from cli: set_limits applied: max_concurrent=10000, num_trials=30\n" in out
    assert f"[raytuner] huge: {len(results.trials)}/30 trials" in out


# -- a fuzz of the control folder --------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
    | st.floats() | st.text(max_size=30) | st.sampled_from(["set_limits", "stop_trial", "end_experiment", "00000"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["command", "args", "max_concurrent", "num_trials", "time_budget_s", "trial_id", "x"]),
        children, max_size=4),
    max_leaves=12)
#: Commands a careless or hostile writer sends for the live run: every value of every type,
#: and the few well-formed ones that leave the sweep running to its end.
COMMAND_FIELDS = st.fixed_dictionaries({
    "command": st.sampled_from(["set_limits", "stop_trial", "retry_trial", "end_experiment"]) | JSON,
    "args": st.fixed_dictionaries({}, optional={
        "max_concurrent": st.integers(1, 3) | JSON, "num_trials": st.integers(1, 6) | JSON,
        "time_budget_s": st.floats(3600, 1e6) | JSON, "trial_id": st.sampled_from(["00001", "99999"]) | JSON,
    }) | JSON,
})


def _tame(fields: dict) -> dict:
    """The fuzz is about the driver, not the sweep's length: a command that would end the
    sweep (a stop, an end, a short time budget) or lengthen it (thousands of trials) is made
    harmless; every other value goes as drawn."""
    fields = dict(fields)
    if fields["command"] == "stop_trial":
        fields["args"] = {"trial_id": "99999"}  # no such trial: refused
    elif fields["command"] == "end_experiment":
        fields["args"] = {"now": True}  # not one of its arguments: refused
    elif isinstance(fields["args"], dict):
        args = dict(fields["args"])
        for name, low, high in (("time_budget_s", 3600.0, 1e6), ("num_trials", 1, 6)):
            try:
                value = clean_command("set_limits", {name: args.get(name)}).args[name]
            except (ConfigError, KeyError):
                continue  # refused anyway
            args[name] = min(max(value, low), high)
        fields["args"] = args
    return fields


@st.composite
def hostile_files(draw):
    """("write", the bytes of a file), or (a kind of file to make: "fifo", "folder",
    "link-out", "link-fifo", None)."""
    kind = draw(st.sampled_from(["command", "command", "command", "json", "bytes", "fifo", "folder",
                                 "link-out", "link-fifo", "huge", "deep", "other-run", "no-run"]))
    if kind in ("command", "other-run", "no-run"):
        fields = _tame(draw(COMMAND_FIELDS))
        payload = {"id": draw(st.from_regex(r"[a-f0-9]{8}", fullmatch=True)), "origin": "fuzz",
                   "time": draw(st.floats(0, 2e9) | JSON), **fields}
        if kind == "command":
            payload["run_id"] = "LIVE"
        elif kind == "other-run":
            payload["run_id"] = draw(st.text(max_size=40) | JSON)
        return "write", json.dumps(payload).encode()
    if kind == "json":
        return "write", json.dumps(draw(JSON)).encode()
    if kind == "bytes":
        return "write", draw(st.binary(max_size=200))
    if kind == "huge":
        return "write", b'{"command": "end_experiment", "pad": "' + b"x" * MAX_FILE_BYTES + b'"}'
    if kind == "deep":
        return "write", b"[" * 20_000 + b"]" * 20_000
    return kind, None  # a file of another kind, made in the folder


def test_hostile_files_in_the_control_folder_never_stop_the_driver_and_every_one_is_recorded(storage, tmp_path):
    path = storage / "fuzzed"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    sent: list[tuple[str, str | None]] = []  # (file name, command id)
    number = iter(range(10**6))

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(item=hostile_files())
    def fuzz(item):
        make, data = item
        storage = ExperimentStorage(path)
        run_id = storage.live_driver().run_id
        folder = path / CONTROL_DIR
        folder.mkdir(exist_ok=True)
        name = f"{time.time_ns():020d}-fuzz{next(number)}.json"
        command_id = None
        if make == "write":
            text = data.replace(b'"LIVE"', json.dumps(run_id).encode())
            try:
                command_id = json.loads(text).get("id")
            except (ValueError, RecursionError, AttributeError):
                pass
            (folder / f".{name}.tmp").write_bytes(text)
            os.replace(folder / f".{name}.tmp", folder / name)  # as a writer does: whole, or not at all
        elif make == "fifo":
            os.mkfifo(folder / name)
        elif make == "folder":
            (folder / name).mkdir()
        else:  # a link out of the experiment, or to a FIFO (opening it would block)
            os.symlink("/etc/passwd" if make == "link-out" else pipe, folder / name)
        sent.append((name, command_id))

        def taken():
            if os.path.lexists(folder / name):
                return False
            return any(h.get("file") == name or (command_id and h.get("id") == command_id)
                       for h in control_store(path).history())

        wait_for(taken, f"the driver to take up {name} ({make if make != 'write' else data[:80]!r})", timeout_s=30)
        assert storage.live_driver() is not None
        assert json.loads((path / "experiment.json").read_text())["status"] == "RUNNING"

    def script(path):
        try:
            fuzz()
        finally:
            (tmp_path / "done").touch()

    with Steer(path, script, ready=reported, join_s=60):
        results = rt.Tuner(until_done, space={"dir": str(tmp_path)}, metric="loss", num_trials=4, max_concurrent=2,
                           storage_path=storage, name="fuzzed", verbose=0, tensorboard=False).fit()
    assert results.meta["status"] == "COMPLETED"
    assert results.trials and all(t.status is TrialStatus.COMPLETED for t in results.trials)
    history = control_store(path).history()
    by_file = {h["file"] for h in history if "file" in h}
    by_id = {h["id"] for h in history if h.get("id")}
    for name, command_id in sent:  # every file is answered: applied, or refused with why
        assert name in by_file or command_id in by_id, name
    assert all(h["accepted"] or h["message"] for h in history)
    assert len(history) >= len(sent)
    assert sorted(p.name for p in (path / CONTROL_DIR).iterdir()) in (["rejected"], [])
