"""How a worker moves from one trial to the next when a scheduler ends or pauses a trial.

A STOP hands the worker its next trial at once (queued behind the stop); a trial the
scheduler promotes while its pause is still on the way goes out again only once the pause
is in, never twice at the same time. Both races are made to happen (and checked to have
happened), on real workers; tests/raytuner/test_lifecycle.py replays them event by event.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner.schedulers import Decision, Scheduler

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


class StopAt(Scheduler):
    """STOP every trial at ``resource`` without making the training loop wait for it, so
    the trial keeps streaming reports until the stop lands."""

    def __init__(self, resource):
        self._at = resource

    def on_result(self, trial_id, resource, value):
        return Decision.STOP if resource >= self._at else Decision.CONTINUE

    def decision_point(self, trial_id, resource):
        return math.inf


def streaming(config):
    for step in range(1, 200):
        time.sleep(0.002)
        rt.report({"loss": float(step), "pid": os.getpid()})


class PreviousOnRecord(rt.Callback):
    """As each trial starts, the status the trial before it has on record."""

    def __init__(self):
        self.path: Path | None = None
        self.previous: dict[str, str] = {}

    def on_experiment_start(self, path, meta):
        self.path = Path(path)

    def on_trial_start(self, trial_id, config):
        record = self.path / "trials" / f"{int(trial_id) - 1:05d}" / "trial.json"
        if record.is_file():
            self.previous[trial_id] = json.loads(record.read_text())["status"]


def test_a_stopped_trials_worker_runs_the_next_trial_after_it_ends(storage):
    starts = PreviousOnRecord()
    results = rt.Tuner(streaming, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=4, max_concurrent=1,
                       scheduler=StopAt(3), storage_path=storage, verbose=0, callbacks=[starts]).fit()

    assert [t.status for t in results.trials] == [TrialStatus.STOPPED] * 4
    histories = [results.history(t.trial_id) for t in results.trials]
    for history in histories:
        # Every report made before the stop landed is kept, in order, and none after it.
        assert list(history["iteration"]) == list(range(1, len(history) + 1))
        assert 3 <= len(history) < 199
    # Each next trial went to the worker while the trial before was still ending (on record
    # RUNNING: its end had not come back), queued behind its stop ...
    assert starts.previous == {"00001": "RUNNING", "00002": "RUNNING", "00003": "RUNNING"}
    # ... and ran on that one worker only after it.
    assert len({pid for h in histories for pid in h["pid"]}) == 1
    for before, after in zip(histories, histories[1:]):
        assert after["timestamp"].min() > before["timestamp"].max()  # never two trials at once


class PromoteWhilePausing(Scheduler):
    """PAUSE trial 00000 at resource 2 and promote it straight away, before its pause has
    been confirmed by its worker; say so in the trial's folder, where its run waits for it."""

    def __init__(self, trial_dir: Path):
        self._promote: list[str] = []
        self._trial_dir = trial_dir

    def on_result(self, trial_id, resource, value):
        if trial_id == "00000" and resource == 2 and not self._promote:
            self._promote.append(trial_id)
            return Decision.PAUSE
        return Decision.CONTINUE

    def choose_trial_to_resume(self):
        if not self._promote:
            return None
        (self._trial_dir / "promoted").touch()
        return self._promote.pop()


def pausable(config):
    checkpoint = rt.get_checkpoint()
    start = json.loads((checkpoint / "state.json").read_text())["epoch"] if checkpoint else 0
    began = time.time()
    try:
        for epoch in range(start + 1, 6):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
                rt.report({"loss": 1.0 / epoch, "epoch": epoch, "start": start}, checkpoint=folder)
    finally:
        if start == 0:  # the pause is confirmed only once the scheduler has promoted the trial
            promoted = rt.get_context().trial_dir / "promoted"
            wait_for(promoted.exists, "the scheduler to promote the pausing trial", interval_s=0.02)
        with open(rt.get_context().trial_dir / "runs.jsonl", "a") as log:
            log.write(json.dumps({"began": began, "ended": time.time()}) + "\n")


def test_a_trial_promoted_before_its_pause_is_confirmed_resumes_once_after_it(storage):
    # Two slots, one trial: the scheduler promotes the trial when the second worker is idle,
    # and the trial's first run ends only after that. With no warm worker left from an
    # earlier test, the Tuner spawns both workers at the start (a single warm one would
    # take the trial, and no second would ever come up to race the pause).
    rt.release_workers()
    scheduler = PromoteWhilePausing(storage / "promote" / "trials" / "00000")
    results = rt.Tuner(pausable, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=1, max_concurrent=2,
                       scheduler=scheduler, storage_path=storage, name="promote", verbose=0).fit()

    (trial,) = results.trials
    assert trial.status == TrialStatus.COMPLETED
    history = results.history(trial.trial_id)
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert list(history["start"]) == [0, 0, 2, 2, 2]  # resumed from the pause's checkpoint
    runs = [json.loads(line) for line in (trial.path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 and runs[1]["began"] >= runs[0]["ended"]  # one run at a time
