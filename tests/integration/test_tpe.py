"""TPESearcher with the Tuner on a real local Ray: the default searcher, ASHA's rung results
reach the model, stopped trials are closed, and a stored search can be forked."""

from __future__ import annotations

import math

import numpy as np
import pytest

import raytuner as rt
from raytuner.search import GridSearcher, RandomSearcher, TPESearcher

from tests._helpers import fit_with_asha

pytestmark = pytest.mark.usefixtures("ray_cluster")

def one_shot(config):
    rt.report({"loss": (config["x"] - 1.3) ** 2})


def test_the_tuner_defaults_to_tpe_with_a_metric(storage):
    space = {"x": rt.uniform(-5, 5)}
    tuner = rt.Tuner(one_shot, space=space, metric="loss", num_trials=1, storage_path=storage, verbose=0)
    assert type(tuner._searcher) is TPESearcher
    # Without a metric there is nothing to learn from; a grid is enumerated.
    assert type(rt.Tuner(one_shot, space=space, num_trials=1, verbose=0)._searcher) is RandomSearcher
    grid_space = {"x": rt.grid([1.0, 2.0])}
    assert type(rt.Tuner(one_shot, space=grid_space, metric="loss", num_trials=1, verbose=0)._searcher) is GridSearcher


def test_tpe_under_asha_learns_from_rung_results(storage):
    searcher = TPESearcher(n_startup=4, seed=0)
    results, _ = fit_with_asha(searcher, storage, 16)

    state = searcher.state()
    assert sorted(state["ids"]) == sorted(t.trial_id for t in results.trials)
    assert 0 not in state["status"], "every trial was closed"
    # Each trial's reports are in the model at their resource levels, signed to minimize.
    rows = {trial_id: i for i, trial_id in enumerate(state["ids"])}
    for trial in results.trials:
        history = results.history(trial.trial_id)
        last = history.iloc[-1]
        value = state["levels"][float(trial.resource)][rows[trial.trial_id]]
        assert value == pytest.approx(-last["score"])
    # The model level: the highest with at least n_startup values.
    resource, values = searcher._model_level()
    assert np.count_nonzero(np.isfinite(values)) >= 4
    assert all(np.count_nonzero(np.isfinite(searcher._values_at(r, len(values)))) < 4
               for r in state["levels"] if r > resource)


def test_a_fork_with_an_added_parameter_keeps_the_stored_trials(storage):
    space = {"x": rt.uniform(-5, 5)}
    first = rt.Tuner(one_shot, space=space, metric="loss", num_trials=8, max_concurrent=2,
                     searcher=TPESearcher(seed=1), storage_path=storage, verbose=0).fit()
    observations = rt.load(first.path).observations()
    searcher = TPESearcher(n_startup=8, seed=2, warm_start=observations)
    with pytest.warns(UserWarning, match=r"fitted 8 of 8 .*'y' \(8\)"):
        tuner = rt.Tuner(one_shot, space={**space, "y": rt.uniform(0, 1)}, metric="loss", num_trials=4,
                         max_concurrent=2, searcher=searcher, storage_path=storage, verbose=0)
    results = tuner.fit()
    assert len(searcher.state()["ids"]) == 12
    assert all(math.isfinite(t.metrics["loss"]) and 0 <= t.config["y"] <= 1 for t in results.trials)
