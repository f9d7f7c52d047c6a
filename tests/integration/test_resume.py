"""Resume: after Ctrl-C, to extend a finished experiment, and the errors that protect a folder."""

from __future__ import annotations

import json
import pathlib
import pickle
import sys
import tempfile
import time

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._display import cli_command
from raytuner.schedulers import ASHAScheduler

from tests._helpers import InterruptAfter
from tests.integration import restarts

pytestmark = pytest.mark.usefixtures("ray_cluster")


def counting(config):
    """Six epochs (of ``pause`` seconds); checkpoints every epoch; resumes where its
    checkpoint says."""
    start = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        start = int((restored / "epoch").read_text())
    for epoch in range(start + 1, 7):
        time.sleep(config.get("pause", 0))
        out = pathlib.Path(tempfile.mkdtemp())
        (out / "epoch").write_text(str(epoch))
        rt.report({"loss": config["x"] / epoch, "epoch": epoch}, checkpoint=out)


def test_sigterm_interrupts_as_ctrl_c_does_and_the_process_still_exits(storage, caplog):
    # 3 s a trial, the exit at the second result: both trials are mid-run, whatever the load.
    space = {"x": rt.uniform(0, 1), "pause": 0.5}
    with pytest.raises(SystemExit) as exited:  # what Ray's SIGTERM handler raises in the driver
        rt.Tuner(counting, space=space, metric="loss", num_trials=2, storage_path=storage, name="term",
                 callbacks=[InterruptAfter(2, SystemExit(15))], verbose=0, seed=3, tensorboard=False).fit()
    assert exited.value.code == 15
    meta = json.loads((storage / "term" / "experiment.json").read_text())
    assert meta["status"] == "INTERRUPTED" and "error" not in meta  # not FAILED: nothing went wrong
    assert "Asked to exit (SIGTERM?): stopped running trials" in caplog.text
    assert f"Continue with: {cli_command('resume', storage / 'term')}" in caplog.text
    assert TrialStatus.PENDING in {t.status for t in rt.load(storage / "term").trials}
    results = rt.Tuner.resume(storage / "term", counting, verbose=0)
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 2


SIGTERMED_DRIVER = """
import atexit, sys, threading
import ray
import raytuner as rt

class AtStart(rt.Callback):
    def on_experiment_start(self, path, meta):
        # Registered after ray.init, so run before Ray's own exit handler: is Ray still up?
        atexit.register(lambda: print("ray up at exit:", ray.is_initialized(), flush=True))

def slow(config):
    rt.report({"loss": 1.0})
    threading.Event().wait(300)  # trains until the driver's end takes its worker

rt.Tuner(slow, space={"x": 0.5}, metric="loss", num_trials=1, storage_path=sys.argv[1], name="term",
         callbacks=[AtStart()], verbose=0, tensorboard=False).fit()
"""


def test_a_sigtermed_driver_shuts_the_ray_it_started_down_before_it_exits(tmp_path):
    """Left to the interpreter's exit, Ray's shutdown met MLflow's there and the process
    aborted (exit status 134) in about half the runs with an MLflowCallback; the Ray a
    driver started is shut down as the SIGTERM's exit leaves fit()."""
    import signal
    import subprocess

    from tests._helpers import wait_for

    driver = subprocess.Popen([sys.executable, "-c", SIGTERMED_DRIVER, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (tmp_path / "term" / "trials" / "00000" / "results.jsonl").is_file(), "a first report",
                 process=driver)
        driver.send_signal(signal.SIGTERM)
        out, _ = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 15, out
    assert "ray up at exit: False" in out and "Asked to exit (SIGTERM?)" in out, out
    assert json.loads((tmp_path / "term" / "experiment.json").read_text())["status"] == "INTERRUPTED"


def test_the_ctrl_c_message_of_a_trainable_no_command_can_import_names_the_python_call(storage, caplog):
    """A trainable defined in a notebook, or inside a function as here: `raytuner resume`
    cannot import it, so the message says the call that passes it."""
    def steps(config):
        for step in range(1000):
            rt.report({"loss": 1 / (step + 1)})

    results = rt.Tuner(steps, space={"x": 1.0}, metric="loss", storage_path=storage, name="local",
                       callbacks=[InterruptAfter(2)], verbose=0, tensorboard=False).fit()
    assert results.meta["status"] == "INTERRUPTED"
    assert (f"Continue with: raytuner.Tuner.resume({str(results.path)!r}, trainable=steps) (in Python: its trainable "
            "was defined where no command can import it)") in caplog.text


def test_ctrl_c_then_resume_finishes_every_trial_once(storage, caplog, capsys):
    space = {"x": rt.uniform(0, 1), "pause": 0.05}  # trials mid-run at the Ctrl-C (what was reported is kept)
    first = rt.Tuner(counting, space=space, metric="loss", num_trials=6, storage_path=storage, name="exp",
                     callbacks=[InterruptAfter(15)], verbose=0, seed=3, tensorboard=False).fit()
    assert first.meta["status"] == "INTERRUPTED"
    assert f"Continue with: {cli_command('resume', first.path)}" in caplog.text  # the Ctrl-C message says how
    statuses = {t.trial_id: t.status for t in first.trials}
    assert TrialStatus.PENDING in statuses.values(), "Ctrl-C leaves the running trials resumable"
    finished_before = {t.trial_id: (first.path / "trials" / t.trial_id / "trial.json").read_text()
                       for t in first.trials if t.status.is_finished()}
    interrupted = sorted(t.trial_id for t in first.trials if t.status == TrialStatus.PENDING)
    from raytuner._storage.experiment import ExperimentStorage

    on_disk = ExperimentStorage(first.path)  # trial.json may lag behind the newest checkpoint
    checkpoints = {t: (on_disk.read_history(t).last_checkpoint or ("", {"iteration": 0}))[1]["iteration"]
                   for t in interrupted}

    capsys.readouterr()
    results = rt.Tuner.resume(first.path, counting, verbose=1)
    said = capsys.readouterr().out.splitlines()[0]
    assert said.startswith(f"[raytuner] resuming exp: keeping {len(finished_before)} finished trial"), said
    restarts = ", ".join(f"{t} from report {checkpoints[t]}" if checkpoints[t] else f"{t} from scratch"
                         for t in interrupted)
    assert f"restarting {len(interrupted)} that did not finish: {restarts}" in said
    assert f"up to {6 - len(first.trials)} new trial" in said or len(first.trials) == 6
    assert results.meta["status"] == "COMPLETED"
    assert all(rt.load(first.path)[t].status == TrialStatus.COMPLETED for t in interrupted)
    notes = [json.loads((first.path / "trials" / t / "trial.json").read_text())["note"] for t in interrupted]
    assert notes == [None] * len(interrupted), "a completed trial no longer says it was interrupted"
    with pytest.raises(AttributeError, match="runs the experiment at once"):
        results.fit()
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 6
    configs = [t.config["x"] for t in results.trials]
    assert len(set(configs)) == 6, "no config runs twice"
    for trial_id, before in finished_before.items():
        assert (results.path / "trials" / trial_id / "trial.json").read_text() == before
    for trial in results.trials:
        history = results.history(trial.trial_id)
        assert list(history["epoch"]) == list(range(1, 7)), list(history["epoch"])  # one trajectory
        assert list(history["iteration"]) == list(range(1, 7))
    # The same seed gives the same configs as an uninterrupted run: the searcher's state was restored.
    straight = rt.Tuner(counting, space=space, metric="loss", num_trials=6, storage_path=storage, verbose=0,
                        seed=3, tensorboard=False).fit()
    assert configs == [t.config["x"] for t in straight.trials]


def test_a_retry_a_resume_and_a_promotion_restart_from_checkpoints_in_the_trials_folder(storage, tmp_path):
    # The same runs take the bucket (test_cloud_storage.py) and the relay (test_multinode.py).
    restarts.check_retry_then_resume(restarts.retry_then_resume(str(storage), "restarts", str(tmp_path)), in_storage=1)
    restarts.check_promotion(restarts.promotion(str(storage), "promoted", str(tmp_path)), in_storage=1)


def test_resume_extends_a_finished_experiment_with_its_scheduler(storage):
    scheduler = ASHAScheduler(max_resource=6, reduction_factor=2)
    first = rt.Tuner(counting, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=3, scheduler=scheduler,
                     storage_path=storage, verbose=0, tensorboard=False).fit()
    more = rt.Tuner.resume(first.path, counting, num_trials=5, verbose=0)
    assert len(more.trials) == 5
    assert [t.trial_id for t in more.trials][:3] == [t.trial_id for t in first.trials]
    assert all(t.status.is_finished() for t in more.trials)
    meta = json.loads((more.path / "experiment.json").read_text())
    assert meta["num_trials"] == 5
    # The scheduler was rebuilt from its description, not unpickled: tuner.pkl does not hold it.
    assert meta["scheduler_config"] == scheduler.config() and meta["milestones"] == scheduler.milestones()
    assert meta["searcher_config"]["type"] == "TPESearcher"  # the default, rebuilt from its description too
    assert pickle.loads((more.path / "tuner.pkl").read_bytes())["scheduler"] is None


def test_resume_imports_the_trainable_from_its_module(storage):
    first = rt.Tuner(counting, space={"x": 0.5}, metric="loss", num_trials=1, storage_path=storage,
                     verbose=0, tensorboard=False).fit()
    again = rt.Tuner.resume(first.path, num_trials=2, verbose=0)
    assert [t.status for t in again.trials] == [TrialStatus.COMPLETED] * 2


def test_cli_resume_extends_an_experiment(storage, capsys):
    from raytuner import cli

    first = rt.Tuner(counting, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=1, storage_path=storage,
                     verbose=0).fit()
    assert cli.main(["resume", str(first.path), "--num-trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "COMPLETED, 2 trials (2 completed)" in out and cli_command("show", first.path) in out
    again = rt.load(first.path)
    assert [t.status for t in again.trials] == [TrialStatus.COMPLETED] * 2
    assert (first.path / "tensorboard" / again.trials[1].trial_id).is_dir(), "logging goes on after a resume"


def test_cli_resume_takes_an_address_and_an_address_ray_cannot_join_now_is_said(storage, capsys):
    """`raytuner resume --address` reaches Tuner.resume; Ray is already up in this process
    (the tests' cluster), so the address is not used, and a warning says so."""
    from raytuner import cli

    first = rt.Tuner(counting, space={"x": 0.5}, metric="loss", num_trials=1, storage_path=storage,
                     verbose=0, tensorboard=False).fit()
    with pytest.warns(UserWarning, match=r"address='auto' is not used: Ray is already initialised in this process"):
        assert cli.main(["resume", str(first.path), "--num-trials", "2", "--address", "auto"]) == 0
    assert len(rt.load(first.path).trials) == 2


def fails_while_the_mount_is_missing(config):
    """Checkpoints every epoch; fails at epoch 3 while the marker file (a missing mount, the
    cause outside the trial) is there."""
    start = 0
    if rt.get_checkpoint() is not None:
        start = int((rt.get_checkpoint() / "epoch").read_text())
    for epoch in range(start + 1, 6):
        if epoch == 3 and pathlib.Path(config["marker"]).exists():
            raise OSError("the data mount is missing")
        folder = pathlib.Path(tempfile.mkdtemp())
        (folder / "epoch").write_text(str(epoch))
        rt.report({"loss": 1.0 / epoch, "start": start}, checkpoint=folder)


def test_a_resume_with_retry_failed_runs_the_failed_trials_again_from_their_checkpoints(storage, tmp_path, capsys):
    """Ray Tune's resume_errored: once the outside cause is fixed, the FAILED trials go on
    from their latest checkpoints; a plain resume says how (it said 'nothing to resume', and
    `raytuner control --retry-trial` pointed to that resume)."""
    from raytuner import cli

    marker = tmp_path / "mount-missing"
    marker.touch()
    first = rt.Tuner(fails_while_the_mount_is_missing, space={"x": rt.uniform(0, 1), "marker": str(marker)},
                     metric="loss", num_trials=2, storage_path=storage, name="errored", verbose=0,
                     tensorboard=False, checkpoint_interval_s=0)
    with pytest.raises(rt.errors.TrialsFailedError):
        first.fit()
    path = storage / "errored"
    capsys.readouterr()
    assert cli.main(["resume", str(path)]) == 0
    assert "or retry_failed=True (--retry-failed) to run its 2 failed trials again" in capsys.readouterr().out
    marker.unlink()  # the cause, fixed
    assert cli.main(["resume", str(path), "--retry-failed"]) == 0
    assert "running 2 failed trials again (00000, 00001)" in capsys.readouterr().out
    results = rt.load(path)
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 2
    for trial in results.trials:
        history = results.history(trial.trial_id)
        assert list(history.iteration) == [1, 2, 3, 4, 5] and list(history.start) == [0, 0, 2, 2, 2]
    from raytuner._storage.control import control_store

    assert [(h["command"], h["origin"], h["accepted"]) for h in control_store(path).history()] == [
        ("retry_trial", "resume", True)] * 2


def named(config):
    pathlib.Path(config["names"], rt.get_context().trial_id).write_text(rt.get_context().experiment_name)
    rt.report({"loss": 1.0})


def test_a_renamed_experiment_resumes_under_its_new_name(storage, tmp_path, capsys):
    from raytuner import cli

    names = tmp_path / "names"
    names.mkdir()
    first = rt.Tuner(named, space={"names": str(names)}, metric="loss", num_trials=1, storage_path=storage,
                     name="old", verbose=0, tensorboard=False).fit()
    assert cli.main(["rename", str(first.path), "new"]) == 0
    capsys.readouterr()
    again = rt.Tuner.resume(storage / "new", named, num_trials=2, verbose=0, tensorboard=False)
    assert {p.name: p.read_text() for p in names.iterdir()} == {"00000": "old", "00001": "new"}
    meta = json.loads((storage / "new" / "experiment.json").read_text())
    assert meta["name"] == "new"
    assert meta["argv"] == [str(arg) for arg in sys.argv]  # what `raytuner resume` imports a script with
    assert again.path == storage / "new" and not (storage / "old").exists()


def test_resume_refuses_what_it_cannot_trust(storage, tmp_path):
    with pytest.raises(rt.ExperimentError, match="has no experiment.json"):
        rt.Tuner.resume(tmp_path, counting)
    first = rt.Tuner(counting, space={"x": 0.5}, metric="loss", storage_path=storage, verbose=0, tensorboard=False).fit()

    def other(config):
        rt.report({"loss": 0.0})

    with pytest.raises(rt.ConfigError, match="was run with 'counting'"):
        rt.Tuner.resume(first.path, other)
    experiment = first.path / "experiment.json"
    experiment.write_text(experiment.read_text()[:20])
    damaged = experiment.read_text()
    with pytest.raises(rt.ExperimentError, match="not valid JSON"):
        rt.Tuner.resume(first.path, counting)
    assert experiment.read_text() == damaged, "nothing is overwritten"


class KeepEarlyState(rt.Callback):
    """Copies state.pkl as it was when the third trial started."""

    def on_experiment_start(self, path, meta):
        self.path = path

    def on_trial_start(self, trial_id, config):
        if trial_id == "00002" and not hasattr(self, "early"):
            self.early = (self.path / "state.pkl").read_bytes()


@pytest.mark.parametrize("searcher", ["random", "tpe"])
def test_resume_from_a_snapshot_older_than_the_trial_folders(storage, searcher, caplog):
    from raytuner.search import HyperOptSearcher

    keep = KeepEarlyState()
    kwargs = {"searcher": HyperOptSearcher(n_startup=3, seed=1)} if searcher == "tpe" else {"seed": 1}
    first = rt.Tuner(counting, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=6, storage_path=storage,
                     callbacks=[keep], verbose=0, tensorboard=False, **kwargs).fit()
    # As a driver that died right after the last trial leaves it, had the last snapshot been early.
    (first.path / "state.pkl").write_bytes(keep.early)
    more = rt.Tuner.resume(first.path, counting, num_trials=9, verbose=0)
    assert [t.status for t in more.trials] == [TrialStatus.COMPLETED] * 9
    assert len({t.config["x"] for t in more.trials}) == 9, "nothing proposed twice"
    assert [t.config for t in more.trials[:6]] == [t.config for t in first.trials]
    if searcher == "random":  # a searcher restored to the same state proposes the same configs again
        assert "propose other configs" not in caplog.text


def test_resuming_a_finished_experiment_answers_without_starting_ray(storage):
    import subprocess
    import sys

    first = rt.Tuner(counting, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, storage_path=storage,
                     name="done", verbose=0, tensorboard=False).fit()
    script = (f"import ray, raytuner as rt; r = rt.Tuner.resume({str(first.path)!r}); "
              "print('ray started:', ray.is_initialized(), len(r.trials))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[raytuner] done: already finished (2 trials: 2 completed); nothing to resume." in done.stdout
    assert "ray started: False 2" in done.stdout



def until_stopped(config):
    """Reports until the time budget stops it."""
    for step in range(1, 10_000):
        time.sleep(0.02)
        rt.report({"loss": 1.0 / step})


def test_resuming_a_timed_out_experiment_with_nothing_left_keeps_it_timed_out(storage, capsys):
    first = rt.Tuner(until_stopped, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, max_concurrent=2,
                     storage_path=storage, time_budget_s=1.0, verbose=0, tensorboard=False).fit()
    assert first.meta["status"] == "TIMED_OUT"
    assert [t.status for t in first.trials] == [TrialStatus.STOPPED] * 2
    record = (first.path / "experiment.json").read_text()
    for limits in ({}, {"time_budget_s": 30.0}, {"max_concurrent": 1}):
        again = rt.Tuner.resume(first.path, until_stopped, verbose=0, **limits)
        assert again.meta["status"] == "TIMED_OUT", limits
        assert (first.path / "experiment.json").read_text() == record, "a resume that ran nothing writes nothing"
    assert rt.load(first.path).meta["status"] == "TIMED_OUT"
    capsys.readouterr()
    rt.Tuner.resume(first.path, until_stopped, time_budget_s=60)  # says why the new budget does nothing
    said = capsys.readouterr().out
    assert "nothing to resume" in said and "time_budget_s=60 changed nothing: no trial is left to run" in said
    # Arguments are checked as the Tuner checks them, even by a resume that has nothing to run.
    from raytuner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"`verbose`"):
        rt.Tuner.resume(first.path, until_stopped, verbose=9)
    with pytest.raises(ConfigError, match=r"`callbacks` must hold raytuner.Callback objects; got int"):
        rt.Tuner.resume(first.path, until_stopped, callbacks=[1])


def test_the_time_budget_counts_every_run_and_a_resume_gets_what_is_left(storage, capsys):
    # One trial at a time: the budget stops the first, and two are never started.
    first = rt.Tuner(until_stopped, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=3, max_concurrent=1,
                     storage_path=storage, time_budget_s=2.0, verbose=0, tensorboard=False).fit()
    ran = first.meta["run_time_s"]
    assert first.meta["status"] == "TIMED_OUT" and 2.0 <= ran < first.meta["end_time"] - first.meta["start_time"] + 1
    record = (first.path / "experiment.json").read_text()
    # Its budget is used up: a resume runs nothing, writes nothing, and says what to pass.
    capsys.readouterr()
    again = rt.Tuner.resume(first.path, until_stopped)
    said = capsys.readouterr().out
    assert again.meta["status"] == "TIMED_OUT" and len(again.trials) == 1
    assert (first.path / "experiment.json").read_text() == record
    assert f"its runs have taken {ran:.1f} s of time_budget_s=2" in said
    assert f"Pass time_budget_s= (or --time-budget) above {ran:.1f} to run on." in said and "up to 2 new trials" in said
    # A second of budget more: the resume runs about a second, not the whole budget again
    # (that would be ran + 1 s at least: the budget counted from this run's start).
    last = rt.Tuner.resume(first.path, until_stopped, time_budget_s=ran + 1, verbose=0)
    second = last.meta["run_time_s"] - ran
    assert last.meta["status"] == "TIMED_OUT" and 1.0 <= second < ran + 0.8
    assert last.trials[0].status == TrialStatus.STOPPED and len(last.trials) <= 2  # one at a time, as before
    assert last.meta["time_budget_s"] == ran + 1 and rt.load(first.path).meta["run_time_s"] == last.meta["run_time_s"]


def shows_the_run_time(config):
    """Reports the run time a view shows while it runs (experiment.json's, counted on live)."""
    from raytuner._formats import run_time

    record = pathlib.Path(rt.get_context().trial_dir).parent.parent / "experiment.json"
    rt.report({"loss": config["x"], "shown": run_time(json.loads(record.read_text()), live=True)})


def test_a_resumed_run_is_shown_counting_on_from_the_last_runs_time_not_from_its_end(storage):
    first = rt.Tuner(shows_the_run_time, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=1,
                     storage_path=storage, verbose=0, tensorboard=False).fit()
    ran = first.meta["run_time_s"]
    from raytuner._storage.experiment import ExperimentStorage

    stored = ExperimentStorage(first.path)
    meta = stored.read_experiment()  # as if it had ended a day ago
    stored.write_experiment({**meta, **{k: meta[k] - 86_400 for k in ("start_time", "end_time", "run_time_at")}})
    resumed = rt.Tuner.resume(first.path, shows_the_run_time, num_trials=2, verbose=0)
    shown = resumed.trials[1].metrics["shown"]
    assert ran <= shown < ran + 60 and ran < resumed.meta["run_time_s"] < ran + 60  # not the day in between


# -- limits set by control, and commands no driver took up (issues 24 §9, 25) -------------------
class Watch(rt.Callback):
    """The most trials running at once (from the driver's start and end notices); sends a
    control command at the first report, and Ctrl-C after ``interrupt_after`` reports."""

    def __init__(self, command=None, interrupt_after=None):
        self.command, self.left = command, interrupt_after
        self.running: set[str] = set()
        self.most = 0

    def on_experiment_start(self, path, meta):
        self.path = path

    def on_trial_start(self, trial_id, config):
        self.running.add(trial_id)
        self.most = max(self.most, len(self.running))

    def on_trial_end(self, trial):
        self.running.discard(trial.trial_id)

    def on_trial_result(self, trial_id, result):
        from raytuner._storage.control import control_store

        if self.command is not None:
            control_store(self.path).submit(*self.command, origin="test")
            self.command = None
        if self.left is not None:
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt


def test_a_limit_set_by_control_survives_resume_and_a_resume_argument_wins(storage, capsys):
    from raytuner import cli

    space = {"x": rt.uniform(0, 1), "pause": 0.05}
    first = rt.Tuner(counting, space=space, metric="loss", num_trials=8, max_concurrent=2, storage_path=storage,
                     name="limited", verbose=0, tensorboard=False,
                     callbacks=[Watch(("set_limits", {"max_concurrent": 1}), interrupt_after=14)]).fit()
    assert first.meta["status"] == "INTERRUPTED"
    assert (first.meta["max_concurrent"], first.meta["limits"]) == (1, {"max_concurrent": 1})

    watch = Watch(interrupt_after=8)
    capsys.readouterr()
    again = rt.Tuner.resume(first.path, counting, callbacks=[watch])  # verbose as recorded (0): the resume's lines only
    said = capsys.readouterr().out
    assert ("[raytuner] limits an earlier run set still hold: max_concurrent=1 (pass max_concurrent= or "
            "--max-concurrent to change it)") in said, said
    assert again.meta["status"] == "INTERRUPTED"
    assert watch.most == 1, "the limit set by control holds after the resume"
    assert (again.meta["max_concurrent"], again.meta["limits"]) == (1, {"max_concurrent": 1})
    capsys.readouterr()
    assert cli.main(["ls", str(storage), "--wide"]) == 0
    assert "1 at once" in next(line for line in capsys.readouterr().out.splitlines() if "limited" in line)

    last = rt.Tuner.resume(first.path, counting, verbose=0, max_concurrent=2, num_trials=9)
    assert last.meta["status"] == "COMPLETED" and len(last.trials) == 9
    assert (last.meta["max_concurrent"], last.meta["num_trials"]) == (2, 9)
    assert last.meta["limits"] == {"max_concurrent": 2, "num_trials": 9}  # recorded as a command's are
    with pytest.raises(rt.ConfigError, match=r"Tuner.resume: `max_concurrent` is 1e\+308, but must be a whole"):
        rt.Tuner.resume(first.path, counting, max_concurrent=1e308)


def test_commands_sent_while_no_driver_runs_are_refused_and_never_applied_by_a_resume(storage, capsys):
    from raytuner import cli
    from raytuner._storage.control import control_store

    first = rt.Tuner(counting, space={"x": rt.uniform(0, 1), "pause": 0.05}, metric="loss", num_trials=4, max_concurrent=2,
                     storage_path=storage, name="dead", verbose=0, tensorboard=False,
                     callbacks=[Watch(interrupt_after=6)]).fit()
    assert first.meta["status"] == "INTERRUPTED"
    capsys.readouterr()
    assert cli.main(["control", str(first.path), "--end"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no live driver to apply end_experiment: it is INTERRUPTED" in err and "nothing to end" in err
    assert cli.main(["control", str(first.path), "--max-concurrent", "1"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"`{cli_command('resume', first.path)} --max-concurrent 1`" in err
    assert not (first.path / "control").exists(), "nothing was queued"
    # One written by the last driver's run, that it never took up (it died first).
    (first.path / "control").mkdir()
    stale = {"id": "5ca1ab1e", "command": "end_experiment", "args": {}, "origin": "cli", "time": time.time(),
             "run_id": first.meta["run_id"]}
    (first.path / "control" / "00000000000000000001-5ca1ab1e.json").write_text(json.dumps(stale))

    results = rt.Tuner.resume(first.path, counting, verbose=0)
    assert results.meta["status"] == "COMPLETED" and results.meta["run_id"] != first.meta["run_id"]
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 4, "the stale --end was not applied"
    (entry,) = control_store(first.path).history()
    assert (entry["id"], entry["command"], entry["accepted"]) == ("5ca1ab1e", "end_experiment", False)
    assert f"written for run '{first.meta['run_id']}', not this run" in entry["message"]
    assert (first.path / "control" / "rejected" / "00000000000000000001-5ca1ab1e.json").is_file()


@pytest.mark.parametrize("name", ["state.pkl", "tuner.pkl"])
def test_a_damaged_pickle_is_named_and_resume_changes_nothing(storage, capsys, name):
    from raytuner.cli import main

    first = rt.Tuner(counting, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, storage_path=storage,
                     name="exp", verbose=0, seed=3, tensorboard=False).fit()
    damaged = first.path / name
    damaged.write_bytes(damaged.read_bytes()[:40])  # cut short, as a disk that failed mid-file leaves it
    before = {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["resume", str(first.path), "--num-trials", "3"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"{damaged} is damaged (UnpicklingError: pickle data was truncated)" in err, err
    assert "cannot be resumed (nothing was changed)" in err and "Traceback" not in err
    assert ("delete it to resume without it" in err) == (name == "state.pkl")
    assert {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()} == before
    assert [t.status for t in rt.load(first.path).trials] == [TrialStatus.COMPLETED] * 2  # still read
    if name == "state.pkl":  # the way on it names
        damaged.unlink()
        results = rt.Tuner.resume(first.path, counting, num_trials=3, verbose=0)
        assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 3


def test_a_resume_on_a_cluster_with_no_node_for_a_trial_is_refused_before_it_writes_anything(storage):
    space = {"x": rt.uniform(0, 1), "pause": 0.05}
    rt.Tuner(counting, space=space, metric="loss", num_trials=4, storage_path=storage, name="shape",
             callbacks=[InterruptAfter(5)], verbose=0, seed=3, tensorboard=False).fit()
    from raytuner._storage.experiment import ExperimentStorage

    held = ExperimentStorage(storage / "shape")
    saved = held.load_state("tuner")
    saved["settings"].resources = {"cpu": 1.0, "accelerator_of_another_cluster": 1.0}  # another cluster's
    held.save_state("tuner", saved)
    before, kept = _records(storage / "shape"), _checkpoints(storage / "shape")
    with pytest.raises(rt.ConfigError, match="no node of the Ray cluster can run one trial"):
        rt.Tuner.resume(storage / "shape", counting, verbose=1, time_budget_s=40)
    assert _records(storage / "shape") == before  # no run id, no limits
    # No checkpoint tidied away. (A worker of the interrupted run may still be putting its
    # last one in place, as its actor is killed: one more may land, none may go.)
    assert kept <= _checkpoints(storage / "shape")


def _records(path: pathlib.Path) -> dict:
    """The experiment's files, less its checkpoints and the lock."""
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and "lock" not in p.name
            and not any(part.startswith(("checkpoint_", ".checkpoint")) for part in p.relative_to(path).parts)}


def _checkpoints(path: pathlib.Path) -> set:
    return {p.relative_to(path) for p in path.glob("trials/*/checkpoint_*") if p.is_dir()}
