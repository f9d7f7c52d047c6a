"""quniform and qloguniform refuse bounds that are not multiples of q, as Ray Tune does:
the rounding of a draw would otherwise leave [low, high] (qloguniform(1, 100, 10) gave 0,
outside the log domain, in a third of the draws), or make the range a constant."""

from __future__ import annotations

import re

import numpy as np
import pytest

from raytuner.errors import ConfigError
from raytuner.search import qloguniform, quniform, space_from_json, space_to_json
from raytuner.search._domains import Range

CONSTRUCTORS = {"quniform": quniform, "qloguniform": qloguniform}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: qloguniform(1, 100, 10),
         r"^qloguniform\(low=1, high=100, q=10\): `low` \(1\) is not a multiple of `q`, as Ray Tune requires "
         r"too: .*\(here 0, outside \[low, high\]\)\. Pass bounds that are multiples of q, e\.g\. "
         r"qloguniform\(10, 100, 10\)\.$"),
        (lambda: quniform(1, 10, 4),
         r"^quniform\(low=1, high=10, q=4\): `low` \(1\) and `high` \(10\) are not multiples of `q`.*\(here 0, "
         r"outside \[low, high\]\).*e\.g\. quniform\(4, 8, 4\)\.$"),
        (lambda: qloguniform(8, 512, 16), r"`low` \(8\) is not a multiple of `q`.*e\.g\. qloguniform\(16, 512, 16\)"),
        (lambda: quniform(0.1, 1.0, 0.25), r"`low` \(0\.1\) is not a multiple.*e\.g\. quniform\(0\.25, 1\.0, 0\.25\)"),
        (lambda: quniform(0, 1, 0.3),
         r"`high` \(1\) is not a multiple of `q`, .*ends\. Pass .*quniform\(0\.0, 0\.9, 0\.3\)"),
        (lambda: quniform(0, 10, 20),
         r"^quniform\(low=0, high=10, q=20\): `q` is 20, larger than high - low = 10, .*Pass a smaller q that "
         r"divides both bounds, e\.g\. quniform\(0, 10, 10\), or a constant for a single value\.$"),
        (lambda: quniform(0.12, 0.18, 0.1),
         r"`q` is 0\.1, larger than high - low = 0\.06.*quniform\(0\.12, 0\.18, 0\.06\)"),
    ],
)
def test_bounds_off_the_steps_are_refused_with_an_example_that_is_accepted(make, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        make()
    example = re.search(r"e\.g\. ((q|qlog)uniform\([^)]*\))", str(info.value)).group(1)
    eval(example, {"__builtins__": {}}, CONSTRUCTORS)  # the fix it suggests is itself accepted


@pytest.mark.parametrize(
    "domain",
    [quniform(0, 0.3, 0.1), quniform(0.1, 0.7, 0.1), quniform(2.1, 4.9, 0.7), quniform(0, 0.49, 0.07),
     quniform(-1, 1, 0.5), quniform(16, 256, 16), qloguniform(1e-3, 1e-1, 1e-3), qloguniform(10, 100, 10),
     qloguniform(8, 512, 8)],
    ids=repr,
)
def test_multiples_within_float_rounding_are_accepted_and_draws_stay_inside(domain):
    rng = np.random.default_rng(0)
    draws = [domain.sample(rng) for _ in range(2000)]
    # Exactly: round(0.3 / 0.1) * 0.1 is 0.30000000000000004, which is above high = 0.3.
    assert min(draws) == domain.low and max(draws) == domain.high  # both ends drawn, neither passed


@pytest.mark.parametrize("searcher", ["TPESearcher", "HyperOptSearcher", "OptunaSearcher", "GPSearcher",
                                      "RandomSearcher"])
def test_every_searcher_keeps_a_float_q_range_inside_its_bounds(searcher):
    """Told that higher is better, each searcher proposes the upper bound again and again:
    it must be 0.3 itself, never the 0.30000000000000004 that the rounding makes."""
    import warnings

    import raytuner as rt
    from raytuner.search import Outcome, TrialEnd

    space = {"drop": quniform(0.1, 0.3, 0.1), "wd": qloguniform(0.1, 0.3, 0.1)}
    kwargs = {"n_startup": 3, "n_restarts": 0, "n_candidates": 50} if searcher == "GPSearcher" else {}
    made = getattr(rt, searcher)(seed=0, **kwargs)
    made.setup(space, 16)
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's and the GP's own notes on a small space
        for i in range(16):
            config = made.suggest(str(i))
            seen.update(config.values())
            made.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, -(config["drop"] + config["wd"]), 1))
    assert max(seen) == 0.3 and min(seen) >= 0.1


def test_a_stored_range_from_before_the_rule_is_rebuilt_as_it_ran():
    stored = space_to_json({"b": Range(1, 100, log=True, q=10), "u": Range(1, 10, q=4)})
    assert space_from_json(stored) == {"b": Range(1, 100, log=True, q=10), "u": Range(1, 10, q=4)}
