"""A real trial worker, under a searcher and a Results that need both, imports neither
pandas nor hyperopt (the unit test checks the imports; this one a running worker)."""

from __future__ import annotations

import sys

import pytest

import raytuner as rt

pytestmark = pytest.mark.usefixtures("ray_cluster")


def report_modules(config):
    loaded = {name: int(name in sys.modules) for name in ("pandas", "hyperopt")}
    rt.report({"loss": config["x"], **loaded})


def test_a_running_trial_worker_has_neither_pandas_nor_hyperopt(storage):
    rt.release_workers()  # fresh workers: an earlier test's trainable may have imported anything
    results = rt.Tuner(
        report_modules, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, max_concurrent=1,
        searcher=rt.HyperOptSearcher(n_startup=1, seed=0), storage_path=storage, verbose=0, tensorboard=False,
    ).fit()
    frame = results.dataframe()
    assert "hyperopt" in sys.modules and "pandas" in sys.modules  # the driver has both
    assert len(frame) == 2 and frame["pandas"].tolist() == [0, 0] and frame["hyperopt"].tolist() == [0, 0]
