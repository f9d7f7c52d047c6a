"""Domains: validation messages, sampled value types and ranges, repr."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raytuner.search import choice, grid, loguniform, qloguniform, quniform, randint, uniform


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def draws(domain, rng, n=500):
    return [domain.sample(rng) for _ in range(n)]


def test_uniform_floats_in_range(rng):
    values = draws(uniform(-2, 3), rng)
    assert all(type(v) is float and -2 <= v < 3 for v in values)
    assert min(values) < -1.5 and max(values) > 2.5


def test_loguniform_covers_decades_evenly(rng):
    values = draws(loguniform(1e-4, 1e-1), rng, 3000)
    assert all(type(v) is float and 1e-4 <= v < 1e-1 for v in values)
    decades = np.histogram(np.log10(values), bins=[-4, -3, -2, -1])[0]
    assert decades.min() > 850  # ~1000 each; a linear prior would put 90% in the top decade


def test_quniform_int_when_all_arguments_are_ints(rng):
    values = draws(quniform(16, 256, 16), rng)
    assert all(type(v) is int and v % 16 == 0 and 16 <= v <= 256 for v in values)


def test_quniform_float_otherwise(rng):
    values = draws(quniform(0, 1, 0.25), rng)
    assert all(type(v) is float for v in values)
    assert set(values) == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_qloguniform_types(rng):
    assert all(type(v) is int and 1 <= v <= 1000 for v in draws(qloguniform(1, 1000, 1), rng))
    assert all(type(v) is float for v in draws(qloguniform(1, 10, 0.5), rng))


def test_randint_excludes_upper_bound(rng):
    values = draws(randint(1, 4), rng)
    assert all(type(v) is int for v in values)
    assert set(values) == {1, 2, 3}


def test_choice_returns_options_and_samples_sub_spaces(rng):
    domain = choice([{"name": "sgd", "momentum": uniform(0, 1)}, {"name": "adam"}, 3, "x"])
    values = draws(domain, rng)
    sgd = [v for v in values if isinstance(v, dict) and v["name"] == "sgd"]
    assert sgd and all(0 <= v["momentum"] < 1 for v in sgd)
    assert {"name": "adam"} in values and 3 in values and "x" in values
    assert len({v["momentum"] for v in sgd}) == len(sgd)  # sampled afresh each time


def test_choice_of_domains_and_numpy_options_gives_plain_values(rng):
    values = draws(choice([randint(0, 3), np.float64(0.5), np.int64(7)]), rng, 200)
    assert {type(v) for v in values} == {int, float}
    assert 7 in values and 0.5 in values


def test_bounds_are_stored_as_plain_numbers():
    domain = uniform(np.int64(0), np.float32(2))
    assert type(domain.low) is float and type(domain.high) is float
    assert type(randint(np.int64(1), 5).low) is int


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: uniform(1, 1), r"uniform\(low=1, high=1\): `low` is 1 and `high` is 1, but `low` must be < `high`"),
        (lambda: uniform("0", 1), r"uniform\(low='0', high=1\): `low` is '0' \(str\), but must be a real number"),
        (lambda: uniform(0, math.inf), r"`high` is inf, but must be finite"),
        (lambda: uniform(True, 2), r"`low` is True \(bool\)"),
        (lambda: loguniform(0, 1), r"loguniform\(low=0, high=1\): `low` is 0, but log-scale bounds must be > 0.*uniform\(\)"),
        (lambda: qloguniform(-1, 10, 1), r"qloguniform\(.*\): `low` is -1, but log-scale bounds"),
        (lambda: quniform(0, 10, 0), r"quniform\(low=0, high=10, q=0\): `q` is 0, but must be > 0"),
        (lambda: quniform(0, 10, -1), r"`q` is -1, but must be > 0"),
        (lambda: randint(0.0, 5), r"randint\(low=0.0, high=5\): `low` is 0.0 \(float\), but must be an int"),
        (lambda: randint(5, 5), r"`low` must be < `high`"),
        (lambda: choice([]), r"choice.*`options` is empty"),
        (lambda: choice("abc"), r"choice.*`options` is 'abc', but must be a list"),
        (lambda: choice([{"a": grid([1, 2])}]), r"choice\(\): option 0 contains a grid\(\)"),
        (lambda: grid([]), r"grid.*`values` is empty"),
        (lambda: choice([0.0, -1.0, float("nan")]), r"choice.*`options\[2\]` is nan, which equals no value.*Pass None"),
        (lambda: grid([np.float64("nan")]), r"grid.*`values\[0\]` is nan"),
        (lambda: grid([1, uniform(0, 1)]), r"grid\(\): value 1 is uniform\(0.0, 1.0\), which contains a domain"),
    ],
)
def test_validation_messages_name_constructor_argument_value_and_rule(build, expected):
    with pytest.raises(ValueError, match=expected):
        build()


def test_repr_reads_like_the_constructor_call():
    assert repr(loguniform(1e-4, 0.1)) == "loguniform(0.0001, 0.1)"
    assert repr(quniform(16, 256, 16)) == "quniform(16, 256, q=16)"
    assert repr(randint(1, 4)) == "randint(1, 4)"
    assert repr(choice(["a", {"b": uniform(0, 1)}])) == "choice(['a', {'b': uniform(0.0, 1.0)}])"
    assert repr(grid([1, 2])) == "grid([1, 2])"


def test_domains_are_frozen_and_compare_by_value():
    domain = uniform(0, 1)
    with pytest.raises(AttributeError):
        domain.low = 5  # type: ignore[misc]
    assert domain == uniform(0.0, 1.0)
    assert choice([1, {"a": 2}]) == choice([1, {"a": 2}])
    assert grid([1, 2]) != grid([2, 1])


@pytest.mark.parametrize(
    ("domain", "log", "q", "text"),
    [
        (uniform(0, 1), False, None, "uniform(0.0, 1.0)"),
        (loguniform(1e-3, 1), True, None, "loguniform(0.001, 1.0)"),
        (quniform(0, 10, 2), False, 2, "quniform(0, 10, q=2)"),
        (qloguniform(1, 100, 0.5), True, 0.5, "qloguniform(1, 100, q=0.5)"),
    ],
)
def test_the_four_ranges_are_one_class_with_a_log_flag_and_a_step(domain, log, q, text):
    from raytuner.search import space_from_json, space_to_json

    assert type(domain) is type(uniform(0, 1)) and (domain.log, domain.q) == (log, q)
    assert repr(domain) == text
    assert space_from_json(space_to_json({"p": domain})) == {"p": domain}
    assert domain != uniform(domain.low, domain.high) or domain == uniform(0, 1)
