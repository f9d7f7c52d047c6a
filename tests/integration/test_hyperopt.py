"""HyperOptSearcher with the Tuner on a real local Ray: TPE learns, values are plain Python,
scheduler-stopped trials reach TPE by the chosen policy, and a search can be continued or
forked from a stored experiment through ``Results.observations()``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner.schedulers import ASHAScheduler
from raytuner.search import HyperOptSearcher, Outcome, RandomSearcher, TrialEnd

from tests._helpers import MIXED, curve, fit_with_asha

pytestmark = pytest.mark.usefixtures("ray_cluster")

QUADRATIC = {"x": rt.uniform(-5, 5), "y": rt.uniform(-5, 5)}


def quadratic(config) -> float:
    return (config["x"] - 1.3) ** 2 + (config["y"] + 0.7) ** 2 / 10


def one_shot(config):
    rt.report({"loss": quadratic(config)})


def test_tpe_learns_on_a_quadratic(storage):
    # TPE's proposals concentrate near the optimum once its startup ends. Random search's
    # median loss on this space is known exactly enough from 20,000 draws (no Ray needed).
    # Measured on 60 simulated seeds at 2 trials at a time: the pooled median over 3 seeds
    # is at most 0.6 of random's in every triple; asserted with margin: 0.75.
    budget, startup = 30, 6
    late = []
    for seed in range(3):
        searcher = HyperOptSearcher(n_startup=startup, seed=seed)
        results = rt.Tuner(one_shot, space=QUADRATIC, metric="loss", num_trials=budget, max_concurrent=2,
                           searcher=searcher, storage_path=storage, verbose=0).fit()
        assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * budget
        late += [t.metrics["loss"] for t in results.trials[startup:]]
    draws = RandomSearcher(QUADRATIC, seed=123)
    draws.setup(None, 20_000)
    random_median = np.median([quadratic(draws.suggest(str(i))) for i in range(20_000)])
    assert np.median(late) < 0.75 * random_median


def test_plain_values_stopped_trials_and_observations(storage):
    searcher = HyperOptSearcher(n_startup=4, seed=0)
    # Configs reach the trainable as plain Python values (checked there), integers as int.
    results, stopped = fit_with_asha(searcher, storage, 12)
    assert all(t.config["units"] % 16 == 0 and 1 <= t.config["layers"] <= 3 for t in results.trials)

    # Every trial reached the searcher once, as it ended: value signed to minimize, the
    # resource it reached and the scheduler's max_resource; nothing stays pending.
    records = searcher.state()["records"]
    assert set(records) == {t.trial_id for t in results.trials}
    for trial in results.trials:
        record = records[trial.trial_id]
        assert record["end"] == trial.status.value.lower()
        assert record["value"] == pytest.approx(-trial.metrics["score"])
        assert record["resource"] == trial.resource and record["max_resource"] == 9

    # The same records under each policy: what TPE is given for the stopped trials
    # (``_losses`` is exactly the loss table TPE is built from).
    full = {t.trial_id: -t.metrics["score"] for t in results.trials if t.resource == 9}
    tids = {trial_id: record["tid"] for trial_id, record in records.items()}
    views = {}
    for policy in ("penalize", "last", "ignore"):
        replay = HyperOptSearcher(stopped_trials=policy)
        replay.restore(searcher.state())
        views[policy] = replay._losses()
    for view in views.values():
        assert {trial_id: view[tids[trial_id]] for trial_id in full} == pytest.approx(full)
    assert all(tids[t.trial_id] not in views["ignore"] for t in stopped)
    assert all(views["last"][tids[t.trial_id]] == pytest.approx(-t.metrics["score"]) for t in stopped)
    penalized = [views["penalize"][tids[t.trial_id]] for t in stopped]
    assert min(penalized) > max(full.values()), "a low-fidelity loss must rank behind every full-budget one"

    # observations(): the same outcomes, read back from storage.
    loaded = rt.load(results.path)
    observations = loaded.observations()
    assert len(observations) == 12
    by_config = {repr(sorted(config.items())): outcome for config, outcome in observations}
    for trial in results.trials:
        outcome = by_config[repr(sorted(trial.config.items()))]
        end = TrialEnd.COMPLETED if trial.status == TrialStatus.COMPLETED else TrialEnd.STOPPED
        assert outcome == Outcome(end, -trial.metrics["score"], trial.resource, 9)


def test_warm_start_continues_a_stored_search(storage):
    first = rt.Tuner(curve, space=MIXED, metric="score", mode="max", num_trials=8, max_concurrent=2,
                     searcher=HyperOptSearcher(n_startup=8, seed=1), name="first",
                     scheduler=ASHAScheduler(max_resource=9), storage_path=storage, verbose=0).fit()
    observations = rt.load(storage / "first").observations()
    assert len(observations) == 8

    # Continue: the stored trials count towards n_startup, so TPE proposes from the start.
    searcher = HyperOptSearcher(n_startup=8, seed=2, warm_start=observations)
    results = rt.Tuner(curve, space=MIXED, metric="score", mode="max", num_trials=4, max_concurrent=2,
                       searcher=searcher, scheduler=ASHAScheduler(max_resource=9),
                       storage_path=storage, verbose=0).fit()
    records = searcher.state()["records"]
    warm = [records[f"warm_start[{i}]"] for i in range(8)]
    assert [(r["value"], r["resource"]) for r in warm] == [(o.value, o.resource) for _, o in observations]
    assert len(results.trials) == 4 and all(records[t.trial_id]["end"] != "pending" for t in results.trials)
    assert first.path != results.path


def test_forked_search_with_a_narrower_space_keeps_what_still_fits(storage):
    first = rt.Tuner(one_shot, space=QUADRATIC, metric="loss", num_trials=10, max_concurrent=2,
                     searcher=HyperOptSearcher(seed=3), storage_path=storage, verbose=0).fit()
    observations = rt.load(first.path).observations()
    outside = [i for i, (config, _) in enumerate(observations) if config["x"] < 0]
    assert 0 < len(outside) < len(observations)

    narrow = {"x": rt.uniform(0, 5), "y": rt.uniform(-5, 5)}
    searcher = HyperOptSearcher(n_startup=2, seed=4, warm_start=observations)
    # An x outside [0, 5] is dropped for x only: the trial still informs y.
    message = f"fitted {len(observations)} of {len(observations)} .*outside.*'x' \\({len(outside)}\\)"
    with pytest.warns(UserWarning, match=message):
        tuner = rt.Tuner(one_shot, space=narrow, metric="loss", num_trials=4, max_concurrent=2,
                         searcher=searcher, storage_path=storage, verbose=0)
    results = tuner.fit()
    records = searcher.state()["records"]
    warm = [records[f"warm_start[{i}]"] for i in range(len(observations))]
    assert [r["value"] for r in warm] == [outcome.value for _, outcome in observations]
    assert [sorted(r["vals"]) for r in warm] == [["y"] if i in outside else ["x", "y"]
                                                 for i in range(len(observations))]
    assert all(0 <= t.config["x"] <= 5 and math.isfinite(t.metrics["loss"]) for t in results.trials)
