"""PBT's explore rules, with the random draws scripted, and the step grid PBT and PB2
share: exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raytuner.schedulers._explore import explore, explore_value, perturb
from raytuner.schedulers._pb2 import _box, _from_unit
from raytuner.search import choice, loguniform, qloguniform, quniform, randint, uniform
from raytuner.search._domains import Range


class Draws:
    """A stand-in for numpy's Generator: ``random()`` and ``integers()`` from scripts."""

    def __init__(self, randoms=(), integers=()):
        self.randoms, self.ints = list(randoms), list(integers)

    def random(self):
        return self.randoms.pop(0)

    def integers(self, low, high=None):
        value = self.ints.pop(0)
        assert value < (low if high is None else high)
        return value

    def uniform(self, low, high):
        return low + self.randoms.pop(0) * (high - low)


FACTORS = (0.8, 1.2)


@pytest.mark.parametrize(("value", "domain", "factor", "expected"), [
    (0.5, uniform(0, 1), 1.2, 0.6),
    (0.9, uniform(0, 1), 1.2, 1.0),  # clipped to high
    (1e-3, loguniform(1e-3, 1), 0.8, 1e-3),  # clipped to low: log(x) moved by log(0.8), then clipped
    (0.01, loguniform(1e-3, 1), 1.2, 0.012),
    (10, randint(1, 12), 1.2, 11),  # high is excluded: 12 clips to 11
    (2, randint(1, 100), 1.2, 3),  # 2.4 rounds back to 2: one step up instead
    (2, randint(1, 100), 0.8, 1),
    (64, quniform(16, 256, 16), 1.2, 80),  # 76.8 to the nearest multiple of 16
    (16, quniform(16, 256, 16), 0.8, 16),  # already at the lowest multiple
    (0.0, uniform(-1, 1), 1.2, 0.0),  # a linear 0 only moves by resampling
    (100, qloguniform(10, 1000, 10), 1.2, 120),
])
def test_a_numeric_value_is_multiplied_clipped_and_rounded(value, domain, factor, expected):
    moved = perturb(value, domain, factor)
    assert moved == pytest.approx(expected) and type(moved) is type(expected)


def test_resampling_draws_from_the_domain_and_perturbing_picks_a_factor():
    # random() < p resamples: uniform(0, 1) then draws 0.25.
    assert explore_value(0.5, uniform(0, 1), Draws(randoms=[0.1, 0.25]), 0.2, FACTORS) == 0.25
    # random() >= p perturbs: the factor index comes from integers().
    assert explore_value(0.5, uniform(0, 1), Draws(randoms=[0.9], integers=[1]), 0.2, FACTORS) == pytest.approx(0.6)
    assert explore_value(0.5, uniform(0, 1), Draws(randoms=[0.9], integers=[0]), 0.2, FACTORS) == pytest.approx(0.4)


@pytest.mark.parametrize(("value", "step", "expected"), [
    (32, 0.7, 64),   # >= 0.5: one up
    (32, 0.2, 16),   # < 0.5: one down
    (16, 0.2, 16),   # at the low end: stays
    (128, 0.9, 128),  # at the high end: stays
])
def test_a_categorical_value_moves_to_a_neighbour(value, step, expected):
    options = [16, 32, 64, 128]
    assert explore_value(value, options, Draws(randoms=[0.9, step]), 0.25, FACTORS) == expected
    assert explore_value(value, choice(options), Draws(randoms=[0.9, step]), 0.25, FACTORS) == expected


def test_a_categorical_value_is_resampled_or_replaced_when_not_an_option():
    assert explore_value("relu", ["relu", "tanh", "gelu"], Draws(randoms=[0.1], integers=[2]), 0.25, FACTORS) == "gelu"
    # Not an option (the space started it elsewhere): drawn from the options.
    assert explore_value("elu", ["relu", "tanh"], Draws(randoms=[0.9], integers=[1]), 0.25, FACTORS) == "tanh"


def test_explore_touches_only_the_mutated_keys_and_reaches_nested_ones():
    config = {"lr": 0.1, "model": {"units": 32, "depth": 2}, "seed": 7}
    new = explore(config, {"lr": uniform(0, 1), "model.units": [16, 32, 64]}, Draws(randoms=[0.9, 0.9, 0.7],
                  integers=[1]), 0.25, FACTORS)
    assert new == {"lr": pytest.approx(0.12), "model": {"units": 64, "depth": 2}, "seed": 7}
    assert config["model"]["units"] == 32  # the donor's config is not changed


def test_with_a_real_generator_values_stay_in_their_domains():
    rng = np.random.default_rng(0)
    mutations = {"lr": loguniform(1e-4, 1e-1), "bs": quniform(16, 256, 16), "n": randint(1, 5), "a": ["x", "y"]}
    config = {"lr": 1e-2, "bs": 64, "n": 2, "a": "x"}
    for _ in range(300):
        config = explore(config, mutations, rng, 0.25, FACTORS)
        assert 1e-4 <= config["lr"] <= 1e-1 and 16 <= config["bs"] <= 256 and config["bs"] % 16 == 0
        assert config["n"] in (1, 2, 3, 4) and config["a"] in ("x", "y")


# -- the step grid (``on_grid``), shared by PBT's perturb and PB2's explore ----------------

# Each stepped domain with the values it samples: the multiples k * q in its bounds, as
# float(k * q), so 3 * 0.1 = 0.30000000000000004. Bounds on the grid whose float quotient
# misses the integer: 0.3 / 0.1, 0.7 / 0.1 and 0.49 / 0.07 fall a hair below it (a plain
# floor loses the top value), 2.1 / 0.7 a hair above (a plain ceil loses the bottom one).
GRIDS = [  # the multiples of q as one writes them: 0.3, not 3 * 0.1 = 0.30000000000000004
    (quniform(0, 0.3, 0.1), [0.0, 0.1, 0.2, 0.3]),
    (quniform(0.1, 0.7, 0.1), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
    (quniform(2.1, 4.9, 0.7), [2.1, 2.8, 3.5, 4.2, 4.9]),
    (quniform(0, 0.49, 0.07), [0.0, 0.07, 0.14, 0.21, 0.28, 0.35, 0.42, 0.49]),
    (qloguniform(0.1, 0.7, 0.1), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
    (qloguniform(2.1, 4.9, 0.7), [2.1, 2.8, 3.5, 4.2, 4.9]),
    (quniform(16, 256, 16), list(range(16, 257, 16))),
    (randint(1, 5), [1, 2, 3, 4]),
]


def test_the_grids_are_the_values_the_domains_sample():
    for domain, values in GRIDS:
        rng = np.random.default_rng(0)
        assert sorted({domain.sample(rng) for _ in range(3000)}) == values, domain


@pytest.mark.parametrize(("domain", "values"), GRIDS, ids=[repr(d) for d, _ in GRIDS])
def test_a_factor_of_one_leaves_every_value_of_the_grid_unchanged(domain, values):
    for value in values:
        moved = perturb(value, domain, 1.0)
        assert moved == value and type(moved) is type(value)


@pytest.mark.parametrize(("domain", "values"), GRIDS, ids=[repr(d) for d, _ in GRIDS])
def test_the_ends_of_the_grid_are_reached_and_kept(domain, values):
    assert perturb(values[-2], domain, 2.0) == values[-1]  # clipped to high: the top value
    assert perturb(values[-1], domain, 1.2) == values[-1]  # up from the top: stays there
    assert perturb(values[1], domain, 0.1) == values[0]    # clipped to low: the bottom value
    assert perturb(values[0], domain, 0.8) == values[0]


def test_float_steps_round_to_the_nearest_multiple():
    d = quniform(0, 0.3, 0.1)
    assert perturb(0.2, d, 1.2) == 0.2  # 0.24
    assert perturb(0.2, d, 1.3) == 0.3  # 0.26: up to the top, not down past it
    assert perturb(3 * 0.1, d, 0.8) == 0.2  # 0.24, from the 0.30000000000000004 an older draw had
    assert perturb(3 * 0.1, d, 1.0) == 0.3  # taken to the domain's value, as written
    # No multiple of q between the bounds (a range stored before quniform refused that, as
    # from_json rebuilds it): the two the domain itself rounds to.
    assert perturb(0.1, Range(0.12, 0.18, q=0.1), 1.2) == 0.1
    assert perturb(0.1, Range(0.12, 0.18, q=0.1), 1.8) == 2 * 0.1


@pytest.mark.parametrize(("domain", "values"), GRIDS, ids=[repr(d) for d, _ in GRIDS])
def test_pb2_maps_the_unit_interval_onto_every_value_of_the_grid(domain, values):
    low, high, log = _box(domain)
    for value in values:
        # The point of [0, 1] at the value, in the scale PB2's GP searches.
        unit = math.log(value / low) / math.log(high / low) if log else (value - low) / (high - low)
        moved = _from_unit(domain, unit)
        assert moved == value and type(moved) is type(value)
    assert _from_unit(domain, 0.0) == values[0] and _from_unit(domain, 1.0) == values[-1]
