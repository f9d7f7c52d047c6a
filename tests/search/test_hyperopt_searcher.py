"""HyperOptSearcher: phases, pending trials, outcomes, warm start and resume."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hyperopt import JOB_STATE_DONE, JOB_STATE_NEW, hp, rand, tpe

from raytuner.search import HyperOptSearcher, Outcome, TrialEnd, choice, grid, loguniform, quniform, randint, uniform

SPACE = {"x": uniform(-5, 5), "y": uniform(-5, 5)}
DONE = TrialEnd.COMPLETED


def tid(i: int) -> str:
    return f"{i:05d}"


def f(config) -> float:
    return (config["x"] - 1) ** 2 + (config["y"] + 2) ** 2


def make(space=SPACE, num_trials=100, **kwargs) -> HyperOptSearcher:
    kwargs.setdefault("seed", 0)
    searcher = HyperOptSearcher(space, **kwargs)
    searcher.setup(None, num_trials)
    return searcher


def run_sequential(searcher, n, start=0):
    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(tid(i))
        configs.append(config)
        searcher.on_trial_complete(tid(i), Outcome(DONE, f(config)))
    return configs


class Spy:
    """Records which hyperopt algorithm produced each suggestion and the history TPE saw."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.history: list[dict[int, dict]] = []
        real_tpe, real_rand = tpe.suggest, rand.suggest

        def spy_tpe(new_ids, domain, trials, seed, **kwargs):
            self.calls.append("tpe")
            self.history.append({doc["tid"]: doc for doc in trials.trials})
            return real_tpe(new_ids, domain, trials, seed, **kwargs)

        def spy_rand(new_ids, domain, trials, seed):
            self.calls.append("rand")
            return real_rand(new_ids, domain, trials, seed)

        monkeypatch.setattr(tpe, "suggest", spy_tpe)
        monkeypatch.setattr(rand, "suggest", spy_rand)


@pytest.fixture
def spy(monkeypatch):
    return Spy(monkeypatch)


def losses_seen(spy) -> dict[int, float]:
    """tid -> loss in the last history TPE saw (inf for failed, None for pending)."""
    out = {}
    for t, doc in spy.history[-1].items():
        if doc["state"] == JOB_STATE_NEW:
            out[t] = None
        else:
            assert doc["state"] == JOB_STATE_DONE
            out[t] = doc["result"]["loss"] if doc["result"]["status"] == "ok" else math.inf
    return out


# -- values --------------------------------------------------------------------------------

MIXED = {
    "lr": loguniform(1e-4, 1e-1),
    "units": quniform(16, 256, 16),
    "drop": quniform(0, 0.5, 0.1),
    "layers": randint(1, 4),
    "opt": choice([{"name": "sgd", "momentum": uniform(0, 1)}, {"name": "adam"}]),
    "sizes": [64, 32],
    "native": hp.uniformint("native", 0, 3),
}


def test_configs_are_plain_python_values_in_random_and_tpe_phases(spy):
    searcher = make(MIXED, n_startup=5)
    configs = []
    for i in range(25):
        config = searcher.suggest(tid(i))
        configs.append(config)
        searcher.on_trial_complete(tid(i), Outcome(DONE, config["lr"] * config["layers"]))
    assert spy.calls == ["rand"] * 5 + ["tpe"] * 20
    for config in configs:
        assert type(config["lr"]) is float and 1e-4 <= config["lr"] <= 1e-1
        assert type(config["units"]) is int and config["units"] % 16 == 0
        assert type(config["drop"]) is float
        assert type(config["layers"]) is int and 1 <= config["layers"] <= 3
        assert type(config["native"]) is int
        assert config["opt"] in ({"name": "adam"},) or set(config["opt"]) == {"name", "momentum"}
        assert config["sizes"] == [64, 32]
    assert {c["layers"] for c in configs} == {1, 2, 3}


def test_sequential_run_matches_hyperopt_fmin_with_the_same_seed():
    """Differential test: one trial at a time, the adapter is hyperopt's own TPE."""
    import functools
    import logging

    from hyperopt import Trials, fmin

    space = {"x": hp.uniform("x", -5, 5), "y": hp.uniform("y", -5, 5)}
    trials = Trials()
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    fmin(
        f, space, algo=functools.partial(tpe.suggest, n_startup_jobs=5, verbose=False),
        max_evals=15, trials=trials, rstate=np.random.default_rng(3), show_progressbar=False,
    )
    ours = run_sequential(make(space, n_startup=5, seed=3), 15)
    assert [f(config) for config in ours] == pytest.approx(trials.losses(), rel=1e-12)


# -- determinism and resume ----------------------------------------------------------------


def test_same_seed_and_results_give_same_suggestions_other_seed_differs():
    def run(seed):
        searcher = make(MIXED, n_startup=5, seed=seed)
        configs = []
        for i in range(15):
            configs.append(searcher.suggest(tid(i)))
            searcher.on_trial_complete(tid(i), Outcome(DONE, configs[-1]["lr"] * configs[-1]["units"]))
        return configs

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a != c


@pytest.mark.parametrize("restore_first", [False, True])
def test_state_round_trip_continues_the_same_tpe_history(restore_first):
    warm = [({"x": 1.0, "y": -2.0}, 0.0)]
    original = make(n_startup=5, warm_start=warm, points_to_evaluate=[{"x": 0.0, "y": 0.0}])
    run_sequential(original, 8)
    pending = original.suggest(tid(8))  # still running when the experiment stops
    state = pickle.loads(pickle.dumps(original.state()))
    original.on_trial_complete(tid(8), Outcome(DONE, f(pending)))
    expected = run_sequential(original, 10, start=9)

    resumed = HyperOptSearcher(SPACE, seed=123, warm_start=warm, points_to_evaluate=[{"x": 0.0, "y": 0.0}], n_startup=5)
    if restore_first:
        resumed.restore(state)
        resumed.setup(None, 100)
    else:
        resumed.setup(None, 100)
        resumed.restore(state)
    resumed.on_trial_complete(tid(8), Outcome(DONE, f(pending)))
    assert run_sequential(resumed, 10, start=9) == expected
    assert sum(k.startswith("warm_start") for k in resumed.state()["records"]) == 1


def test_restore_rejects_an_unknown_state_version():
    with pytest.raises(ValueError, match="state version 99"):
        make().restore({"version": 99})


# -- startup and pending trials -------------------------------------------------------------


def test_startup_counts_finished_trials_not_pending_ones(spy):
    searcher = make(n_startup=5, pending_limit=None)
    configs = {tid(i): searcher.suggest(tid(i)) for i in range(8)}  # 8 workers busy
    for i in range(4):
        searcher.on_trial_complete(tid(i), Outcome(DONE, f(configs[tid(i)])))
    searcher.suggest(tid(8))
    # hyperopt would count 8 docs >= n_startup and switch to TPE with 4 real results.
    assert spy.calls == ["rand"] * 9
    searcher.on_trial_complete(tid(4), Outcome(DONE, f(configs[tid(4)])))
    searcher.suggest(tid(9))
    assert spy.calls[-1] == "tpe"
    seen = losses_seen(spy)
    assert sum(loss is not None for loss in seen.values()) == 5
    assert sum(loss is None for loss in seen.values()) == 4  # pending enter as unknown


def test_auto_pending_limit_waits_instead_of_flooding_random_startup():
    searcher = make(n_startup=3)
    for i in range(3):
        assert searcher.suggest(tid(i)) is not None
    assert searcher.suggest(tid(3)) is None  # "not now": 3 random trials already in flight
    searcher.on_trial_complete(tid(0), Outcome(DONE, 1.0))
    assert searcher.suggest(tid(3)) is not None


def test_auto_pending_limit_grows_with_finished_trials():
    searcher = make(n_startup=2)
    run_sequential(searcher, 6)
    started = [i for i in range(6, 20) if searcher.suggest(tid(i)) is not None]
    assert len(started) == 6  # pending may reach the number of finished trials, not more


def test_pending_limit_ignores_trials_that_reported_so_paused_trials_never_block():
    # Hyperband pauses every trial of a bracket at its first milestone: none is running.
    searcher = make(n_startup=3)
    for i in range(3):
        searcher.suggest(tid(i))
        searcher.on_trial_result(tid(i), 1, 5.0)
    assert all(searcher.suggest(tid(i)) is not None for i in range(3, 6))
    assert searcher.suggest(tid(6)) is None  # three new ones have not reported yet


def test_auto_pending_limit_never_blocks_an_idle_searcher():
    searcher = make(n_startup=0)
    assert searcher.suggest(tid(0)) is not None


def test_int_pending_limit_and_no_limit():
    capped = make(pending_limit=2)
    assert [capped.suggest(tid(i)) is not None for i in range(3)] == [True, True, False]
    free = make(n_startup=1, pending_limit=None)
    assert all(free.suggest(tid(i)) is not None for i in range(30))


# -- outcomes -------------------------------------------------------------------------------


def _history_after(spy, searcher, outcomes):
    """Suggest one trial per outcome, end them, then one more suggestion (seen by TPE)."""
    for i in range(len(outcomes)):
        searcher.suggest(tid(i))
    for i, outcome in enumerate(outcomes):
        searcher.on_trial_complete(tid(i), outcome)
    searcher.suggest(tid(len(outcomes)))
    assert spy.calls[-1] == "tpe"
    return losses_seen(spy)


OUTCOMES = [
    Outcome(DONE, 3.0, resource=27, max_resource=27),
    Outcome(DONE, 5.0, resource=27, max_resource=27),
    Outcome(TrialEnd.STOPPED, 0.5, resource=1, max_resource=27),  # low fidelity, looks best
    Outcome(TrialEnd.STOPPED, 4.0, resource=9, max_resource=27),
    Outcome(TrialEnd.STOPPED, 2.0, resource=9, max_resource=27),
    Outcome(TrialEnd.STOPPED, 1.0, resource=27, max_resource=27),  # reached the full budget
    Outcome(TrialEnd.FAILED),
    Outcome(DONE, None),  # returned without reporting the metric
    Outcome(DONE, math.nan),
    Outcome(TrialEnd.STOPPED, None, resource=None, max_resource=27),  # before its first report
    Outcome(TrialEnd.STOPPED, math.nan, resource=1, max_resource=27),  # diverged: ASHA stopped it
]


def test_penalize_ranks_stopped_behind_full_budget_deeper_first(spy):
    seen = _history_after(spy, make(n_startup=0, pending_limit=None), OUTCOMES)
    assert seen[0] == 3.0 and seen[1] == 5.0 and seen[5] == 1.0
    assert max(seen[0], seen[1], seen[5]) < seen[4] < seen[3] < seen[2] < math.inf
    assert seen[6] == seen[7] == seen[8] == math.inf  # failures are kept, as infinite loss
    assert seen[9] == seen[10] == math.inf  # stopped without a finite value: failed


def test_last_feeds_the_last_value_as_final(spy):
    seen = _history_after(spy, make(n_startup=0, pending_limit=None, stopped_trials="last"), OUTCOMES)
    assert [seen[i] for i in range(6)] == [3.0, 5.0, 0.5, 4.0, 2.0, 1.0]
    assert seen[6] == seen[9] == seen[10] == math.inf


def test_ignore_leaves_low_fidelity_trials_out(spy):
    seen = _history_after(spy, make(n_startup=0, pending_limit=None, stopped_trials="ignore"), OUTCOMES)
    assert set(seen) == {0, 1, 5, 6, 7, 8, 9, 10}  # 2, 3 and 4 are low fidelity
    assert seen[5] == 1.0 and seen[9] == seen[10] == math.inf


def test_failed_trials_steer_tpe_away():
    in_failing_half = 0
    for seed in range(5):
        searcher = make({"x": uniform(0, 1)}, n_startup=10, seed=seed)
        for i in range(40):
            x = searcher.suggest(tid(i))["x"]
            in_failing_half += i >= 10 and x >= 0.5
            failed = Outcome(TrialEnd.FAILED)
            searcher.on_trial_complete(tid(i), failed if x >= 0.5 else Outcome(DONE, (x - 0.25) ** 2))
    assert in_failing_half / (5 * 30) < 0.35  # random search would put half there


def test_a_trial_stopped_at_its_full_budget_without_a_value_counts_as_failed():
    # It used to reach TPE as a loss of None, and the next suggestion raised a TypeError.
    searcher = make({"x": uniform(0, 1)}, n_startup=2, pending_limit=None)
    for i in range(3):
        searcher.suggest(tid(i))
    searcher.on_trial_complete(tid(0), Outcome(DONE, 1.0, 9, 9))
    searcher.on_trial_complete(tid(1), Outcome(TrialEnd.STOPPED, math.nan, 9, 9))
    searcher.on_trial_complete(tid(2), Outcome(DONE, 2.0, 9, 9))
    assert searcher._losses() == {0: 1.0, 1: math.inf, 2: 2.0}
    assert 0 <= searcher.suggest(tid(3))["x"] <= 1


def test_paused_then_stopped_trial_is_closed(spy):
    searcher = make(n_startup=0, pending_limit=None)
    for i in range(4):
        searcher.suggest(tid(i))
    searcher.on_trial_complete(tid(0), Outcome(DONE, 1.0, 27, 27))
    searcher.on_trial_complete(tid(2), Outcome(DONE, 2.0, 27, 27))
    searcher.on_trial_complete(tid(3), Outcome(DONE, 4.0, 27, 27))
    # trial 1 was paused at resource 3 for a while, then the scheduler stopped it
    searcher.on_trial_complete(tid(1), Outcome(TrialEnd.STOPPED, 0.1, resource=3, max_resource=27))
    searcher.suggest(tid(4))
    seen = losses_seen(spy)
    assert all(loss is not None for t, loss in seen.items() if t < 4)  # no doc left pending
    assert seen[1] > 4.0


# -- points to evaluate and warm start ------------------------------------------------------


def test_points_to_evaluate_come_first_in_order_then_random():
    space = {"x": uniform(0, 1), "opt": choice([{"name": "sgd", "m": uniform(0, 1)}, {"name": "adam"}])}
    points = [{"x": 0.25, "opt": {"name": "adam"}}, {"x": 0.75, "opt": {"name": "sgd", "m": 0.5}}]
    searcher = make(space, points_to_evaluate=points)
    assert [searcher.suggest(tid(0)), searcher.suggest(tid(1))] == points
    assert searcher.suggest(tid(2)) not in points


def test_points_to_evaluate_must_fit_the_space():
    searcher = HyperOptSearcher(SPACE, points_to_evaluate=[{"x": 0.0, "y": 0.0}, {"x": 9.0, "y": 0.0}])
    with pytest.raises(ValueError, match=r"points_to_evaluate\[1\] does not fit the space: 'x' is 9.0, outside"):
        searcher.setup(None, 10)
    with pytest.raises(ValueError, match=r"points_to_evaluate\[0\] is 3, but must be a config dict"):
        HyperOptSearcher(SPACE, points_to_evaluate=[3])


def test_warm_start_seeds_tpe_and_counts_towards_startup(spy):
    rng = np.random.default_rng(0)
    warm = []
    for _ in range(10):
        config = {"x": float(rng.uniform(-5, 5)), "y": float(rng.uniform(-5, 5))}
        warm.append((config, f(config)))
    warm.append(({"x": 0.0, "y": 0.0}, None))  # a failed trial of the earlier run
    warm.append(({"x": 0.0, "y": 0.0}, Outcome(TrialEnd.STOPPED, 0.1, resource=1, max_resource=9)))
    searcher = make(n_startup=10, warm_start=warm)
    searcher.suggest(tid(0))
    assert spy.calls == ["tpe"]
    seen = losses_seen(spy)
    assert [seen[i] for i in range(10)] == [value for _, value in warm[:10]]
    assert seen[10] == math.inf
    assert max(seen[i] for i in range(10)) < seen[11] < math.inf


def test_warm_start_fits_old_configs_to_a_changed_space_with_a_warning(spy):
    # x = 7.0 is outside the space: that trial still informs y. A config without y
    # (y added since) still informs x. A removed key is ignored.
    warm = [({"x": 1.0, "y": -2.0}, 0.0), ({"x": 7.0, "y": 0.0}, 1.0), ({"x": 0.0, "z": 1}, 2.0)]
    with pytest.warns(UserWarning, match=r"fitted 3 of 3 .*'y' \(1\).*'z' \(1\).*outside.*'x' \(1\)"):
        searcher = make(n_startup=1, warm_start=warm)
    searcher.suggest(tid(0))
    assert losses_seen(spy) == {0: 0.0, 1: 1.0, 2: 2.0}
    docs = spy.history[-1]
    assert docs[1]["misc"]["vals"] == {"x": [], "y": [0.0]}
    assert docs[2]["misc"]["vals"] == {"x": [0.0], "y": []}


def test_a_partial_warm_start_steers_hyperopts_tpe_on_the_parameters_it_has():
    old = [({"x": x}, (x - 2.0) ** 2) for x in np.linspace(-5, 5, 21)]
    with pytest.warns(UserWarning, match=r"'y' \(21\)"):
        searcher = make(n_startup=10, warm_start=old)
    xs = []
    for i in range(10):
        config = searcher.suggest(tid(i))
        searcher.on_trial_complete(tid(i), Outcome(DONE, (config["x"] - 2.0) ** 2 + config["y"] ** 2))
        xs.append(config["x"])
    assert np.median(np.abs(np.array(xs) - 2.0)) < 1.5


@pytest.mark.parametrize("pair", [({"x": 1},), ({"x": 1}, "bad"), (3, 1.0), ({"x": 1}, True)])
def test_warm_start_pairs_are_checked(pair):
    with pytest.raises(ValueError, match=r"`warm_start\[0\]` is .* must be a \(config dict, value\) pair"):
        HyperOptSearcher(SPACE, warm_start=[pair])


# -- arguments and spaces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"n_startup": -1}, r"`n_startup` is -1, but must be an int >= 0"),
        ({"gamma": 0}, r"`gamma` is 0, but must be in \(0, 1\]. Pass gamma=0.25"),
        ({"n_ei_candidates": 0}, r"`n_ei_candidates` is 0"),
        ({"stopped_trials": "drop"}, r"`stopped_trials` is 'drop', but must be one of 'penalize', 'last', 'ignore'"),
        ({"pending_limit": 0}, r"`pending_limit` is 0, but must be 'auto', None"),
        ({"seed": -3}, r"`seed` is -3"),
    ],
)
def test_bad_arguments_are_named(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        HyperOptSearcher(SPACE, **kwargs)


def test_grid_in_space_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"cannot search a space with grid\(\).*GridSearcher.*choice"):
        make({"a": grid([1, 2])})


def test_duplicate_native_label_is_named():
    with pytest.raises(ValueError, match=r"label 'x' is used twice"):
        make({"a": hp.uniform("x", 0, 1), "b": hp.uniform("x", 0, 2)})


def test_native_expressions_alone_work_through_both_phases():
    space = {"x": hp.uniform("x", -5, 5), "k": hp.choice("k", ["a", "b"]), "r": hp.randint("r", 3, 7)}
    searcher = make(space, n_startup=3)
    for i in range(10):
        config = searcher.suggest(tid(i))
        assert type(config["x"]) is float and config["k"] in ("a", "b")
        assert type(config["r"]) is int and 3 <= config["r"] < 7
        searcher.on_trial_complete(tid(i), Outcome(DONE, config["x"] ** 2))


def test_suggest_before_setup_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"setup\(\) must be called"):
        HyperOptSearcher(SPACE).suggest(tid(0))


def test_a_trial_corrected_after_a_resume_is_given_to_hyperopt_at_the_config_it_ran():
    ran, restored = make(seed=1), make(seed=2)
    config = ran.suggest(tid(0))
    assert restored.suggest(tid(0)) != config
    assert restored.correct_config(tid(0), config)
    assert restored.state()["records"] == ran.state()["records"]  # the docs hyperopt gets are built from these
    restored.on_trial_complete(tid(0), Outcome(DONE, f(config)))
    assert not restored.correct_config(tid(0), config)  # ended: it keeps what it was credited with
    assert not restored.correct_config(tid(1), config)  # never proposed
    restored.suggest(tid(1))
    assert not restored.correct_config(tid(1), {"x": 1e9, "y": 0.0})  # outside the space
