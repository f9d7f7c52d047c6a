"""raytuner.keras on a real local Ray: reports, STOP, PAUSE and resume, a killed worker.

TensorFlow costs seconds to import in each worker process, so one experiment plays four
scripted trials (a scheduler that decides from a script) and the tests read its results.
"""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.history import read_history
from raytuner.schedulers import Decision, Scheduler

from tests._helpers import wait_for

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]

EPOCHS = 6
STEPS = 4  # batches per epoch
# What each trial does, by trial id: the scheduler's script and the trainable's own part.
PLANS = {
    "00000": "rename",  # runs to the end, reports renamed metrics
    "00001": "stop",  # stopped by the scheduler after epoch 2
    "00002": "pause",  # paused after epoch 3, resumed once the others are done
    "00003": "crash",  # its worker dies during epoch 4 of the first attempt; retried
}
SCRIPT = {"00001": {2: Decision.STOP}, "00002": {3: Decision.PAUSE}}


class ScriptedScheduler(Scheduler):
    """Decides from ``SCRIPT``; resumes paused trials once no new trial will start."""

    def __init__(self, script):
        self._script = {tid: dict(steps) for tid, steps in script.items()}
        self._paused: list[str] = []
        self._search_finished = False

    def on_result(self, trial_id, resource, value):
        decision = self._script.get(trial_id, {}).pop(resource, Decision.CONTINUE)
        if decision is Decision.PAUSE:
            self._paused.append(trial_id)
        return decision

    def decision_point(self, trial_id, resource):
        return min((r for r in self._script.get(trial_id, {}) if r > resource), default=math.inf)

    def on_search_finished(self):
        self._search_finished = True

    def choose_trial_to_resume(self):
        return self._paused.pop(0) if self._search_finished and self._paused else None


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x @ np.linspace(-1, 1, 6)[:, None] + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def _log(name, **record):
    """Append a line to a file in the trial's folder (the test reads it afterwards)."""
    with open(rt.get_context().trial_dir / name, "a") as f:
        f.write(json.dumps(record) + "\n")


def train(config):
    import keras

    plan = PLANS[rt.get_context().trial_id]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    initial_epoch = rt.keras.restore(model)
    _log("starts.jsonl", initial_epoch=initial_epoch, pid=os.getpid(),
         cuda=os.environ.get("CUDA_VISIBLE_DEVICES"))

    def on_epoch_begin(epoch, logs):
        _log("epochs.jsonl", epoch=epoch + 1)
        if plan == "crash" and epoch == 3 and initial_epoch == 0:
            # Die once the driver has taken in epoch 3: the row committing its checkpoint is written.
            results_file = rt.get_context().trial_dir / "results.jsonl"
            wait_for(lambda: any(row.get("checkpoint") == "checkpoint_000003" for row in read_history(results_file).rows),
                     "the row committing checkpoint_000003", timeout_s=120, interval_s=0.02)
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(epoch, logs):
        logs["optimizer_steps"] = int(model.optimizer.iterations)  # read by ReportCallback

    renamed = {"val_loss": "val_loss", "train_loss": "loss", "optimizer_steps": "optimizer_steps"}
    metrics = renamed if plan == "rename" else None
    model.fit(*_data(64, 0), validation_data=_data(32, 1), batch_size=64 // STEPS, epochs=EPOCHS,
              initial_epoch=initial_epoch, verbose=1 if plan == "rename" else 0,  # its progress bar: the log
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end),
                         # The crash must find the last epoch's checkpoint: every epoch, not "auto".
                         rt.keras.ReportCallback(metrics=metrics, checkpoint=True if plan == "crash" else "auto")])


def _lines(trial, name):
    return [json.loads(line) for line in (trial.path / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return rt.Tuner(train, space={"x": 0}, metric="val_loss", num_trials=len(PLANS), max_concurrent=2,
                    scheduler=ScriptedScheduler(SCRIPT), max_failures=1,
                    storage_path=tmp_path_factory.mktemp("keras"), verbose=0).fit()


def _history(results, plan):
    (trial_id,) = [tid for tid, p in PLANS.items() if p == plan]
    return results[trial_id], results.history(trial_id)


def test_reports_arrive_per_epoch_with_the_epoch_as_resource_and_renamed_metrics(results):
    trial, history = _history(results, "rename")
    assert trial.status == TrialStatus.COMPLETED
    assert list(history["iteration"]) == list(history["epoch"]) == list(range(1, EPOCHS + 1))
    assert {"val_loss", "train_loss", "epoch"} <= set(history.columns)
    assert "loss" not in history.columns
    assert list(history["optimizer_steps"]) == [STEPS * e for e in range(1, EPOCHS + 1)]
    assert trial.checkpoint is not None and (trial.checkpoint / "model.keras").is_file()
    model = rt.keras.load_model(trial.checkpoint)
    x, y = _data(32, 1)
    assert float(model.evaluate(x, y, verbose=0)) == pytest.approx(history["val_loss"].iloc[-1], rel=1e-4)


def test_keras_progress_output_lands_in_the_trials_log(results):
    trial, _ = _history(results, "rename")
    log = (trial.path / "log.txt").read_text()
    # Keras sees no terminal, so its progress bar prints one line per epoch.
    assert [f"Epoch {e}/{EPOCHS}" in log for e in range(1, EPOCHS + 1)] == [True] * EPOCHS
    assert log.count("val_loss: ") == EPOCHS


def test_stop_leaves_no_further_epoch(results):
    trial, history = _history(results, "stop")
    assert trial.status == TrialStatus.STOPPED
    assert list(history["epoch"]) == [1, 2]
    assert [e["epoch"] for e in _lines(trial, "epochs.jsonl")] == [1, 2], "an epoch ran after STOP"


def test_pause_then_resume_continues_the_curve_with_the_optimizer_state(results):
    trial, history = _history(results, "pause")
    _, uninterrupted = _history(results, "rename")
    assert trial.status == TrialStatus.COMPLETED
    assert [s["initial_epoch"] for s in _lines(trial, "starts.jsonl")] == [0, 3]
    assert list(history["epoch"]) == list(history["iteration"]) == list(range(1, EPOCHS + 1))
    # The restored optimizer counts on (a fresh one would restart at STEPS) ...
    assert list(history["optimizer_steps"]) == [STEPS * e for e in range(1, EPOCHS + 1)]
    # ... and the loss does not jump back up: the same seed and data as the uninterrupted
    # trial give the same first three epochs, and the resumed epochs stay close to it.
    np.testing.assert_allclose(history["loss"][:3], uninterrupted["train_loss"][:3], rtol=1e-5)
    assert history["loss"].iloc[3] < history["loss"].iloc[2]
    np.testing.assert_allclose(history["loss"][3:], uninterrupted["train_loss"][3:], rtol=0.1)


def test_a_killed_worker_is_retried_from_the_last_checkpoint(results):
    trial, history = _history(results, "crash")
    assert trial.status == TrialStatus.COMPLETED
    assert "died" in trial.error
    starts = _lines(trial, "starts.jsonl")
    assert [s["initial_epoch"] for s in starts] == [0, 3]
    assert starts[0]["pid"] != starts[1]["pid"]
    assert [e["epoch"] for e in _lines(trial, "epochs.jsonl")] == [1, 2, 3, 4, 4, 5, 6]
    assert list(history["epoch"]) == list(history["iteration"]) == list(range(1, EPOCHS + 1))
    assert list(history["optimizer_steps"]) == [STEPS * e for e in range(1, EPOCHS + 1)]
