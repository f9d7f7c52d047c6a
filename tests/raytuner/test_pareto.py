"""raytuner/_pareto.py: known answers, exact counting, and Optuna as a differential oracle."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from raytuner import _pareto as pareto
from raytuner.errors import ConfigError


def random_points(rng: np.random.Generator, n: int, k: int, grid: int | None = None) -> np.ndarray:
    if grid is None:
        return rng.random((n, k))
    return rng.integers(0, grid, size=(n, k)).astype(float)


def counted_hypervolume(points: np.ndarray, reference: np.ndarray) -> int:
    """HV of integer points with an integer reference, by counting the unit cells [c, c + 1]^k
    that some point dominates (c >= p in every objective)."""
    cells = itertools.product(*(range(int(r)) for r in reference))
    return sum(bool(np.any(np.all(points <= np.array(c), axis=1))) for c in cells)


def brute_ranks(points: np.ndarray) -> list[int]:
    def dominated(i: int, j: int) -> bool:  # j dominates i
        return bool(np.all(points[j] <= points[i]) and np.any(points[j] < points[i]))

    ranks = [-1] * len(points)
    rank = 0
    while -1 in ranks:
        left = [i for i in range(len(points)) if ranks[i] == -1]
        front = [i for i in left if not any(dominated(i, j) for j in left if j != i)]
        for i in front:
            ranks[i] = rank
        rank += 1
    return ranks


# -- known answers -------------------------------------------------------------------------


def test_ranks_of_a_hand_computed_set():
    points = [(1, 5), (2, 3), (3, 4), (4, 1), (2, 3), (5, 5), (3, 2)]
    # (3, 4) is dominated by (2, 3) and (3, 2); (5, 5) by (3, 4); equal points share a rank.
    assert pareto.nondominated_ranks(points).tolist() == [0, 0, 1, 0, 0, 2, 0]
    assert pareto.pareto_front(points).tolist() == [0, 1, 3, 4, 6]


def test_ranks_with_one_objective_are_dense_ranks_of_the_values():
    assert pareto.nondominated_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [2, 0, 2, 1]


def test_nan_is_the_worst_value_of_its_objective():
    points = [(np.nan, 0.0), (1.0, 1.0), (2.0, 0.5)]
    # (nan, 0) is +inf in the first objective, best in the second: on the front.
    assert pareto.nondominated_ranks(points).tolist() == [0, 0, 0]
    assert pareto.nondominated_ranks([(np.nan, 1.0), (1.0, 1.0)]).tolist() == [1, 0]
    assert pareto.dominates((1.0, 1.0), (np.nan, 1.0))
    assert not pareto.dominates((1.0, 1.0), (1.0, 1.0))


def test_hypervolume_of_hand_computed_sets():
    # A staircase: strips of width 1 and heights 1, 2 and 3.
    assert pareto.hypervolume([(1, 3), (2, 2), (3, 1)], [4, 4]) == 6.0
    # Dominated points, duplicates and points beyond the reference add nothing.
    assert pareto.hypervolume([(1, 3), (2, 2), (3, 1), (3, 3), (2, 2), (5, 0), (0, 4)], [4, 4]) == 6.0
    # Two boxes of volume 4 in 3-D that share a box of volume 2.
    assert pareto.hypervolume([(0, 0, 1), (0, 1, 0)], [2, 2, 2]) == 6.0
    assert pareto.hypervolume([(1, 1, 1, 1)], [3, 2, 2, 2]) == 2.0
    assert pareto.hypervolume([], [1, 1]) == 0.0
    assert pareto.hypervolume([(np.nan, 0.0)], [1, 1]) == 0.0


def test_contributions_of_a_hand_computed_set():
    points = [(1, 3), (2, 2), (3, 1), (3, 3), (2, 2)]
    # The two equal points cover each other's box; the dominated one covers nothing alone.
    assert pareto.hypervolume_contributions(points, [4, 4]).tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert pareto.hypervolume_contributions(points[:3], [4, 4]).tolist() == [1.0, 1.0, 1.0]


def test_default_reference_point_rule():
    points = [(0.0, 10.0), (1.0, 30.0), (np.nan, 20.0)]
    # Per objective: worst + 0.1 (worst - best) over the finite values.
    assert pareto.reference_point(points).tolist() == pytest.approx([1.1, 32.0])
    # No span: worst + 0.1 |worst|, or worst + 0.1 at 0.
    assert pareto.reference_point([(5.0, 0.0), (5.0, 0.0)]).tolist() == pytest.approx([5.5, 0.1])
    assert pareto.reference_point([(-2.0, 1.0)]).tolist() == pytest.approx([-1.8, 1.1])


def test_greedy_hypervolume_order_of_a_hand_computed_front():
    front = [(2, 5), (5, 2), (3, 3)]
    # Reference (5.3, 5.3). Alone: (3, 3) adds 2.3^2 = 5.29, the two others 3.3 * 0.3 = 0.99.
    # Then each adds 1 * 0.3: equal gains go to the lower index.
    assert pareto.hypervolume_order(front).tolist() == [2, 0, 1]
    assert pareto.hypervolume_order(front, limit=1).tolist() == [2]


def test_pareto_order_and_selection_of_a_hand_computed_set():
    points = [(1, 4), (2, 5), (4, 1), (5, 2), (2, 2), (3, 3), (6, 6)]
    # Front 0: (1, 4), (4, 1), (2, 2); front 1: (2, 5), (5, 2), (3, 3); front 2: (6, 6).
    # Front 0's reference is (4.3, 4.3): (2, 2) adds 2.3^2 first, then (1, 4) and (4, 1) add
    # 1 * 0.3 each (the lower index first). Front 1 as in the test above.
    assert pareto.pareto_order(points).tolist() == [4, 0, 2, 5, 1, 3, 6]
    assert pareto.pareto_order(points, limit=4).tolist() == [4, 0, 2, 5]
    assert pareto.pareto_select(points, 4).tolist() == [0, 2, 4, 5]
    assert pareto.pareto_select(points, 3).tolist() == [0, 2, 4]
    assert pareto.pareto_select(points, 0).tolist() == []


def test_order_with_one_objective_is_the_stable_sort():
    values = [3.0, 1.0, 2.0, 1.0, np.nan]
    assert pareto.pareto_order(values).tolist() == [1, 3, 2, 0, 4]


def test_order_is_invariant_to_shifts_and_scales_of_each_objective():
    rng = np.random.default_rng(3)
    points = rng.random((40, 2))
    moved = points * [1000.0, 0.001] + [-5.0, 7.0]
    assert pareto.pareto_order(points).tolist() == pareto.pareto_order(moved).tolist()


def test_bad_input():
    with pytest.raises(ConfigError, match="same number of objectives"):
        pareto.as_points([(1.0, 2.0), (1.0,)])
    with pytest.raises(ConfigError, match="reference point has 3"):
        pareto.hypervolume([(1.0, 2.0)], [1, 2, 3])


# -- exact oracles -------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4])
def test_hypervolume_equals_counted_cells(k):
    rng = np.random.default_rng(k)
    for _ in range(25):
        points = random_points(rng, int(rng.integers(1, 12)), k, grid=6)
        reference = np.full(k, 6.0)
        assert pareto.hypervolume(points, reference) == counted_hypervolume(points, reference)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_ranks_equal_brute_force(k):
    rng = np.random.default_rng(10 + k)
    for grid in (None, 4):
        for _ in range(30):
            points = random_points(rng, int(rng.integers(1, 25)), k, grid)
            assert pareto.nondominated_ranks(points).tolist() == brute_ranks(points)


def test_ranks_with_a_limit_are_exact_up_to_it():
    rng = np.random.default_rng(5)
    for k in (2, 3):
        points = random_points(rng, 60, k, grid=5)
        exact = pareto.nondominated_ranks(points)
        limited = pareto.nondominated_ranks(points, limit=10)
        cut = np.sort(exact)[9]  # the rank of the 10th best point
        kept = exact <= cut
        assert (limited[kept] == exact[kept]).all()
        assert (limited[~kept] > cut).all()


@pytest.mark.parametrize("k", [2, 3])
def test_contributions_are_differences_of_hypervolumes(k):
    rng = np.random.default_rng(20 + k)
    for _ in range(20):
        points = random_points(rng, int(rng.integers(1, 10)), k, grid=5)
        reference = np.full(k, 5.0)
        total = pareto.hypervolume(points, reference)
        expected = [total - pareto.hypervolume(np.delete(points, i, axis=0), reference) for i in range(len(points))]
        assert pareto.hypervolume_contributions(points, reference).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("k", [2, 3])
def test_greedy_order_equals_brute_force_greedy(k):
    rng = np.random.default_rng(30 + k)
    for _ in range(25):
        points = random_points(rng, int(rng.integers(1, 12)), k)
        front = points[pareto.pareto_front(points)]
        reference = pareto.reference_point(front)
        taken: list[int] = []
        for _ in range(len(front)):
            gains = [(pareto.hypervolume(front[taken + [i]], reference), -i) for i in range(len(front)) if i not in taken]
            taken.append(-max(gains)[1])
        order = pareto.hypervolume_order(front)
        # Equal up to floating-point near-ties: every prefix covers the same volume.
        for m in range(1, len(front) + 1):
            assert pareto.hypervolume(front[order[:m]], reference) == pytest.approx(
                pareto.hypervolume(front[taken[:m]], reference), rel=1e-12, abs=1e-15)


def test_selection_is_the_start_of_the_order():
    rng = np.random.default_rng(40)
    for k in (2, 3):
        points = random_points(rng, 50, k, grid=6)  # many ties and equal points
        order = pareto.pareto_order(points)
        assert sorted(order.tolist()) == list(range(50))
        for m in (1, 5, 17, 50):
            assert pareto.pareto_select(points, m).tolist() == sorted(order[:m].tolist())
            assert pareto.pareto_order(points, limit=m).tolist() == order[:m].tolist()


def test_monte_carlo_agrees_in_five_objectives():
    rng = np.random.default_rng(50)
    points = rng.random((12, 5)) * 0.8
    reference = np.ones(5)
    samples = rng.random((200_000, 5))
    covered = np.zeros(len(samples), dtype=bool)
    for point in points:
        covered |= np.all(samples >= point, axis=1)
    estimate, error = covered.mean(), 4 * covered.std() / np.sqrt(len(samples))
    assert abs(pareto.hypervolume(points, reference) - estimate) < error


def test_optuna_agrees():
    pytest.importorskip("optuna")
    from optuna._hypervolume import compute_hypervolume
    from optuna.study._multi_objective import _fast_non_domination_rank

    rng = np.random.default_rng(60)
    for _ in range(60):
        k = int(rng.integers(2, 5))
        points = random_points(rng, int(rng.integers(1, 40)), k, grid=None if rng.random() < 0.5 else 6)
        reference = points.max(axis=0) + 1
        assert pareto.nondominated_ranks(points).tolist() == _fast_non_domination_rank(points).tolist()
        assert pareto.hypervolume(points, reference) == pytest.approx(compute_hypervolume(points, reference))


def test_importing_it_imports_no_ray_and_nothing_of_raytuner_but_errors():
    code = ("import sys, raytuner; before = set(sys.modules); import raytuner._pareto; "
            "print(sorted(set(sys.modules) - before), 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added, ray = out.stdout.rsplit(" ", 1)
    assert ray.strip() == "False"
    assert [m for m in eval(added) if m.startswith("raytuner")] == ["raytuner._pareto"]


@pytest.mark.parametrize("points", [[[1.7e308, 10.0], [0.5, 20.0]], [[1e160, 1.0], [1.0, 1e160]],
                                    [[1e160, 1.0, 3.0], [1.0, 1e160, 2.0], [5.0, 5.0, 5.0]],
                                    [[-1.7e308, 1.0], [1.7e308, 0.0]]])
def test_finite_values_near_the_floats_limit_order_without_overflow(points):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings would reach every view's output
        order = pareto.pareto_order(points)
    assert sorted(order.tolist()) == list(range(len(points)))
