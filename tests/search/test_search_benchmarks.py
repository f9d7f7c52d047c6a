"""What the search benchmarks share (benchmarks/_methods.py, _sweeps.py, _stats.py) and the
single-fidelity scripts built on it (tpe_quality.py, gp_optuna.py), without Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _methods  # noqa: E402
import _sweeps  # noqa: E402
from _problems import PROBLEMS, problem  # noqa: E402
from _stats import record  # noqa: E402

from raytuner.search import HyperOptSearcher, TPESearcher  # noqa: E402


def test_a_method_names_its_searcher_and_typed_options():
    assert _methods.parse("hyperopt-stopped_trials=last-n_startup=9-rayseeds") == (
        "hyperopt", {"stopped_trials": "last", "n_startup": 9}, ["rayseeds"])
    # Typed by the searcher's defaults: a bool from 0/1, a float from an int's digits.
    assert _methods.parse("tpesearcher-ordinal=0-gamma=1") == ("tpesearcher", {"ordinal": False, "gamma": 1.0}, [])
    assert _methods.parse("gp-xi=-0.5-pending=constant_liar")[1] == {"xi": -0.5, "pending": "constant_liar"}
    searcher = _methods.searcher("hyperopt-stopped_trials=last", 3, defaults={"n_startup": 9, "unknown_to_it": 1})
    assert isinstance(searcher, HyperOptSearcher)
    assert isinstance(_methods.searcher("tpesearcher", 0, problem("mixed").space), TPESearcher)


def test_a_method_that_names_nothing_known_is_refused():
    with pytest.raises(ValueError, match="unknown searcher 'tpe'; one of random, tpesearcher"):
        _methods.searcher("tpe", 0)
    with pytest.raises(ValueError, match="unknown option 'last'.*key=value"):
        _methods.searcher("hyperopt-last", 0)


def test_the_simulated_sweep_runs_every_trial_once_in_the_order_they_end():
    spec = problem("mixed")
    values, _ = _sweeps.simulate(_methods.searcher("random", 5, spec.space), spec.loss, 12, 1,
                                 np.random.default_rng(0), 0.3)
    # One worker: trials end in the order they were asked, which is RandomSearcher's order.
    draws = _methods.searcher("random", 5, problem("mixed").space)
    draws.setup(None, 12)
    assert values == [spec.loss(draws.suggest(f"{i:05d}")) for i in range(12)]
    # Several workers: the same trials, in the order the clock ends them.
    parallel, _ = _sweeps.simulate(_methods.searcher("random", 5, spec.space), spec.loss, 12, 3,
                                   np.random.default_rng(0), 0.3)
    assert sorted(parallel) == sorted(values) and parallel != values


def test_a_searcher_that_says_not_now_waits_for_the_next_result():
    spec = problem("branin")

    class OneAtATime:
        def __init__(self) -> None:
            self.inner, self.running, self.asks = _methods.searcher("random", 0, spec.space), 0, 0

        def setup(self, space, num_trials):
            self.inner.setup(space, num_trials)

        def suggest(self, trial_id):
            self.asks += 1
            if self.running:
                return None
            self.running += 1
            return self.inner.suggest(trial_id)

        def on_trial_complete(self, trial_id, outcome):
            self.running -= 1

    searcher = OneAtATime()
    values, _ = _sweeps.simulate(searcher, spec.loss, 5, 3, np.random.default_rng(0), 0.5)
    assert len(values) == 5 and searcher.asks > 5


def test_wins_ties_and_losses_count_seed_by_seed():
    assert record([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 5.0]) == "2/1/1"


def test_every_single_fidelity_problem_has_its_least_value_within_reach():
    for name in ("mixed", "conditional", "branin", "hartmann6", "synthetic", "cat8"):
        space, loss, minimum = problem(name)
        draws = _methods.searcher("random", 0, space)
        draws.setup(None, 200)
        assert min(loss(draws.suggest(str(i))) for i in range(200)) >= minimum - 1e-6, name
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        problem("nope")
    assert set(PROBLEMS) >= {"svc-cancer", "sgd-digits", "mlp-digits"}


def test_tpe_quality_prints_a_row_per_method_with_its_ratio_to_optuna(monkeypatch, capsys):
    import tpe_quality

    monkeypatch.setattr(sys, "argv", ["tpe_quality.py", "--seeds", "2", "--trials", "12", "--problems", "mixed",
                                      "--methods", "tpesearcher", "optuna", "random"])
    tpe_quality.main()
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert set(rows) == {"tpesearcher", "optuna", "random"}
    assert "x 1.000 [1.00, 1.00]  0/2/0" in rows["optuna"] and rows["random"].endswith("ms")


def test_gp_optuna_prints_regrets_at_every_tenth_trial(monkeypatch, capsys):
    import gp_optuna

    monkeypatch.setattr(sys, "argv", ["gp_optuna.py", "--seeds", "2", "--trials", "20", "--problems", "branin",
                                      "--methods", "random", "tpesearcher"])
    gp_optuna.main()
    out = capsys.readouterr().out
    assert "@10" in out and "@20" in out
    assert [line.split()[0] for line in out.splitlines()[3:]] == ["random", "tpesearcher"]
