"""Steering a running sweep through `raytuner control`, and every trial's own log, on a
real local Ray. The commands are sent from a thread of the test while ``fit`` runs, each
once the experiment's files show the moment it is meant for."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.control import control_store
from raytuner._worker import session as _session
from raytuner.cli import main

from tests._helpers import Steer, reported, wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def chatty(config):
    ctx = rt.get_context()
    print(f"hello from trial {ctx.trial_id} <b>")
    printer = threading.Thread(target=lambda: print(f"a thread of trial {ctx.trial_id}"))
    printer.start()
    printer.join()
    print("to stderr", file=sys.stderr)
    for step in range(1, 600):
        time.sleep(0.02)
        rt.report({"loss": 1.0 / step})


def status_of(path: Path, trial_id: str) -> str | None:
    record = path / "trials" / trial_id / "trial.json"
    try:
        return json.loads(record.read_text())["status"]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_control_from_the_cli_steers_the_sweep_and_each_trial_has_its_own_log(storage):
    path = storage / "steered"
    answers = {}

    def script(path):
        answers["limits"] = cli("control", str(path), "--max-concurrent", "2")
        wait_for(lambda: status_of(path, "00001") == "RUNNING", "a second trial to run at once")
        answers["stop"] = cli("control", str(path), "--stop-trial", "00000")
        answers["unknown"] = cli("control", str(path), "--stop-trial", "99999")
        answers["bad"] = cli("control", str(path), "--max-concurrent", "0")
        # Its first answer carries what it printed first (the log is written before the results).
        wait_for(lambda: reported(path, "00001"), "trial 00001 to report")
        answers["end"] = cli("control", str(path), "--end")

    with Steer(path, script, ready=reported):
        results = rt.Tuner(chatty, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=6, max_concurrent=1,
                           storage_path=storage, name="steered", verbose=0).fit()
    assert answers["limits"] == (0, "set_limits: applied: max_concurrent=2\n")
    assert answers["stop"] == (0, "stop_trial: applied: trial 00000 stopped\n")
    assert answers["unknown"][0] == 1 and answers["bad"][0] == 2
    assert answers["end"] == (0, "end_experiment: applied: experiment ended\n")
    trials = {t.trial_id: t for t in results.trials}
    assert trials["00000"].status is TrialStatus.STOPPED
    assert json.loads((path / "trials/00000/trial.json").read_text())["note"] == "stopped by cli"
    assert len(trials) < 6 and {t.status for t in trials.values()} == {TrialStatus.STOPPED}
    history = control_store(path).history()
    assert [(h["command"], h["origin"], h["accepted"]) for h in history] == [
        ("set_limits", "cli", True), ("stop_trial", "cli", True), ("end_experiment", "cli", True)]
    assert all(h["time"] >= h["sent"] for h in history)
    assert rt.load(path).meta["max_concurrent"] == 2

    log = (path / "trials/00000/log.txt").read_text()
    assert "hello from trial 00000 <b>\n" in log and "a thread of trial 00000\n" in log and "to stderr\n" in log
    assert "trial 00001" not in log
    code, out = cli("logs", str(path), "00001")
    assert code == 0 and "hello from trial 00001" in out

    # Finished: commands are refused, saying so.
    code, _ = cli("control", str(path), "--max-concurrent", "3")
    assert code == 1
    assert control_store(path).history() == history


def failing_once(config):
    marker = Path(config["dir"]) / f"failed-{rt.get_context().trial_id}"
    start = 0
    if rt.get_checkpoint() is not None:
        start = int((rt.get_checkpoint() / "step").read_text())
    for step in range(start + 1, 400):
        if config["fail"] and not marker.exists() and step == 2:
            marker.touch()
            raise OSError("the disk hiccuped")
        ckpt = Path(rt.get_context().trial_dir) / f"ck{step}"
        ckpt.mkdir(exist_ok=True)
        (ckpt / "step").write_text(str(step))
        rt.report({"loss": 1.0 / step, "start": start}, checkpoint=ckpt)
        if not config["fail"] and (Path(config["dir"]) / "done").exists():
            return
        if config["fail"] and step >= 4:
            return
        time.sleep(0.02)


def test_a_failed_trial_reruns_from_its_checkpoint_on_command(storage, tmp_path):
    path = storage / "rerun"

    def script(path):
        wait_for(lambda: status_of(path, "00000") == "FAILED", "trial 00000 to fail")
        assert cli("control", str(path), "--retry-trial", "00001")[0] == 1  # running, not failed
        assert cli("control", str(path), "--retry-trial", "00000") == (
            0, "retry_trial: applied: trial 00000 queued to run again from checkpoint_000001\n")
        wait_for(lambda: status_of(path, "00000") == "COMPLETED", "the re-run to complete")
        (tmp_path / "done").touch()

    space = {"fail": rt.grid([True, False]), "dir": str(tmp_path)}
    with Steer(path, script):
        results = rt.Tuner(failing_once, space=space, metric="loss", num_trials=2, max_concurrent=2,
                           storage_path=storage, name="rerun", verbose=0, searcher=rt.GridSearcher()).fit()
    rerun = next(t for t in results.trials if t.trial_id == "00000")
    assert rerun.status is TrialStatus.COMPLETED
    assert json.loads((path / "trials/00000/trial.json").read_text())["note"] == "re-run by cli"
    history = list(rt.load(path).history("00000")["start"])
    assert history == [0, 1, 1, 1]  # one report, the failure, then on from checkpoint 1
    assert "the disk hiccuped" in (path / "trials/00000/error.txt").read_text()


QUIET_SWEEP = """
import logging, os, sys
import ray
import raytuner as rt

def noisy(config):
    print("PRINTED-BY-TRIAL")
    print("WARNED-BY-TRIAL", file=sys.stderr)
    os.write(1, b"FD-LEVEL-BY-TRIAL\\n")  # the capture takes the descriptors too
    # As raytuner's own code warns inside a trial (the Keras callback's advice): shown once.
    logging.getLogger("raytuner.keras").warning("Trial %s: RAYTUNER-NOTE", rt.get_context().trial_id)
    logging.getLogger("raytuner.keras").info("RAYTUNER-INFO")
    rt.report({"loss": 1.0})

@ray.remote
def outside_a_trial():
    os.write(1, b"FD-LEVEL-LINE\\n")  # Ray forwards this to the driver, so it would forward a trial's too

rt.Tuner(noisy, space={}, metric="loss", num_trials=2, max_concurrent=1, storage_path=sys.argv[1], name="quiet",
         verbose=1, keep_workers_s=0).fit()
ray.get(outside_a_trial.remote())
print("FIT-DONE", flush=True)
sys.stdin.read()  # stay up (Ray keeps forwarding) until the test has read what it waits for
"""


def test_the_sweeps_terminal_shows_none_of_what_trials_print_but_raytuners_warnings_once(tmp_path):
    import os
    import selectors
    import shutil
    import subprocess
    import tempfile

    script = tmp_path / "sweep.py"
    script.write_text(QUIET_SWEEP)
    ray_tmp = tempfile.mkdtemp(prefix="rt-q-", dir="/tmp")  # a Ray of its own, beside the tests' one
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": ray_tmp}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "r")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    seen = b""
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while not (b"FIT-DONE" in seen and b"FD-LEVEL-LINE" in seen) and time.monotonic() < deadline:
            if selector.select(timeout=1.0):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
    finally:
        proc.stdin.close()
        seen += proc.stdout.read()
        proc.wait(30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    text = seen.decode(errors="replace")
    assert "FIT-DONE" in text and "FD-LEVEL-LINE" in text, text[-3000:]
    assert "BY-TRIAL" not in text and "RAYTUNER-INFO" not in text
    assert text.count("RAYTUNER-NOTE") == 1 and "[raytuner] Trial 00000: RAYTUNER-NOTE" in text, text[-3000:]
    assert "each trial's log has its own: raytuner logs quiet 00000" in text
    for trial_id in ("00000", "00001"):
        log = tmp_path / "r/quiet/trials" / trial_id / "log.txt"
        assert log.read_text() == (f"PRINTED-BY-TRIAL\nWARNED-BY-TRIAL\nFD-LEVEL-BY-TRIAL\nTrial {trial_id}: "
                                   "RAYTUNER-NOTE\n")


def test_a_new_time_budget_moves_the_drivers_deadline(storage):
    path = storage / "budget"
    answers = {}

    def script(path):
        answers["budget"] = cli("control", str(path), "--time-budget", "0.5")

    with Steer(path, script, ready=reported):
        started = time.monotonic()
        results = rt.Tuner(chatty, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=4, max_concurrent=1,
                           storage_path=storage, name="budget", verbose=0, time_budget_s=600).fit()
    assert answers["budget"] == (0, "set_limits: applied: time_budget_s=0.5\n")
    # Already past the new budget when it came: the run ends at once, its trials STOPPED.
    assert time.monotonic() - started < 60
    assert (results.meta["status"], results.meta["time_budget_s"]) == ("TIMED_OUT", 0.5)
    assert {t.status for t in results.trials} == {TrialStatus.STOPPED}



BUDGET_S = 3.0


def reports_just_before_the_time_budget_ends(config):
    trial_dir = Path(rt.get_context().trial_dir)
    start = json.loads((trial_dir.parent.parent / "experiment.json").read_text())["start_time"]
    (trial_dir / "state").mkdir()
    # The point of the test, not a race to win: the report is made 20 ms before the driver's
    # deadline (which runs from a moment after start_time), and a streamed report reaches
    # the driver up to 50 ms later (the worker's linger), so it is on its way at the end.
    time.sleep(max(0.0, start + BUDGET_S - 0.02 - time.time()))
    rt.report({"loss": 0.5}, checkpoint=str(trial_dir / "state"))
    threading.Event().wait()  # until the end of the experiment ends it


def test_a_report_made_just_before_the_time_budget_ends_is_recorded(storage):
    """The end of every trial (a time budget, an end_experiment command) waits for the
    answers on their way (controller.SETTLE_S): a report made before the end, and its
    checkpoint, are recorded, instead of a trial at iteration 0 beside a checkpoint folder
    no row names."""
    results = rt.Tuner(reports_just_before_the_time_budget_ends, space={"x": 0.5}, metric="loss",
                       storage_path=storage, name="budget_end", verbose=0, tensorboard=False,
                       time_budget_s=BUDGET_S).fit()
    (trial,) = results.trials
    assert results.meta["status"] == "TIMED_OUT" and trial.status is TrialStatus.STOPPED
    history = results.history(trial.trial_id)
    assert (trial.iteration, trial.metrics.get("loss"), len(history)) == (1, 0.5, 1)
    assert history.timestamp.iloc[-1] < results.meta["start_time"] + BUDGET_S  # made before the end
    assert trial.checkpoint is not None and Path(trial.checkpoint).name == "checkpoint_000001"
    loaded = rt.load(results.path).trials[0]
    assert (loaded.iteration, loaded.checkpoint) == (1, trial.checkpoint)


def steps_until_stopped(config):
    trial_dir = Path(rt.get_context().trial_dir)
    for step in range(1, 1000):
        time.sleep(0.05)  # an epoch's work
        (trial_dir / f"done-{step}").touch()  # what the trainable completed, whatever the records say
        folder = trial_dir / f"state{step}"
        folder.mkdir()
        rt.report({"loss": 1.0 / step}, checkpoint=str(folder))


def test_a_stop_sent_while_a_trial_trains_keeps_the_step_it_was_in(storage):
    """`raytuner control --stop-trial` reaches a trial between its reports: the report it
    makes next is its last, and is recorded with its checkpoint (the work done before the
    trial saw the stop), where it was dropped and its checkpoint deleted."""
    path = storage / "stop_keeps"

    def script(path):
        wait_for((path / "trials" / "00000" / "done-2").exists, "two steps done")
        control_store(path).submit("stop_trial", {"trial_id": "00000"}, origin="test")

    with Steer(path, script, ready=reported):
        results = rt.Tuner(steps_until_stopped, space={"x": 0.5}, metric="loss", storage_path=storage,
                           name="stop_keeps", verbose=0, tensorboard=False, checkpoints_to_keep=None).fit()
    (trial,) = results.trials
    done = max(int(p.name.split("-")[1]) for p in (path / "trials" / "00000").glob("done-*"))
    assert trial.status is TrialStatus.STOPPED
    assert (trial.iteration, list(results.history("00000").iteration)) == (done, list(range(1, done + 1)))
    assert Path(trial.checkpoint).name == f"checkpoint_{done:06d}"


def waits_for_the_stop(config):
    trial_dir = Path(rt.get_context().trial_dir)
    rt.report({"loss": 1.0})
    # The test stops the trial once this report is recorded. Its next epoch starts once its
    # worker has heard of the stop (the event the test is about: stop_soon wakes this wait),
    # or after 60 s without a word. A STOP that came with the answer to the worker's call
    # (only after news of the trial: a report, or something it printed) wakes nobody.
    run = _session.current()
    deadline = time.monotonic() + 60
    with run._cond:
        run._cond.wait_for(lambda: run._pending is not None, timeout=60)
    heard = run._pending is not None and time.monotonic() < deadline
    (trial_dir / ("heard" if heard else "not-heard")).touch()
    for step in range(2, 1000):
        rt.report({"loss": 1.0 / step})


def test_a_stopped_trial_ends_at_its_next_report(storage):
    """A stop reaches the worker while the trial trains, beside the call that waits for its
    news: its next report is its last. (The STOP answering that call reached a trial that
    streams its reports one report later: one epoch more, which can be minutes.)"""
    path = storage / "stop_next"

    def script(path):
        wait_for(lambda: reported(path), "the first report")
        control_store(path).submit("stop_trial", {"trial_id": "00000"}, origin="test")

    with Steer(path, script, ready=reported):
        results = rt.Tuner(waits_for_the_stop, space={"x": 0.5}, metric="loss", storage_path=storage,
                           name="stop_next", verbose=0, tensorboard=False).fit()
    (trial,) = results.trials
    assert (path / "trials" / "00000" / "heard").exists()
    assert trial.status is TrialStatus.STOPPED
    assert (trial.iteration, list(results.history("00000").iteration)) == (2, [1, 2])


def returns_its_result(config):
    return {"loss": config["x"] ** 2}


def test_a_trainable_that_returns_its_result_instead_of_reporting_it_has_it_recorded(storage):
    results = rt.Tuner(returns_its_result, space={"x": rt.grid([0.5, -0.25])}, metric="loss", storage_path=storage,
                       verbose=0, tensorboard=False).fit()
    assert [(t.status, t.iteration, t.metrics["loss"]) for t in results.trials] == [
        (TrialStatus.COMPLETED, 1, 0.25), (TrialStatus.COMPLETED, 1, 0.0625)]
    assert results.best.config["x"] == -0.25
