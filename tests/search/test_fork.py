"""Old observations fitted to a changed space (search/_fork.py)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from raytuner.errors import ConfigError
from raytuner.search import GPSearcher, Outcome, TPESearcher, TrialEnd, choice, randint, uniform
from raytuner.search._domains import Range, same_value
from raytuner.search._fork import check_warm_start, fit_observations
from raytuner.search._params import config_from_params, match_config
from tests._helpers import CONDITIONAL


def test_a_config_that_fits_round_trips():
    config = {"lr": 0.01, "units": 64, "layers": 2, "act": "tanh",
              "opt": {"name": "sgd", "momentum": 0.9}, "epochs": 10}
    fit = fit_observations("S", CONDITIONAL, [(config, 0.5)])
    (params, outcome), = fit.observations
    assert params == {"lr": 0.01, "units": 64.0, "layers": 2.0, "act": 1, "opt": 0,
                      "opt[0].momentum": 0.9}
    assert outcome == Outcome(TrialEnd.COMPLETED, 0.5)
    assert config_from_params(CONDITIONAL, params) == config
    assert not fit.report.changed


def test_an_added_parameter_keeps_the_old_trials_for_the_others():
    old = [({"x": 0.1 * i}, float(i)) for i in range(12)]
    fit = fit_observations("S", {"x": uniform(0, 2), "y": uniform(0, 1)}, old)
    assert [p for p, _ in fit.observations] == [{"x": 0.1 * i} for i in range(12)]
    assert fit.report.used == 12 and fit.report.added == {"y": 12}
    assert "'y' (12)" in fit.report.message("S")


def test_a_removed_parameter_is_ignored():
    fit = fit_observations("S", {"x": uniform(0, 1)}, [({"x": 0.5, "gone": 3, "nest": {"a": 1}}, 1.0)])
    assert fit.observations[0][0] == {"x": 0.5}
    assert fit.report.removed == {"gone": 1, "nest": 1}


def test_a_value_outside_a_narrowed_range_is_dropped_for_that_parameter_only():
    space = {"x": uniform(0, 0.5), "y": uniform(0, 1)}
    fit = fit_observations("S", space, [({"x": 0.9, "y": 0.2}, 1.0), ({"x": 0.1, "y": 0.3}, 2.0)])
    assert [p for p, _ in fit.observations] == [{"y": 0.2}, {"x": 0.1, "y": 0.3}]
    assert fit.report.outside == {"x": 1}
    assert fit.report.added == {}  # dropped values are counted as outside, not as added


def test_outside_skip_drops_the_whole_observation_and_counts_why():
    space = {"x": uniform(0, 0.5), "y": uniform(0, 1)}
    fit = fit_observations("S", space, [({"x": 0.9, "y": 0.2}, 1.0)], outside="skip")
    assert fit.observations == []
    assert fit.report.skipped == {"with a value outside its new domain": 1}
    assert fit.report.outside == {"x": 1}


def test_a_removed_choice_option_drops_the_choice_and_its_children():
    space = {"opt": choice([{"name": "adam", "beta": uniform(0, 1)}]), "lr": uniform(0, 1)}
    fit = fit_observations("S", space, [({"opt": {"name": "sgd", "momentum": 0.9}, "lr": 0.5}, 1.0)])
    assert fit.observations[0][0] == {"lr": 0.5}
    assert fit.report.outside == {"opt": 1}
    assert fit.report.added == {}


def test_an_added_key_inside_a_dict_option_leaves_the_option_matched():
    space = {"opt": choice([{"name": "sgd", "momentum": uniform(0, 1), "nesterov": choice([0, 1])},
                            {"name": "adam"}])}
    fit = fit_observations("S", space, [({"opt": {"name": "sgd", "momentum": 0.5}}, 1.0),
                                        ({"opt": {"name": "adam"}}, 2.0)])
    assert [p for p, _ in fit.observations] == [{"opt": 0, "opt[0].momentum": 0.5}, {"opt": 1}]
    assert fit.report.added == {"opt[0].nesterov": 1}


def test_dict_options_without_constants_are_told_apart_by_their_keys():
    space = {"m": choice([{"a": uniform(0, 1)}, {"b": uniform(0, 1)}])}
    fit = fit_observations("S", space, [({"m": {"b": 0.5}}, 1.0)])
    assert fit.observations[0][0] == {"m": 1, "m[1].b": 0.5}


def test_randint_needs_an_int_inside_its_range_and_quniform_allows_half_a_step():
    # A q range stored before bounds had to be multiples of q (Range, as from_json rebuilds it).
    space = {"n": randint(1, 4), "q": Range(10, 20, q=4)}
    fit = fit_observations("S", space, [({"n": 2.5, "q": 22}, 1.0), ({"n": 4, "q": 23}, 1.0),
                                        ({"n": 3, "q": 8}, 1.0)])
    assert [p for p, _ in fit.observations] == [{"q": 22.0}, {"n": 3.0, "q": 8.0}]
    assert fit.report.skipped == {"that fit no parameter of the space": 1}
    assert fit.report.outside == {"n": 2, "q": 1}


def test_constants_outside_choices_are_not_compared():
    fit = fit_observations("S", {"x": uniform(0, 1), "epochs": 20}, [({"x": 0.5, "epochs": 10}, 1.0)])
    assert fit.observations[0][0] == {"x": 0.5} and not fit.report.changed


def test_results_become_outcomes():
    pairs = check_warm_start("S", [({}, 1), ({}, None), ({}, math.inf), ({}, np.float32(2.0)),
                                   ({}, Outcome(TrialEnd.STOPPED, 3.0, 1, 9))])
    assert [o for _, o in pairs] == [
        Outcome(TrialEnd.COMPLETED, 1.0), Outcome(TrialEnd.FAILED), Outcome(TrialEnd.FAILED),
        Outcome(TrialEnd.COMPLETED, 2.0), Outcome(TrialEnd.STOPPED, 3.0, 1, 9)]


@pytest.mark.parametrize(
    ("warm_start", "needle"),
    [
        (5, r"`warm_start` is 5, but must be a list"),
        ({"x": 1}, r"`warm_start` is \{'x': 1\}"),
        ([({"x": 1}, "bad")], r"`warm_start\[0\]` is \(\{'x': 1\}, 'bad'\)"),
        ([({"x": 1}, 1.0), [1, 2]], r"`warm_start\[1\]` is \[1, 2\]"),
        ([({"x": 1}, True)], r"`warm_start\[0\]`"),
    ],
)
def test_a_warm_start_that_is_not_pairs_is_refused_naming_the_item(warm_start, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        fit_observations("TPESearcher", {"x": uniform(0, 1)}, warm_start)
    assert str(info.value).startswith("TPESearcher: ")
    assert "rt.load(path).observations()" in str(info.value)


def test_an_unknown_outside_policy_is_refused():
    with pytest.raises(ConfigError, match="`outside` is 'clip'"):
        fit_observations("S", {"x": uniform(0, 1)}, [], outside="clip")  # type: ignore[arg-type]


def test_a_parameter_turned_constant_skips_the_old_trials_run_with_another_value():
    old = [({"x": 0.1 * i, "units": [16, 32, 64][i % 3]}, float(i)) for i in range(6)]
    old.append(({"x": 0.7}, 7.0))  # no units at all: not compared, as for an added parameter
    fit = fit_observations("S", {"x": uniform(0, 1), "units": 32}, old)
    assert [p for p, _ in fit.observations] == [{"x": 0.1}, {"x": 0.4}, {"x": 0.7}]
    assert fit.report.fixed == {"units": 4}
    assert fit.report.skipped == {"run with another value of a parameter now constant": 4}
    assert fit.report.message("S") == (
        "S fitted 3 of 7 warm-start observations to the space; skipped: 4 run with another value of a "
        "parameter now constant; the parameters now constant: 'units' (4).")


def test_a_choice_of_dicts_turned_into_one_dict_skips_the_trials_of_the_other_options():
    old = [({"opt": {"name": "sgd", "momentum": 0.9}}, 1.0), ({"opt": {"name": "adam", "beta": 0.5}}, 2.0)]
    fit = fit_observations("S", {"opt": {"name": "adam", "beta": uniform(0, 1)}}, old)
    assert fit.observations == [({"opt.beta": 0.5}, Outcome(TrialEnd.COMPLETED, 2.0))]
    assert fit.report.fixed == {"opt.name": 1} and fit.report.added == {} and fit.report.removed == {}


# A config read back from config.json holds a path as its string: the Path choices, the Path
# constant and the Path inside a dict option below all ran as the strings of PATH_CONFIGS.
PATH_SPACE = {"data": choice([Path("/tmp/d1"), Path("/tmp/d2")]), "root": Path("/tmp/root"),
              "opt": choice([{"dir": Path("/tmp/a"), "x": uniform(0, 1)}, {"dir": Path("/tmp/b")}]),
              "nest": {"out": Path("/tmp/out")}}
PATH_CONFIGS = [
    {"data": "/tmp/d2", "root": "/tmp/root", "opt": {"dir": "/tmp/a", "x": 0.25}, "nest": {"out": "/tmp/out"}},
    {"data": "/tmp/d1", "root": "/tmp/root", "opt": {"dir": "/tmp/b"}, "nest": {"out": "/tmp/out"}},
]


def test_a_path_matches_its_string_in_choices_constants_and_dict_options():
    assert same_value(Path("/tmp/d1"), "/tmp/d1") and same_value("/tmp/d1", PurePosixPath("/tmp/d1"))
    assert same_value({"p": [Path("/a")]}, {"p": ["/a"]}) and not same_value(Path("/a"), "/b")
    assert match_config(PATH_SPACE, PATH_CONFIGS[0]).values == {"data": 1, "opt": 0, "opt[0].x": 0.25}
    assert match_config(PATH_SPACE, PATH_CONFIGS[1]).values == {"data": 0, "opt": 1}
    fit = fit_observations("S", PATH_SPACE, [(config, float(i)) for i, config in enumerate(PATH_CONFIGS)])
    assert [p for p, _ in fit.observations] == [{"data": 1, "opt": 0, "opt[0].x": 0.25}, {"data": 0, "opt": 1}]
    assert not fit.report.changed


def test_a_path_constant_keeps_the_old_trials_that_ran_it():
    old = [({"data": "/tmp/d1", "x": 0.5}, 1.0), ({"data": "/tmp/d2", "x": 0.5}, 2.0)]
    fit = fit_observations("S", {"data": Path("/tmp/d1"), "x": uniform(0, 1)}, old)
    assert [o.value for _, o in fit.observations] == [1.0]
    assert fit.report.fixed == {"data": 1}


@pytest.mark.parametrize("searcher", [TPESearcher, GPSearcher])
def test_a_warm_start_from_configs_with_paths_keeps_every_observation(searcher):
    warm = [(config, float(i)) for i, config in enumerate(PATH_CONFIGS * 3)]
    built = searcher(PATH_SPACE, seed=0, n_startup=2, warm_start=warm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fit that dropped or left out anything warns
        built.setup(None, 4)
    if isinstance(built, GPSearcher):
        assert len(built._observations()[1]) == 6
    else:
        assert len(built._ids) == 6
    assert built.suggest("0")["data"] in (Path("/tmp/d1"), Path("/tmp/d2"))
