"""Checkpoints overtaken on the worker, on a real local Ray through the Tuner.

With ``checkpoints_to_keep=1``, a checkpoint whose flush to disk has not started when a
newer one of the same trial is staged is dropped: its report's row names no checkpoint.
The disk is made slow deterministically from inside the trainable (:func:`held_disk`): the
flush of its first checkpoint waits until a chosen report is queued, so the checkpoints in
between are overtaken every time. What must hold: the newest checkpoint is always stored
and kept, the one a scheduler decision waits on too, and a restarted trial gets it from
``rt.get_checkpoint()``. And on a fast disk, a trial that checkpoints every few
milliseconds has at most one checkpoint stored per ``checkpoint_interval_s`` (besides its
first and last), and still one in between: the throttle starves nothing.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage import trial_files
from raytuner._worker.outbox import Outbox
from raytuner._worker.protocol import Report
from raytuner.schedulers import ASHAScheduler

pytestmark = pytest.mark.usefixtures("ray_cluster")


@contextmanager
def held_disk(release_when: Callable[[Report], bool]) -> Iterator[threading.Event]:
    """Inside a trainable: the worker's flushes of checkpoints into place wait until a report
    for which ``release_when`` is true has been queued for the driver, as on a disk slower
    than training. Yields an event set when the first flush has started (from then on that
    checkpoint can no longer be dropped)."""
    storing, disk = threading.Event(), threading.Event()
    settle, send = trial_files.settle, Outbox.send

    def held_settle(staged: Path, target: Path, *checked) -> None:
        storing.set()
        assert disk.wait(60), "the report that releases the disk never came"
        settle(staged, target, *checked)

    def watched_send(outbox: Outbox, report: Report, staged=None) -> None:
        send(outbox, report, staged)
        if release_when(report):
            disk.set()

    trial_files.settle, Outbox.send = held_settle, watched_send
    try:
        yield storing
    finally:
        disk.set()
        trial_files.settle, Outbox.send = settle, send


def report_steps(first: int, last: int, storing: threading.Event, **metrics) -> None:
    for step in range(first, last + 1):
        folder = Path(tempfile.mkdtemp())
        (folder / "state.json").write_text(json.dumps({"step": step}))
        rt.report({"step": step, **metrics}, checkpoint=folder)
        if step == first:
            assert storing.wait(60)


def checkpoints_named(results, trial_id: str) -> list[str | None]:
    history = results.history(trial_id)
    return [name if isinstance(name, str) else None for name in history["checkpoint"]]


def dies_after_five_back_to_back(config):
    restored = rt.get_checkpoint()
    if restored is not None:  # the retry: say which checkpoint it got
        rt.report({"loss": 0.0, "step": 6, "restored": json.loads((restored / "state.json").read_text())["step"]})
        return
    with held_disk(lambda report: report.iteration == 5) as storing:
        report_steps(1, 5, storing, loss=1.0)
    raise RuntimeError("lost after its fifth report")


def test_overtaken_checkpoints_are_dropped_and_a_retry_restarts_from_the_newest(storage):
    results = rt.Tuner(dies_after_five_back_to_back, space={"x": 1}, metric="loss", max_failures=1,
                       checkpoints_to_keep=1, storage_path=storage, verbose=0).fit()
    (trial,) = results.trials
    assert trial.status == TrialStatus.COMPLETED and "lost after its fifth report" in trial.error
    history = results.history(trial.trial_id)
    assert list(history["iteration"]) == [1, 2, 3, 4, 5, 6]  # every report has its row, in order
    # 1 was being flushed when 2 came; 3 overtook 2, 4 overtook 3, 5 overtook 4.
    assert checkpoints_named(results, trial.trial_id) == [
        "checkpoint_000001", None, None, None, "checkpoint_000005", None]
    assert history["restored"].iloc[-1] == 5  # the retry got the newest from rt.get_checkpoint()
    assert trial.checkpoint is not None and json.loads((trial.checkpoint / "state.json").read_text())["step"] == 5
    # Only the kept checkpoint is on disk: 1 was pruned once 5 committed, 2-4 never stored.
    assert sorted(p.name for p in trial.checkpoint.parent.iterdir() if "checkpoint" in p.name) == ["checkpoint_000005"]


def pauses_at_four(config):
    restored = rt.get_checkpoint()
    start = json.loads((restored / "state.json").read_text())["step"] if restored else 0
    with held_disk(lambda report: report.awaits_decision) as storing:
        report_steps(start + 1, 8, storing, loss=config["x"], start=start)


def test_a_report_that_waits_for_a_pause_keeps_its_checkpoint(storage):
    # One trial at a time. Promotion ASHA, rungs 4 and 8: trial 0 (the better) pauses at 4,
    # trial 1 pauses behind it, trial 0 is promoted and resumes from its checkpoint at 4.
    results = rt.Tuner(pauses_at_four, space={"x": rt.grid([0.1, 0.2])}, metric="loss", max_concurrent=1,
                       checkpoints_to_keep=1, storage_path=storage, verbose=0,
                       scheduler=ASHAScheduler(min_resource=4, max_resource=8, reduction_factor=2,
                                               variant="promotion")).fit()
    better, worse = sorted(results.trials, key=lambda t: t.config["x"])
    history = results.history(better.trial_id)
    assert list(history["step"]) == list(range(1, 9))
    assert list(history["start"]) == [0] * 4 + [4] * 4  # the promoted run started from the rung's checkpoint
    assert checkpoints_named(results, better.trial_id) == [
        "checkpoint_000001", None, None, "checkpoint_000004", "checkpoint_000005", None, None, "checkpoint_000008"]
    assert better.status == TrialStatus.COMPLETED
    assert json.loads((better.checkpoint / "state.json").read_text())["step"] == 8
    assert worse.status == TrialStatus.STOPPED
    assert checkpoints_named(results, worse.trial_id) == ["checkpoint_000001", None, None, "checkpoint_000004"]
    assert json.loads((worse.checkpoint / "state.json").read_text())["step"] == 4


def checkpoints_as_fast_as_it_can(config):
    start, step = time.monotonic(), 0
    while time.monotonic() - start < config["seconds"]:  # checkpoints as fast as it can
        step += 1
        folder = Path(tempfile.mkdtemp())
        (folder / "state.json").write_text(json.dumps({"step": step}))
        rt.report({"loss": 1.0, "step": step}, checkpoint=folder)


def stored_checkpoints(storage, interval, seconds):
    """The checkpoints a trial checkpointing as fast as it can for ``seconds`` stored, and
    the span of its reports."""
    results = rt.Tuner(checkpoints_as_fast_as_it_can, space={"seconds": seconds}, metric="loss",
                       checkpoints_to_keep=1, checkpoint_interval_s=interval, storage_path=storage, verbose=0).fit()
    (trial,) = results.trials
    history = results.history(trial.trial_id)
    named = checkpoints_named(results, trial.trial_id)
    steps = len(named)
    assert list(history["step"]) == list(range(1, steps + 1)) and steps > 10  # every report has its row
    assert named[0] == "checkpoint_000001"  # nothing stored before: at once
    assert named[-1] == f"checkpoint_{steps:06d}"  # the trial's end stores the newest at once
    assert json.loads((trial.checkpoint / "state.json").read_text())["step"] == steps
    span = history["time_total_s"].iloc[-1] - history["time_total_s"].iloc[0]
    return [n for n in named if n is not None], span


def test_a_trial_checkpointing_as_fast_as_it_can_stores_about_one_per_interval(storage):
    stored, span = stored_checkpoints(storage, 1.0, seconds=3.0)
    # The first, at most one per interval in between (none starved: at least one), the last.
    assert 3 <= len(stored) <= 2 + math.ceil(span / 1.0)


def test_the_tuners_interval_reaches_the_worker(storage):
    stored, span = stored_checkpoints(storage, 10.0, seconds=1.0)  # longer than the trial
    assert span < 10.0 and len(stored) == 2  # the first and the last only
