"""benchmarks/search_sim.py: the Ray-free search-quality simulation that issue 4's figures rest on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import search_sim  # noqa: E402

R = search_sim.R


def depths(run) -> dict[str, int]:
    deepest: dict[str, int] = {}
    for row in run.rows:
        deepest[row["trial"]] = max(deepest.get(row["trial"], 0), row["epoch"])
    return deepest


def test_a_run_spends_the_epoch_budget_and_is_deterministic():
    run = search_sim.simulate("tpe/asha", 3, 3 * R)
    again = search_sim.simulate("tpe/asha", 3, 3 * R)
    assert len(run.rows) == 3 * R
    assert run.rows == again.rows
    # ASHA (r=1, eta=3) stops most trials at a rung, and each epoch is reported once.
    deepest = depths(run)
    assert sum(d in (1, 3, 9) for d in deepest.values()) > len(deepest) / 2
    assert sorted(r["epoch"] for r in run.rows if r["trial"] == "00000") == list(range(1, deepest["00000"] + 1))


def test_fifo_runs_every_trial_to_the_full_budget():
    run = search_sim.simulate("random/fifo", 0, 4 * R)
    # Two workers: the last two trials may be cut by the budget, never by a scheduler.
    assert sorted(depths(run).values())[2:] == [R] * (len(depths(run)) - 2)


def test_our_adapter_reproduces_ray_tunes_hyperoptsearch_run_for_run():
    pytest.importorskip("ray.tune.search.hyperopt")
    # Ray Tune feeds a stopped trial's last value ("last"), counts running trials towards
    # start-up (at 2 workers: one trial earlier than ours) and draws seeds from RandomState.
    for seed in (0, 1):
        ours = search_sim.simulate("tpe-last-n_startup=9-rayseeds/asha", seed, 5 * R)
        ray_tune = search_sim.simulate("raytune/asha", seed, 5 * R)
        assert ours.trials > search_sim.N_STARTUP + 5  # TPE, not only start-up, was compared
        assert ours.rows == ray_tune.rows
