"""The Tuner on a real local Ray (2 CPUs, 2 declared GPUs): scheduling, storage, failures."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def sleepy(config):
    for _ in range(3):
        time.sleep(config["sleep"])
        rt.report({"loss": config["x"], "pid": os.getpid(), "t": time.time()})


def _intervals(results):
    spans = []
    for trial in results.trials:
        times = list(results.history(trial.trial_id)["t"])
        spans.append((times[0] - 3 * trial.config["sleep"] / 3, times[-1]))
    return spans


def _overlap(spans):
    return any(a0 < b1 and b0 < a1 for i, (a0, a1) in enumerate(spans) for (b0, b1) in spans[i + 1:])


def test_trials_run_in_parallel_and_persist(storage):
    # Each trial outlasts a worker's start-up (trials go to workers as they come up).
    space = {"x": rt.uniform(0, 1), "sleep": 0.6}
    results = rt.Tuner(sleepy, space=space, metric="loss", num_trials=4, storage_path=storage, verbose=0, seed=1).fit()
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 4
    assert _overlap(_intervals(results)), "two 1-CPU trials on 2 CPUs must overlap in time"
    best = min(results.trials, key=lambda t: t.config["x"])
    assert results.best.trial_id == best.trial_id
    loaded = rt.load(results.path)
    assert [t.metrics for t in loaded.trials] == [t.metrics for t in results.trials]
    assert [t.config for t in loaded.trials] == [t.config for t in results.trials]
    assert loaded.best.trial_id == best.trial_id
    assert len(loaded.history(best.trial_id)) == 3
    assert loaded.meta["status"] == "COMPLETED"


def test_a_two_cpu_trial_runs_alone(storage):
    space = {"x": rt.uniform(0, 1), "sleep": 0.15}
    results = rt.Tuner(sleepy, space=space, metric="loss", num_trials=3, resources={"cpu": 2},
                       storage_path=storage, verbose=0).fit()
    assert len(results.trials) == 3
    assert not _overlap(_intervals(results))


def test_workers_are_reused_across_trials(storage):
    results = rt.Tuner(sleepy, space={"x": rt.uniform(0, 1), "sleep": 0.0}, metric="loss", num_trials=8,
                       max_concurrent=2, storage_path=storage, verbose=0).fit()
    pids = {trial.metrics["pid"] for trial in results.trials}
    assert len(pids) <= 2


@pytest.fixture
def one_cpu_pool():
    """An empty worker pool for 1-CPU trials (warm workers of earlier tests would hold the
    CPUs); its workers are stopped afterwards."""
    from raytuner._driver.pool import acquire_pool, park_pool
    from raytuner._driver.resources import normalize

    rt.release_workers()
    pool = acquire_pool(normalize({"cpu": 1}), None)
    yield pool
    park_pool(pool, keep_s=0)


def test_a_worker_still_starting_when_an_experiment_ends_serves_the_next(one_cpu_pool):
    import ray

    from raytuner._driver.pool import acquire_pool, park_pool
    from raytuner._driver.resources import normalize

    pool = one_cpu_pool
    pool.spawn()
    ready, _ = ray.wait(pool.starting(), timeout=60)  # up, but the experiment ended before it saw that
    assert ready
    park_pool(pool, keep_s=30)
    again = acquire_pool(normalize({"cpu": 1}), None)
    assert again is pool
    (ref,) = again.starting()
    again.started(ref)
    (worker,) = again.idle
    ray.get(worker.node_id.remote(), timeout=60)  # alive: it was not killed on the way
    again.discard(worker)
    assert again.size == 0 and not again.starting()


def test_a_starting_worker_discarded_is_no_longer_starting(one_cpu_pool):
    pool = one_cpu_pool
    pool.spawn()
    (worker,) = pool._all
    pool.discard(worker)
    assert pool.size == 0 and not pool.starting()


def flaky(config):
    if config["x"] > 0.5:
        raise RuntimeError(f"boom at x={config['x']}")
    rt.report({"loss": config["x"]})


def test_failed_trials_keep_their_traceback_and_the_experiment_goes_on(storage):
    results = rt.Tuner(flaky, space={"x": rt.grid([0.1, 0.9, 0.2])}, metric="loss", storage_path=storage, verbose=0).fit()
    statuses = {t.config["x"]: t.status for t in results.trials}
    assert statuses == {0.1: TrialStatus.COMPLETED, 0.9: TrialStatus.FAILED, 0.2: TrialStatus.COMPLETED}
    (failed,) = [t for t in results.trials if t.status == TrialStatus.FAILED]
    assert "RuntimeError: boom at x=0.9" in results.errors[failed.trial_id]
    assert "boom at x=0.9" in rt.load(results.path).errors[failed.trial_id]
    assert results.best.config["x"] == 0.1


def fails_once_then_resumes(config):
    import pathlib
    import tempfile

    start = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        start = int((restored / "step").read_text())
    for step in range(start + 1, 5):
        if step == 3 and restored is None:
            raise RuntimeError("worker lost")
        out = pathlib.Path(tempfile.mkdtemp())
        (out / "step").write_text(str(step))
        rt.report({"loss": 1.0 / step, "step": step}, checkpoint=out)


def test_retry_resumes_from_the_latest_checkpoint(storage):
    results = rt.Tuner(fails_once_then_resumes, space={"x": 1}, metric="loss", max_failures=1,
                       storage_path=storage, verbose=0).fit()
    (trial,) = results.trials
    assert trial.status == TrialStatus.COMPLETED
    history = results.history(trial.trial_id)
    assert list(history["step"]) == [1, 2, 3, 4]
    assert list(history["iteration"]) == [1, 2, 3, 4]
    assert "worker lost" in trial.error
    assert trial.checkpoint is not None and (trial.checkpoint / "step").read_text() == "4"


def test_stop_criteria_end_trials_without_an_extra_report(storage):
    def train(config):
        for i in range(100):
            rt.report({"loss": 1.0 / (i + 1)})

    results = rt.Tuner(train, space={"x": 0}, metric="loss", stop={"iteration": 3}, storage_path=storage, verbose=0).fit()
    assert results.trials[0].iteration == 3
    assert results.trials[0].status == TrialStatus.COMPLETED
    results = rt.Tuner(train, space={"x": 0}, metric="loss", stop={"loss": 0.2}, storage_path=storage, verbose=0).fit()
    assert results.trials[0].iteration == 5


def test_time_budget_stops_running_trials_and_keeps_results(storage):
    def slow(config):
        for _ in range(1000):
            time.sleep(0.05)
            rt.report({"loss": config["x"]})

    started = time.monotonic()
    results = rt.Tuner(slow, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=10, time_budget_s=3,
                       storage_path=storage, verbose=0).fit()
    assert time.monotonic() - started < 15
    assert results.meta["status"] == "TIMED_OUT"
    assert {t.status for t in results.trials} == {TrialStatus.STOPPED}
    assert sum(t.iteration for t in results.trials) > 0
    for trial in results.trials:  # every report that arrived before the budget ran out is kept
        assert len(results.history(trial.trial_id)) == trial.iteration


def test_a_running_driver_records_its_run_time_as_it_goes(storage, monkeypatch):
    # What a resume after a crash goes on from (its time budget), and what the views show.
    from raytuner._driver import run_clock

    monkeypatch.setattr(run_clock, "RUN_TIME_EVERY_S", 0.2)

    def waits_for_the_run_time(config):
        record = Path(rt.get_context().trial_dir).parent.parent / "experiment.json"
        seen = wait_for(lambda: json.loads(record.read_text()).get("run_time_s"), "the driver's run time")
        rt.report({"loss": 1.0, "seen": seen})

    results = rt.Tuner(waits_for_the_run_time, space={"x": 0}, metric="loss", storage_path=storage, verbose=0,
                       tensorboard=False).fit()
    seen = results.trials[0].metrics["seen"]
    # The run time starts a moment before start_time is stamped, and is kept to the millisecond.
    assert 0 < seen <= results.meta["run_time_s"] <= results.meta["end_time"] - results.meta["start_time"] + 0.01


def test_nan_is_recorded_but_never_best(storage):
    def train(config):
        rt.report({"loss": math.nan if config["x"] == 0 else config["x"]})

    results = rt.Tuner(train, space={"x": rt.grid([0, 2, 1])}, metric="loss", storage_path=storage, verbose=0).fit()
    assert results.best.config["x"] == 1
    assert math.isnan(results.trials[0].metrics["loss"])


def test_missing_metric_ends_the_experiment_naming_the_reported_keys(storage):
    def train(config):
        rt.report({"loss": 1.0, "epoch": 1})

    with pytest.raises(rt.ReportError, match=r"expects metric 'val_loss'.*\['epoch', 'loss'\]"):
        rt.Tuner(train, space={"x": rt.uniform(0, 1)}, metric="val_loss", num_trials=3, storage_path=storage, verbose=0).fit()


def test_a_report_that_is_not_a_mapping_is_a_clear_error(storage):
    def train(config):
        rt.report(0.5)

    with pytest.raises(rt.ReportError, match="expects a mapping"):
        rt.Tuner(train, space={"x": 1}, metric="loss", storage_path=storage, verbose=0).fit()


def test_a_resource_that_does_not_increase_ends_the_experiment_with_the_reason(storage):
    def train(config):
        for epoch in (1, 2, 2, 3):
            rt.report({"loss": 1.0 / epoch, "epoch": epoch})

    with pytest.raises(rt.ResourceError, match=r"reported resource 2 after 2 \(resource_attr='epoch'\)"):
        rt.Tuner(train, space={"x": 1}, metric="loss", resource_attr="epoch", storage_path=storage,
                 verbose=0).fit()


def test_resources_no_node_has_fail_before_any_trial(storage):
    tuner = rt.Tuner(sleepy, space={"x": 1, "sleep": 0}, metric="loss", resources={"cpu": 1, "tpu": 1},
                     storage_path=storage, verbose=0)
    with pytest.raises(rt.ConfigError, match=r"no node of the Ray cluster can run one trial"):
        tuner.fit()
    assert not storage.exists() or not any(storage.rglob("trial.json"))


def test_fractional_gpu_trials_share_a_declared_gpu_with_growth_settings(storage):
    def train(config):
        env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "XLA_PYTHON_CLIENT_PREALLOCATE")}
        trial_dir = rt.get_context().trial_dir
        arrived = time.time()
        (trial_dir / "arrived").touch()
        # A rendezvous: each trial goes on only once all four run. Four half-GPU trials on
        # two declared GPUs then hold both, two on each, at the same time.
        wait_for(lambda: len(list(trial_dir.parent.glob("*/arrived"))) >= 4, "all four trials to run at once",
                 interval_s=0.02)
        rt.report({"loss": 0.0, "arrived": arrived, "met": time.time(), "gpu": int(env["CUDA_VISIBLE_DEVICES"])})
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"

    results = rt.Tuner(train, space={"x": rt.grid([1, 2, 3, 4])}, metric="loss",
                       resources={"cpu": 0.5, "gpu": 0.5}, storage_path=storage, verbose=0).fit()
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 4
    by_gpu: dict[int, list[dict]] = {}
    for trial in results.trials:
        by_gpu.setdefault(trial.metrics["gpu"], []).append(trial.metrics)
    assert sorted(by_gpu) == [0, 1] and [len(shared) for shared in by_gpu.values()] == [2, 2]
    for first, second in by_gpu.values():  # both trials of a GPU were on it at the same time
        assert max(first["arrived"], second["arrived"]) <= min(first["met"], second["met"])


def test_a_trainable_the_worker_cannot_load_fails_with_the_real_reason(storage, tmp_path, monkeypatch):
    import sys

    # A module only the driver can import: workers get the trainable by reference and fail to load it.
    (tmp_path / "driver_only_mod.py").write_text(
        "import raytuner as rt\n\ndef train(config):\n    rt.report({'loss': 1.0})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import driver_only_mod

    from raytuner.errors import TrialsFailedError

    try:
        with pytest.raises(TrialsFailedError, match="No module named 'driver_only_mod'") as info:
            rt.Tuner(driver_only_mod.train, space={"x": 1}, metric="loss", storage_path=storage,
                     verbose=0, tensorboard=False).fit()
    finally:
        sys.modules.pop("driver_only_mod", None)
    (trial,) = info.value.results.trials
    assert trial.status == TrialStatus.FAILED
    assert "could not run it" in trial.error and "driver_only_mod" in trial.error
    assert "worker died" not in trial.error


def test_fail_fast_stops_at_the_first_failure_and_stays_resumable(storage):
    with pytest.raises(rt.RayTunerError, match=r"fail_fast=True.*raytuner.Tuner.resume") as info:
        rt.Tuner(flaky, space={"x": rt.grid([0.9, 0.1, 0.2, 0.3])}, metric="loss", max_concurrent=1, fail_fast=True,
                 storage_path=storage, name="ff", verbose=0, tensorboard=False).fit()
    assert "boom at x=0.9" in str(info.value)
    stopped = rt.load(storage / "ff")
    assert stopped.meta["status"] == "FAILED"
    assert len(stopped.trials) == 1 and stopped.trials[0].status == TrialStatus.FAILED
    resumed = rt.Tuner.resume(storage / "ff", flaky, verbose=0)
    assert [t.status for t in resumed.trials] == [TrialStatus.FAILED] + [TrialStatus.COMPLETED] * 3


def test_warm_workers_expiring_after_ray_shutdown_do_not_start_ray_again(tmp_path):
    # Its own process and Ray: this test shuts Ray down.
    import subprocess
    import sys

    script = """
import ray
import raytuner as rt
from raytuner._driver import pool as pools

ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
rt.Tuner(lambda c: rt.report({"loss": c["x"]}), space={"x": rt.uniform(0, 1)}, metric="loss",
         num_trials=2, storage_path=%r, verbose=0, keep_workers_s=0.2).fit()
timer = pools._shared._timer
ray.shutdown()
timer.join(60)  # the warm workers expire now, after the shutdown
assert not timer.is_alive()
print("initialized after expiry:", ray.is_initialized())
""" % str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "initialized after expiry: False" in done.stdout


def test_a_fit_after_ray_shutdown_and_a_new_local_ray_starts_fresh_workers(tmp_path):
    """A notebook's "reset": ray.shutdown() between two fits, within keep_workers_s. The new
    local Ray's job has the same id as the old one's, and the warm workers died with the old
    session: the second fit took them for its own and ended in a raw Ray error ("Can't find
    actor"), leaving a folder without its experiment.json."""
    import subprocess
    import sys

    script = """
import ray
import raytuner as rt

def train(config):
    rt.report({"loss": config["x"]})

for name in ("first", "second"):
    results = rt.Tuner(train, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, name=name,
                       storage_path=%r, verbose=0, tensorboard=False, keep_workers_s=600).fit()
    print(name, results.status, flush=True)
    ray.shutdown()
"""  % str(tmp_path)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["first", "COMPLETED", "second", "COMPLETED"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_a_start_that_fails_before_the_experiment_is_recorded_leaves_no_folder(storage, monkeypatch, failure):
    """A Ctrl-C while Ray starts, or Ray refusing the run's start: the folder it made (its
    tuner.pkl and an empty trials folder, without experiment.json) was left, which
    `raytuner ls` skipped and raytuner.load refused as no experiment."""
    from raytuner._driver import run

    def fails(*args, **kwargs):
        raise failure("as the run starts")

    monkeypatch.setattr(run, "Controller", fails)  # after tuner.pkl is written
    for name in (None, "named"):
        with pytest.raises(failure):
            rt.Tuner(reports_x, space={"x": 1.0}, metric="loss", storage_path=storage, name=name, verbose=0).fit()
    assert list(storage.iterdir()) == []
    monkeypatch.undo()
    results = rt.Tuner(reports_x, space={"x": 1.0}, metric="loss", storage_path=storage, name="named", verbose=0,
                       tensorboard=False).fit()
    assert results.status == "COMPLETED"


def imports_helper(config):
    import sys

    if config["folder"] not in sys.path:
        sys.path.insert(0, config["folder"])  # a module beside the notebook
    import raytuner_test_helper

    rt.report({"loss": raytuner_test_helper.VALUE, "pid": os.getpid()})


def test_a_warm_worker_that_imported_a_module_edited_since_is_not_reused(storage, tmp_path):
    """A notebook user edits a helper module beside the notebook and runs the fit again: the
    warm workers must not run the old code (before, some trials reported the old value, some
    the new, and nothing said so)."""
    helper = tmp_path / "raytuner_test_helper.py"
    helper.write_text("VALUE = 1.0\n")
    rt.release_workers()

    def sweep(name: str) -> rt.Results:
        return rt.Tuner(imports_helper, space={"folder": str(tmp_path)}, metric="loss", num_trials=4,
                        max_concurrent=2, name=name, storage_path=storage, verbose=0, tensorboard=False,
                        keep_workers_s=600).fit()

    first = sweep("before").dataframe()
    assert first["loss"].tolist() == [1.0] * 4
    stat = helper.stat()
    helper.write_text("VALUE = 2.0\n")
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # later, whatever the clock's grain
    second = sweep("after").dataframe()
    rt.release_workers()
    assert second["loss"].tolist() == [2.0] * 4
    assert not set(second["pid"]) & set(first["pid"])  # fresh workers


def test_a_warm_worker_whose_modules_did_not_change_is_reused(storage):
    rt.release_workers()
    first = rt.Tuner(sleepy, space={"x": rt.uniform(0, 1), "sleep": 0.0}, metric="loss", num_trials=2,
                     max_concurrent=1, storage_path=storage, name="a", verbose=0, keep_workers_s=600).fit()
    second = rt.Tuner(sleepy, space={"x": rt.uniform(0, 1), "sleep": 0.0}, metric="loss", num_trials=2,
                      max_concurrent=1, storage_path=storage, name="b", verbose=0, keep_workers_s=600).fit()
    rt.release_workers()
    pids = {trial.metrics["pid"] for trial in first.trials + second.trials}
    assert len(pids) == 1


def reports_x(config):
    rt.report({"loss": config["x"]})


def test_a_searcher_and_scheduler_run_one_experiment_each(storage):
    """A searcher that ran an experiment holds its trials under ids the next would reuse (a
    grid's points already taken: a second fit ran nothing and said COMPLETED). Another Tuner
    given it is refused, and so is a Tuner built beforehand when its own fit() comes."""
    searcher, scheduler = rt.GridSearcher(), rt.ASHAScheduler(max_resource=1)
    space = {"x": rt.grid([1, 2, 3])}
    waiting = rt.Tuner(reports_x, space=space, metric="loss", searcher=searcher, scheduler=scheduler,
                       storage_path=storage, name="second", verbose=0, tensorboard=False)
    first = rt.Tuner(reports_x, space=space, metric="loss", searcher=searcher, scheduler=scheduler,
                     storage_path=storage, name="first", verbose=0, tensorboard=False).fit()
    assert sorted(t.config["x"] for t in first.trials) == [1, 2, 3]
    where = str(storage / "first")
    with pytest.raises(rt.ConfigError, match=rf"`searcher` \(GridSearcher\) already ran the experiment at {where}"):
        rt.Tuner(reports_x, space=space, metric="loss", searcher=searcher, storage_path=storage, verbose=0)
    with pytest.raises(rt.ConfigError, match=rf"`searcher` \(GridSearcher\) already ran the experiment at {where}"):
        waiting.fit()
    assert not (storage / "second").exists()
    with pytest.raises(rt.ConfigError, match=rf"`scheduler` \(ASHAScheduler\) already ran the experiment at {where}"):
        rt.Tuner(reports_x, space=space, metric="loss", scheduler=scheduler, storage_path=storage, verbose=0)


def test_trials_waiting_for_gpus_another_actor_holds_are_said(storage, monkeypatch, caplog):
    """Ray Tune's insufficient-resources warning: the cluster has the GPUs (declared to Ray),
    but another actor holds both; the run said nothing until its time budget ended it."""
    import ray

    from raytuner._driver import stall

    monkeypatch.setattr(stall, "STALL_CHECK_S", 0.2)
    monkeypatch.setattr(stall, "HELD_AFTER_S", 0.5)

    @ray.remote(num_gpus=2, num_cpus=0)
    class Holder:
        def ready(self):
            return True

    holder = Holder.remote()
    try:
        ray.get(holder.ready.remote())
        with caplog.at_level("WARNING", logger="raytuner"):
            results = rt.Tuner(reports_x, space={"x": 0.5}, metric="loss", num_trials=1, resources={"cpu": 1, "gpu": 1},
                               storage_path=storage, verbose=0, tensorboard=False, time_budget_s=3).fit()
    finally:
        ray.kill(holder)
    assert results.meta["status"] == "TIMED_OUT"
    (said,) = [r.getMessage() for r in caplog.records if "no trial has started for" in r.getMessage()]
    assert "what they have free now cannot ({CPU: " in said and "GPU: 0" in said and "other Ray work holds" in said


def test_a_local_ray_on_a_clusters_head_is_not_taken_for_the_cluster(tmp_path):
    """A script on a `ray up` head that joins no cluster runs on a local Ray of its own: the
    head's ~/ray_bootstrap_config.yaml is not its autoscaler. A trial that needs a GPU node
    type of that file is refused at once, with the address to pass, where the run waited
    for nodes nobody would launch, without end."""
    import shutil
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(__file__).parents[2] / "cluster.yaml", home / "ray_bootstrap_config.yaml")
    script = ("import raytuner as rt\n"
              "def train(config):\n    rt.report({'loss': 1.0})\n"
              f"rt.Tuner(train, space={{'x': 1.0}}, resources={{'cpu': 1, 'gpu': 1}}, storage_path={str(tmp_path)!r},\n"
              "         verbose=0, tensorboard=False).fit()\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", script], env={**env, "HOME": str(home)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert ("raytuner.errors.ConfigError: `resources={'cpu': 1.0, 'gpu': 1.0}`: no node of the Ray cluster"
            in done.stderr)
    assert "This machine is a cluster's head (~/ray_bootstrap_config.yaml), but the Ray here is one started for " \
           "this script alone: pass address='auto'" in done.stderr
