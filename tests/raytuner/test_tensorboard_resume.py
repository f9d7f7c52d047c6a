"""TensorBoard after a retry or a resume, as TensorBoard's own Python loaders read it.

A trial restarted from an earlier checkpoint must show one trajectory (the lost attempt's
points dropped) in ``plugin_event_accumulator`` (``--load_fast=false``, s3 logdirs, no Rust
data server) and in the legacy ``event_accumulator``; the HParams experiment must cover
every trial of every run, as the hparams plugin computes it. No Ray: the callback's hooks
are driven directly, as the controller calls them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from raytuner._results import Results, TrialResult
from raytuner._trial import Trial, TrialStatus
from tests.raytuner.test_tracking import records_of_a_killed_driver, stored_row, stored_trial

pytest.importorskip("tensorboard")

LOADERS = ["plugin_event_accumulator", "event_accumulator"]


def shown(loader: str, run: Path) -> tuple[list[tuple[int, float]], bool]:
    """The run's loss points (step, value) as ``loader`` shows them, in its order, and
    whether it keeps the HParams session start (a purge at step 0 would drop it)."""
    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
    from tensorboard.util import tensor_util

    if loader == "plugin_event_accumulator":
        accumulator = plugin_event_accumulator.EventAccumulator(str(run))
        accumulator.Reload()
        points = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors("loss")]
    else:
        accumulator = event_accumulator.EventAccumulator(str(run))
        accumulator.Reload()
        points = [(e.step, e.value) for e in accumulator.Scalars("loss")]
    start = "_hparams_/session_start_info"
    return points, start in accumulator.Tags()["tensors"] and bool(accumulator.Tensors(start))


def report(callback, steps, attempt: int, base: float, trial_id: str = "00000") -> None:
    for step in steps:
        callback.on_trial_result(trial_id, {"loss": base + step, "iteration": step, "attempt": attempt})


@pytest.mark.parametrize("loader", LOADERS)
def test_a_retry_and_a_resume_drop_the_lost_attempts_points(tmp_path, loader):
    """Found by a tester (hunt14): the trial's first file had no START of its own, so the
    Python loader took the retry's START as the run's start and purged nothing."""
    from raytuner.tracking import TensorBoardCallback

    run = tmp_path / "tensorboard" / "00000"
    callback = TensorBoardCallback()
    callback.on_experiment_start(tmp_path, {"metric": "loss"})
    callback.on_trial_start("00000", {"lr": 0.1})
    report(callback, range(1, 9), 1, 10.0)  # checkpoints at 5, dies at 8
    report(callback, range(6, 11), 2, 20.0)  # the retry, from 5
    expected = [(s, 10.0 + s) for s in range(1, 6)] + [(s, 20.0 + s) for s in range(6, 11)]
    assert shown(loader, run) == (expected, True)

    resumed = TensorBoardCallback()  # the driver died; a resume restarts the trial from 3
    resumed.on_experiment_start(tmp_path, {"metric": "loss"})
    resumed.on_trial_start("00000", {"lr": 0.1})
    report(resumed, range(4, 6), 3, 30.0)
    assert shown(loader, run) == ([(1, 11.0), (2, 12.0), (3, 13.0), (4, 34.0), (5, 35.0)], True)


@pytest.mark.parametrize("loader", LOADERS)
def test_a_run_begun_without_a_head_start_still_drops_them(tmp_path, loader):
    """A run an earlier raytuner wrote (or one cut off before its head START): its first
    restart writes a START more, which the Python loader takes as the run's start."""
    from raytuner.tracking import TensorBoardCallback, tensorboard

    run = tmp_path / "tensorboard" / "00000"
    old = tensorboard._EventFile(run)  # as before: no START at its head
    old.summary(tensorboard._scalars({"loss": 11.0}), step=1)
    old.summary(tensorboard._scalars({"loss": 12.0}), step=2)
    old.close()
    resumed = TensorBoardCallback()
    resumed.on_experiment_start(tmp_path, {"metric": "loss"})
    resumed.on_trial_start("00000", {"lr": 0.1})
    report(resumed, [2], 2, 20.0)  # restarts from 1
    assert shown(loader, run)[0] == [(1, 11.0), (2, 22.0)]
    report(resumed, [1], 3, 30.0)  # a second restart, from scratch
    assert shown(loader, run)[0] == [(1, 31.0)]


@pytest.mark.parametrize("loader", LOADERS)
def test_a_resume_settling_a_lost_attempt_drops_its_points(tmp_path, loader):
    """A driver killed before it handed over a restart's first report: the resume's settling
    writes the START, and the Python loaders show what the records keep."""
    from raytuner._storage.history import attempt_marker
    from raytuner.tracking import TensorBoardCallback

    path, storage, meta = records_of_a_killed_driver(tmp_path)
    killed = TensorBoardCallback()
    killed.on_experiment_start(path, meta)
    row = stored_row
    stored_trial(storage, "00001", "PENDING",
                 [row(1, 2.0), row(2, 1.75), row(3, 1.5), attempt_marker(2, 1, "checkpoint_000001", "retry", 1e9),
                  row(2, 1.25, 2)], [row(1, 2.0), row(2, 1.75), row(3, 1.5)], callback=killed)
    killed.on_experiment_end(Results(path, [], "loss", "min", meta))
    TensorBoardCallback().on_experiment_start(path, {**meta, "resumed": 1})
    assert shown(loader, path / "tensorboard" / "00001") == ([(1, 2.0), (2, 1.25)], True)


# -- the HParams experiment ----------------------------------------------------------------
def hparams_experiment(logdir: Path):
    """The experiment TensorBoard's hparams plugin serves (its /experiment route's handler)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=str(logdir)))
    return get_experiment.Handler(context.RequestContext(), backend, "", api_pb2.GetExperimentRequest()).run()


def domains(experiment) -> dict:
    """Each hyperparameter's domain: (min, max) of an interval, or the discrete values."""
    out = {}
    for info in experiment.hparam_infos:
        if info.HasField("domain_interval"):
            out[info.name] = (info.domain_interval.min_value, info.domain_interval.max_value)
        else:
            out[info.name] = sorted(v.string_value for v in info.domain_discrete.values)
    return out


def one_run(path: Path, trials: dict[str, dict], ended: list, *, end: bool = True) -> None:
    """A driver's run of ``trials`` (id: config), each one report; ``ended`` collects every
    run's ends, as a resumed experiment's results hold them all."""
    from raytuner.tracking import TensorBoardCallback

    meta = {"name": "exp", "metric": "loss", "mode": "min", "start_time": time.time()}
    callback = TensorBoardCallback()
    callback.on_experiment_start(path, meta)
    for trial_id, config in trials.items():
        trial = Trial(trial_id, config)
        callback.on_trial_start(trial_id, config)
        trial.observe(1, 1, {"loss": config["x"]}, config["x"], 0.1)
        callback.on_trial_result(trial_id, {"loss": config["x"], "iteration": 1})
        trial.status = TrialStatus.COMPLETED
        ended.append(TrialResult.from_trial(trial, path / "trials" / trial_id))
        callback.on_trial_end(ended[-1])
    if end:
        callback.on_experiment_end(Results(path, list(ended), "loss", "min", meta))


def test_the_hparams_experiment_covers_every_run_after_resumes(tmp_path):
    """Found by a tester (hunt14): each run's end wrote its own experiment file and
    TensorBoard kept the first, whose domains held only the first run's trials."""
    path, ended = tmp_path / "exp", []
    one_run(path, {"00000": {"x": 0.5, "opt": "rmsprop"}}, ended)
    one_run(path, {"00001": {"x": 0.1, "opt": "adam"}}, ended)
    one_run(path, {"00002": {"x": 0.9, "opt": "sgd"}}, ended)
    logdir = path / "tensorboard"
    assert domains(hparams_experiment(logdir)) == {"x": (0.1, 0.9), "opt": ["adam", "rmsprop", "sgd"]}
    assert sorted(p.name for p in logdir.iterdir() if p.is_file()) == [
        "events.out.tfevents.0000000000.raytuner.experiment"]


def test_a_resume_killed_before_its_end_shows_every_trial(tmp_path):
    """The earlier run's experiment is gone once a run starts: TensorBoard builds the table
    from every trial's session start until the end writes it anew."""
    path, ended = tmp_path / "exp", []
    one_run(path, {"00000": {"x": 0.5, "opt": "rmsprop"}}, ended)
    one_run(path, {"00001": {"x": 0.1, "opt": "adam"}}, ended, end=False)
    assert domains(hparams_experiment(path / "tensorboard")) == {"x": (0.1, 0.5), "opt": ["adam", "rmsprop"]}


def test_experiment_files_an_earlier_raytuner_wrote_are_replaced(tmp_path):
    """An experiment logged before: one file per run's end, the first (a narrow one) shown."""
    from raytuner.tracking import tensorboard

    path, ended = tmp_path / "exp", []
    one_run(path, {"00000": {"x": 0.5, "opt": "rmsprop"}}, ended)
    logdir = path / "tensorboard"
    (logdir / tensorboard.EXPERIMENT_FILE).rename(logdir / "events.out.tfevents.1700000000.host.1.00000001.raytuner")
    one_run(path, {"00001": {"x": 0.1, "opt": "adam"}}, ended)
    assert domains(hparams_experiment(logdir)) == {"x": (0.1, 0.5), "opt": ["adam", "rmsprop"]}
    assert not list(logdir.glob("*.raytuner"))


def test_a_crash_before_the_old_files_go_leaves_the_new_experiment_shown(tmp_path, monkeypatch):
    """Killed after the new experiment is in place, before an earlier raytuner's files
    are removed: TensorBoard reads the new one first, and keeps it."""
    from raytuner.tracking import tensorboard

    path, ended = tmp_path / "exp", []
    one_run(path, {"00000": {"x": 0.5, "opt": "rmsprop"}}, ended)
    logdir = path / "tensorboard"
    legacy = logdir / "events.out.tfevents.1700000000.host.1.00000001.raytuner"
    (logdir / tensorboard.EXPERIMENT_FILE).rename(legacy)
    kept = legacy.read_bytes()
    one_run(path, {"00001": {"x": 0.1, "opt": "adam"}}, ended, end=False)
    legacy.write_bytes(kept)  # as if this run's start had not removed it either
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # the crash: nothing removed
    callback = tensorboard.TensorBoardCallback()
    callback.logdir = logdir
    callback.on_experiment_end(Results(path, list(ended), "loss", "min", {"name": "exp"}))
    monkeypatch.undo()
    assert legacy.exists()
    assert domains(hparams_experiment(logdir)) == {"x": (0.1, 0.5), "opt": ["adam", "rmsprop"]}
