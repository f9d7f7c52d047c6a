"""GPSearcher and OptunaSearcher with the Tuner on a real local Ray: under ASHA every trial
reaches the searcher as it ended (Optuna: COMPLETE or PRUNED with its last value), configs
are plain Python values, and an interrupted search resumes where it stopped."""

from __future__ import annotations

import pathlib
import pickle
import tempfile
import time

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner.search import GPSearcher, OptunaSearcher

from tests._helpers import InterruptAfter, fit_with_asha

pytestmark = pytest.mark.usefixtures("ray_cluster")

def test_gp_searcher_with_asha(storage):
    searcher = GPSearcher(n_startup=4, seed=0, n_restarts=0, n_candidates=300)
    results, _ = fit_with_asha(searcher, storage, 10)
    records = searcher.state()["records"]
    assert set(records) == {t.trial_id for t in results.trials}
    for trial in results.trials:
        record = records[trial.trial_id]
        assert record["end"] == trial.status.value.lower() and record["config"] == trial.config
        assert record["value"] == pytest.approx(-trial.metrics["score"])
        assert record["resource"] == trial.resource and record["max_resource"] == 9


def test_optuna_searcher_with_asha(storage):
    import optuna

    searcher = OptunaSearcher(seed=0)
    results, stopped = fit_with_asha(searcher, storage, 10)
    stopped = {t.trial_id for t in stopped}
    study = pickle.loads(searcher.state()["study"])[0]
    assert len(study.trials) == 10
    for trial, frozen in zip(results.trials, study.trials):  # asked in trial order
        assert frozen.params["x"] == trial.config["x"]
        assert frozen.value == pytest.approx(-trial.metrics["score"])
        if trial.trial_id in stopped:
            assert frozen.state == optuna.trial.TrialState.PRUNED
            assert max(frozen.intermediate_values) == trial.resource
        else:
            assert frozen.state == optuna.trial.TrialState.COMPLETE


def counting(config):
    """Six epochs; checkpoints every epoch; resumes where its checkpoint says."""
    start = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        start = int((restored / "epoch").read_text())
    for epoch in range(start + 1, 7):
        time.sleep(0.05)  # an epoch's work: at the Ctrl-C the trial is mid-run (what it reported is kept)
        out = pathlib.Path(tempfile.mkdtemp())
        (out / "epoch").write_text(str(epoch))
        rt.report({"loss": (config["x"] - 0.3) ** 2 + 1 / epoch, "epoch": epoch}, checkpoint=out)


@pytest.mark.parametrize("kind", ["gp", "optuna"])
def test_ctrl_c_then_resume_continues_the_same_search(storage, kind):
    def make():
        if kind == "gp":
            return GPSearcher(n_startup=3, seed=4, n_restarts=0, n_candidates=300)
        return OptunaSearcher(sampler=__import__("optuna").samplers.TPESampler(seed=4, n_startup_trials=3))

    space = {"x": rt.uniform(0, 1)}
    # One trial at a time, so the searcher sees results in the same order in both runs.
    first = rt.Tuner(counting, space=space, metric="loss", num_trials=6, max_concurrent=1, searcher=make(),
                     storage_path=storage, name="exp", callbacks=[InterruptAfter(26)], verbose=0,
                     tensorboard=False).fit()
    assert first.meta["status"] == "INTERRUPTED"
    assert TrialStatus.PENDING in {t.status for t in first.trials}

    results = rt.Tuner.resume(first.path, counting, verbose=0)
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 6
    straight = rt.Tuner(counting, space=space, metric="loss", num_trials=6, max_concurrent=1, searcher=make(),
                        storage_path=storage, verbose=0, tensorboard=False).fit()
    assert [t.config for t in results.trials] == [t.config for t in straight.trials]
