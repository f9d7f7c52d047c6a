"""benchmarks/multi_objective.py and its problems (_mo_problems.py): the known fronts are
fronts, and each part of the script runs; without Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _mo_problems as mo  # noqa: E402
import _synthetic as syn  # noqa: E402

from raytuner._pareto import hypervolume  # noqa: E402
from raytuner.search import RandomSearcher  # noqa: E402


def random_values(spec, n=3000, seed=0):
    draws = RandomSearcher(spec.space(), seed=seed)
    draws.setup(None, n)
    return np.array([spec.values(draws.suggest(str(i))) for i in range(n)])


@pytest.mark.parametrize("name", ["zdt1", "dtlz2", "mixed"])
def test_the_known_front_bounds_every_config_and_its_hypervolume_is_right(name):
    spec = mo.problem(name)
    values = random_values(spec)
    # Random configs come near the front's hypervolume, never above it.
    assert hypervolume(values, spec.reference) < spec.front_hv
    if name == "dtlz2":  # on or outside the unit sphere
        assert np.all(np.linalg.norm(values, axis=1) >= 1 - 1e-12)
    else:  # on or above f2 = 1 - sqrt(f1)
        assert np.all(values[:, 1] >= 1 - np.sqrt(values[:, 0]) - 1e-12)


def test_the_fronts_hypervolume_is_the_integral():
    # A dense sample of f2 = 1 - sqrt(f1) covers 1.1 * 11 - 1/3 up to the gaps between points.
    x = np.linspace(0, 1, 20_001)
    dense = hypervolume(np.column_stack([x, 1 - np.sqrt(x)]), (1.1, 11.0))
    assert dense == pytest.approx(mo.problem("zdt1").front_hv, abs=1e-4)
    best = {"x": 0.25, "lr": 1e-2, "layers": 5, "act": "tanh"}  # g = 1
    assert mo.problem("mixed").values(best) == pytest.approx((0.25, 0.5))


def test_the_mlp_problem_is_the_table():
    spec = mo.problem("mlp-digits")
    config = {"lr": 1e-3, "width": 64, "alpha": 1e-4, "batch_size": 32}
    error, size = spec.values(config)
    assert size == pytest.approx((75 * 64 + 10) / 19_210) and 0 <= error <= 1
    assert 1.0 < spec.front_hv < 1.1 * 1.0


def test_the_synthetic_multi_fidelity_front_bounds_its_curves():
    spec = mo.mf_problem("synthetic")
    rng = np.random.default_rng(1)
    configs = syn.random_configs(2000)
    points = np.array([spec.report(c, int(rng.integers(1, 28)), 0, 0.0)[1] for c in configs])
    assert hypervolume(points, spec.reference) < spec.true_front_hv
    widths = points[:, 1] * 512
    floor = syn.minimum(mo.R) + 0.04 * (np.log2(widths) - 7) ** 2
    assert np.all(points[:, 0] >= floor - 1e-9)


@pytest.mark.parametrize("part, args, needle", [
    ("quality", ["--seeds", "1", "--trials", "12", "--problems", "zdt1", "--methods", "tpesearcher", "optuna",
                 "nsga2", "random"], "zdt1 (2 objectives"),
    ("asha", ["--seeds", "1", "--budget", "2", "--mf-problems", "mlp-digits"], "regret by the values seen"),
    ("latency", ["--history", "50", "--asks", "2"], "after 50 finished two-objective trials"),
])
def test_each_part_runs(part, args, needle):
    out = subprocess.run([sys.executable, str(BENCHMARKS / "multi_objective.py"), "--part", part, *args],
                         capture_output=True, text=True, check=True, timeout=240)
    assert needle in out.stdout and "nan" not in out.stdout
