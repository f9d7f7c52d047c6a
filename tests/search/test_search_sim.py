"""benchmarks/search_sim.py: the Ray-free search-quality simulation that issue 4's figures rest on."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
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
    run = search_sim.simulate("hyperopt/asha", 3, 3 * R)
    again = search_sim.simulate("hyperopt/asha", 3, 3 * R)
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
        ours = search_sim.simulate("hyperopt-stopped_trials=last-n_startup=9-rayseeds/asha", seed, 5 * R)
        ray_tune = search_sim.simulate("raytune/asha", seed, 5 * R)
        assert ours.trials > search_sim.N_STARTUP + 5  # TPE, not only start-up, was compared
        assert ours.rows == ray_tune.rows


def runs_of_reports(run) -> list[tuple[str, int]]:
    """Consecutive reports of the same trial, as (trial, count)."""
    out: list[tuple[str, int]] = []
    for row in run.rows:
        if out and out[-1][0] == row["trial"]:
            out[-1] = (row["trial"], out[-1][1] + 1)
        else:
            out.append((row["trial"], 1))
    return out


def test_serial_order_reports_whole_trials_in_start_order():
    # What Ray Tune does on local Ray with millisecond epochs: one trial reports all its
    # epochs, then the next starts reporting.
    run = search_sim.simulate("random/asha", 0, 5 * R, order="serial")
    trials = [trial for trial, _ in runs_of_reports(run)]
    assert trials == sorted(set(trials))
    assert max(depths(run).values()) == R


def test_rungs_order_reports_up_to_the_next_rung_at_once():
    # What raytuner's workers do: reports stream up to the scheduler's next decision point.
    run = search_sim.simulate("random/asha", 0, 5 * R, order="rungs")
    ends = {1, 3, 9, R}
    reached: dict[str, int] = {}
    for trial, count in runs_of_reports(run)[:-1]:  # the last one may be cut by the budget
        reached[trial] = reached.get(trial, 0) + count
        assert reached[trial] in ends or reached[trial] == depths(run)[trial]
    assert len(runs_of_reports(run)) > len(depths(run))  # trials do interleave


def test_close_late_suggests_before_the_freed_slots_trial_is_closed(monkeypatch):
    calls: list[str] = []
    suggest, complete = search_sim._Ours.suggest, search_sim._Ours.complete
    monkeypatch.setattr(search_sim._Ours, "suggest", lambda self, t: calls.append("suggest") or suggest(self, t))
    monkeypatch.setattr(search_sim._Ours, "complete", lambda self, *a: calls.append("complete") or complete(self, *a))
    search_sim.simulate("random/asha", 0, 2 * R, close_late=True)
    assert calls[:4] == ["suggest", "suggest", "suggest", "complete"]
    calls.clear()
    search_sim.simulate("random/asha", 0, 2 * R)
    assert calls[:4] == ["suggest", "suggest", "complete", "suggest"]


def test_the_mlp_table_problem_replays_the_tables_curves():
    import mlp_curves

    run = search_sim.simulate("random/asha", 0, 3 * R, problem_name="mlp-digits")
    assert len(run.rows) == 3 * R
    assert run.rows == search_sim.simulate("random/asha", 0, 3 * R, problem_name="mlp-digits").rows
    val, test = mlp_curves.curves("logloss")
    values = {(round(v, 6), round(t, 6)) for v, t in zip(val.ravel(), test.ravel())}
    assert all((round(r["loss"], 6), round(r["true_loss"], 6)) in values for r in run.rows)


def test_optunas_successive_halving_pruner_stops_trials_at_its_rungs():
    pytest.importorskip("optuna")
    run = search_sim.simulate("optuna/sha", 0, 4 * R, problem_name="mlp-digits")
    assert len(run.rows) == 4 * R
    deepest = depths(run)
    assert sum(d in (1, 3, 9) for d in deepest.values()) > len(deepest) / 2
    with pytest.raises(ValueError, match="optuna searcher"):
        search_sim.simulate("random/sha", 0, R, problem_name="mlp-digits")


def test_counting_ones_estimates_converge_on_the_known_function():
    import _counting_ones as ones

    best = {**{f"c{i}": 1 for i in range(ones.N_CAT)}, **{f"x{j}": 1.0 for j in range(ones.N_CONT)}}
    assert ones.report(best, 1, 0) == (-1.0, -1.0) == (ones.MINIMUM, ones.MINIMUM)  # p = 1: no noise
    half = {**{f"c{i}": i % 2 for i in range(ones.N_CAT)}, **{f"x{j}": 0.5 for j in range(ones.N_CONT)}}
    assert ones.true_loss(half) == -0.5
    # The reports of one config are estimates from growing prefixes of one sample stream:
    # their error has sd sqrt(N_cont p (1 - p) / n) / 16 for n samples a parameter: 0.0170
    # at epoch 1 (n = 27), 0.0033 at epoch 27 (n = 729).
    errors = np.array([[ones.report(half, epoch, seed)[0] + 0.5 for epoch in (1, R)] for seed in range(400)])
    for column, n in ((0, 27), (1, 27 * R)):
        assert np.std(errors[:, column]) == pytest.approx(math.sqrt(8 * 0.25 / n) / 16, rel=0.15)
    assert abs(np.mean(errors[:, 1])) < 0.001  # unbiased
    assert ones.report(half, 9, 5) == ones.report(dict(half), 9, 5) != ones.report(half, 9, 6)
    hits = [round(-ones.report(half, e, 3)[0] * 16 - 4, 9) * 27 * e for e in range(1, R + 1)]
    assert all(b >= a for a, b in zip(hits, hits[1:]))  # cumulative counts never fall


def test_counting_ones_runs_under_asha_with_regret_against_its_optimum():
    run = search_sim.simulate("tpesearcher/asha", 0, 3 * R, problem_name="counting-ones")
    assert len(run.rows) == 3 * R
    spec = search_sim.problem("counting-ones")
    assert spec.minimum == -1.0 and all(row["true_loss"] >= -1.0 for row in run.rows)


def test_the_synthetic_problems_least_loss_is_below_every_config_tried():
    import _synthetic as syn

    least = syn.minimum()
    assert abs(least - 0.2175) < 1e-4
    configs = syn.random_configs(2000, seed=1)
    assert min(syn.true_loss(c, e) for c in configs for e in (1, 9, R)) > least
    assert syn.true_loss({**syn.OPTIMUM, "lr": 10**-2.1448}, R) == pytest.approx(least, abs=1e-6)


def test_median_ratio_with_its_bootstrap_interval():
    from _stats import median_ratio

    ref = np.arange(1.0, 101.0)
    assert median_ratio(ref / 2, ref) == pytest.approx((0.5, 0.5, 0.5))  # every resample: 0.5
    rng = np.random.default_rng(0)
    ratio, low, high = median_ratio(rng.uniform(0, 1, 100), rng.uniform(0, 1, 100))
    assert low < ratio < high and low < 1.0 < high  # same distribution: 1 inside the interval
    assert math.isnan(median_ratio([1.0, 2.0, 3.0], [0.0, 0.0, 1.0])[0])  # undefined, not inf
