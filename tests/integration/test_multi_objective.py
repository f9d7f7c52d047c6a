"""A two-objective sweep end to end on local Ray: TPESearcher under ASHA (stopping and
promotion), Ctrl-C, resume, and a Pareto front equal to the brute-force non-dominated set
of the trials' final values; the CLI, report and observations of the same folder."""

from __future__ import annotations

import json
import math
import pathlib
import tempfile

import pytest

import raytuner as rt
from raytuner import TrialStatus, cli
from raytuner.schedulers import ASHAScheduler
from raytuner.search import TPESearcher

from tests._helpers import InterruptAfter

pytestmark = pytest.mark.usefixtures("ray_cluster")


def two_objectives(config):
    """A trade-off: a wider model learns to a lower error but costs more parameters (a
    constant reported each epoch). Checkpoints every epoch; resumes where it stopped."""
    start = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        start = int((restored / "epoch").read_text())
    width = config["width"]
    for epoch in range(start + 1, 10):
        out = pathlib.Path(tempfile.mkdtemp())
        (out / "epoch").write_text(str(epoch))
        error = (1.0 / width + 0.2 * (config["lr"] - 0.3) ** 2) * (1 + 2.0 / epoch)
        rt.report({"error": error, "params": 100.0 * width, "epoch": epoch}, checkpoint=out)


def _dominates(a, b):
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


@pytest.mark.parametrize("variant", ["stopping", "promotion"])
def test_a_two_objective_sweep_survives_ctrl_c_and_its_front_is_the_non_dominated_set(storage, variant, capsys):
    space = {"width": rt.randint(1, 16), "lr": rt.uniform(0, 1)}
    kwargs = dict(space=space, metric=["error", "params"], mode="min", num_trials=14, max_concurrent=2,
                  searcher=TPESearcher(seed=7, n_startup=6), tensorboard=False, verbose=0, storage_path=storage,
                  scheduler=ASHAScheduler(max_resource=9, reduction_factor=3, variant=variant))
    first = rt.Tuner(two_objectives, name=f"mo_{variant}", callbacks=[InterruptAfter(25)], **kwargs).fit()
    assert first.meta["status"] == "INTERRUPTED" and first.meta["metric"] == ["error", "params"]
    results = rt.Tuner.resume(first.path, two_objectives)
    assert results.meta["status"] == "COMPLETED" and len(results.trials) == 14
    assert all(t.status.is_finished() for t in results.trials)
    stopped = [t for t in results.trials if t.status == TrialStatus.STOPPED]
    assert stopped, "ASHA ranked the trials by Pareto order and stopped some"
    # The front: the brute-force non-dominated set of the final values.
    final = {t.trial_id: (t.metrics["error"], t.metrics["params"]) for t in results.trials
             if t.status != TrialStatus.FAILED and all(math.isfinite(v) for v in (t.metrics["error"], t.metrics["params"]))}
    expected = {i for i, p in final.items() if not any(_dominates(q, p) for j, q in final.items() if j != i)}
    front = results.pareto_front()
    assert {t.trial_id for t in front} == expected
    assert {t.trial_id for t in rt.load(first.path).pareto_front()} == expected  # the same, read from the folder
    for trial in results.trials:  # one trajectory each, every objective in every row
        history = results.history(trial.trial_id)
        assert list(history["iteration"]) == list(range(1, len(history) + 1))
        assert history[["error", "params"]].notna().all().all()
    observations = results.observations()
    assert all(isinstance(outcome.value, tuple) and len(outcome.value) == 2 for _, outcome in observations)
    with pytest.raises(rt.ConfigError, match="pareto_front"):
        results.best
    capsys.readouterr()
    assert cli.main(["best", str(first.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [entry["trial_id"] for entry in printed] == [t.trial_id for t in front]
    pytest.importorskip("plotly")
    assert "Pareto front" in results.report().read_text()
