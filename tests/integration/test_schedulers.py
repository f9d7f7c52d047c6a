"""Schedulers driving real trials on a local Ray: early stops end training at once, and
paused trials resume from their checkpoints with their report histories continuing."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner.schedulers import ASHAScheduler, Decision, HyperbandScheduler

pytestmark = pytest.mark.usefixtures("ray_cluster")

# Learning curves final + slope / epoch: some start well and end badly, so rankings change
# between rungs. The grid's order is the launch order.
FINAL = [0.4, 0.2, 0.8, 0.1, 0.6, 0.3, 0.9, 0.5, 0.7]
SLOPE = [1.4, 1.7, 0.9, 0.9, 1.1, 0.6, 1.7, 0.3, 0.0]
SPACE = {"k": rt.grid(list(range(9)))}


def curve(k: int, epoch: int) -> float:
    return FINAL[k] + SLOPE[k] / epoch


def no_checkpoint(config):
    for epoch in range(1, 10):
        rt.report({"loss": curve(config["k"], epoch), "epoch": epoch})


def checkpointed(config):
    """Resumes from its checkpoint; reports the epoch it (re)started from as ``start``.

    Epochs take 0.15 s so that a trial outlasts a worker's start-up: promotions need two
    trials at once, and trials go to workers as they come up.
    """
    checkpoint = rt.get_checkpoint()
    start = json.loads((checkpoint / "state.json").read_text())["epoch"] if checkpoint else 0
    for epoch in range(start + 1, 10):
        time.sleep(0.15)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
            rt.report({"loss": curve(config["k"], epoch), "epoch": epoch, "start": start}, checkpoint=folder)


def reports(results) -> dict[int, int]:
    return {t.config["k"]: len(results.history(t.trial_id)) for t in results.trials}


def test_stopping_asha_ends_the_expected_trials_at_their_rung(storage):
    # One trial at a time, so the order of results is the grid's: the expected stops come
    # from the scheduler itself fed the same stream, and from the rule by hand for two.
    results = rt.Tuner(no_checkpoint, space=SPACE, metric="loss", max_concurrent=1, storage_path=storage,
                       scheduler=ASHAScheduler(max_resource=9, reduction_factor=3), verbose=0).fit()

    reference = ASHAScheduler(max_resource=9, reduction_factor=3)
    expected = {}
    for k in range(9):
        epoch = 0
        while epoch < 9:
            epoch += 1
            if reference.on_result(str(k), epoch, curve(k, epoch)) is Decision.STOP:
                break
        expected[k] = epoch
    assert reports(results) == expected
    assert expected[0] == 9  # the first trial at every rung continues
    assert expected[1] == 1  # 1.9 at rung 1 is worse than the 1/3 quantile of {1.8}
    assert sorted(set(expected.values())) == [1, 3, 9]
    for trial in results.trials:
        history = results.history(trial.trial_id)
        assert list(history["epoch"]) == list(range(1, expected[trial.config["k"]] + 1))
        assert trial.resource == expected[trial.config["k"]]
        # A trial the scheduler ends at max_resource ran its full budget: COMPLETED.
        assert trial.status == (TrialStatus.COMPLETED if trial.resource == 9 else TrialStatus.STOPPED)


def _assert_continuous(results) -> list[float]:
    """Every history counts 1, 2, 3... with iteration == epoch; returns the resumed trials."""
    resumed = []
    for trial in results.trials:
        history = results.history(trial.trial_id)
        epochs = list(history["epoch"])
        assert epochs == list(range(1, len(epochs) + 1)), f"trial {trial.trial_id} restarted: {epochs}"
        assert list(history["iteration"]) == epochs
        starts = sorted(set(history["start"]))
        if starts != [0]:
            # Each run after a pause starts at the epoch its checkpoint holds, the rung.
            assert all(epochs[s] == s + 1 and history["start"][s] == s for s in starts if s)
            resumed.append(trial.config["k"])
        assert trial.status in (TrialStatus.STOPPED, TrialStatus.COMPLETED)
    return resumed


def test_promotion_asha_pauses_and_resumes_trials_from_their_checkpoints(storage):
    results = rt.Tuner(checkpointed, space=SPACE, metric="loss", max_concurrent=2, storage_path=storage,
                       scheduler=ASHAScheduler(max_resource=9, reduction_factor=3, variant="promotion"),
                       verbose=0).fit()
    resumed = _assert_continuous(results)
    assert resumed, "promotion ASHA must resume some paused trial"
    counts = reports(results)
    assert all(count in (1, 3, 9) for count in counts.values()), counts
    assert 9 in counts.values(), "some trial is promoted through every rung to max_resource"


def test_hyperband_runs_its_first_bracket_with_pauses_and_resumes(storage):
    # R=9, eta=3: the first bracket holds 9 trials at r=1; 3 resume to 3, 1 to 9. Ranks
    # are taken when the whole round has reported, so the outcome is the same whatever
    # order the two workers deliver results in: at epoch 1 the best are k=8, 7, 5 (0.7,
    # 0.8, 0.9), at epoch 3 k=5 (0.5 against 0.6 and 0.7).
    results = rt.Tuner(checkpointed, space=SPACE, metric="loss", max_concurrent=2, storage_path=storage,
                       scheduler=HyperbandScheduler(max_resource=9, reduction_factor=3), verbose=0).fit()
    resumed = _assert_continuous(results)
    counts = reports(results)
    assert counts == {5: 9, 7: 3, 8: 3, **{k: 1 for k in (0, 1, 2, 3, 4, 6)}}
    assert set(resumed) <= {5, 7, 8}
    assert resumed, "Hyperband must resume the round's winners from their checkpoints"
