"""TPESearcher (search/_tpe.py), driven by synthetic event streams; no Ray."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest

from raytuner.errors import ConfigError
from raytuner.search import HyperOptSearcher, Outcome, RandomSearcher, TPESearcher, TrialEnd, choice, grid, randint, uniform
from tests._helpers import CONDITIONAL, run_serially


def mixed_loss(c):
    loss = (math.log10(c["lr"]) + 2.5) ** 2 + ((c["units"] - 96) / 100) ** 2 + (c["layers"] - 2) ** 2
    loss += 0.5 * (c["act"] == "tanh")
    if c["opt"]["name"] == "sgd":
        loss += 2 * (c["opt"]["momentum"] - 0.9) ** 2
    return loss


def done(value, resource=None, end=TrialEnd.COMPLETED, max_resource=math.inf):
    return Outcome(end, value, resource, max_resource)


def make(space=CONDITIONAL, **kwargs):
    searcher = TPESearcher(space, **kwargs)
    searcher.setup(None, num_trials=100)
    return searcher


def run(searcher, loss, n, start=0):
    return run_serially(searcher, loss, n, start, done)


def test_configs_hold_plain_python_values_on_their_domains():
    searcher = make(seed=0, n_startup=5)
    for config in run(searcher, mixed_loss, 30):
        assert type(config["lr"]) is float and 1e-4 <= config["lr"] <= 1e-1
        assert type(config["units"]) is int and config["units"] % 16 == 0 and 16 <= config["units"] <= 256
        assert type(config["layers"]) is int and config["layers"] in (1, 2, 3)
        assert config["act"] in ("relu", "tanh") and config["epochs"] == 10
        if config["opt"]["name"] == "sgd":
            assert type(config["opt"]["momentum"]) is float and 0 <= config["opt"]["momentum"] <= 0.99
        else:
            assert config["opt"] == {"name": "adam"}


def test_startup_is_random_search_and_counts_finished_trials_only():
    tpe, rand = make(seed=3, n_startup=3), RandomSearcher(CONDITIONAL, seed=3)
    rand.setup(None, 100)
    # Five suggestions in flight, none finished: still the start-up, the same draws as random.
    assert [tpe.suggest(str(i)) for i in range(5)] == [rand.suggest(str(i)) for i in range(5)]
    for i in range(3):
        tpe.on_trial_complete(str(i), done(float(i)))
        rand.on_trial_complete(str(i), done(float(i)))
    assert tpe._split() is not None  # three finished: the model takes over
    assert tpe.suggest("5") != rand.suggest("5")


def test_tpe_finds_better_configs_than_random_search():
    tpe_best, rand_best = [], []
    for seed in range(5):
        tpe = make(seed=seed)
        rand = RandomSearcher(CONDITIONAL, seed=seed)
        rand.setup(None, 100)
        tpe_best.append(min(mixed_loss(c) for c in run(tpe, mixed_loss, 40)))
        rand_best.append(min(mixed_loss(c) for c in run(rand, mixed_loss, 40)))
    assert np.median(tpe_best) < 0.5 * np.median(rand_best)


def test_the_constant_liar_spreads_the_suggestions_of_pending_trials():
    xs = np.random.default_rng(0).uniform(0, 1, 30)
    history = [({"x": float(x)}, (x - 0.5) ** 2) for x in xs]
    liar_spread, iid_spread = [], []
    for rep in range(10):
        searcher = make({"x": uniform(0, 1)}, seed=rep, warm_start=history)
        # Eight suggestions in flight at once: each pending one weighs on g(x).
        liar_spread.append(np.std([searcher.suggest(f"p{i}")["x"] for i in range(8)]))
        # Control: the same history in eight searchers, one suggestion each (no pending).
        iid = [make({"x": uniform(0, 1)}, seed=100 * rep + i, warm_start=history).suggest("p")["x"]
               for i in range(8)]
        iid_spread.append(np.std(iid))
    # Measured: 0.076 against 0.016.
    assert np.mean(liar_spread) > 2.5 * np.mean(iid_spread)


def test_pending_trials_are_bad_observations():
    searcher = make({"x": uniform(0, 1)}, seed=0, n_startup=2)
    run(searcher, lambda c: c["x"], 4)
    searcher.suggest("p")
    good, bad = searcher._split()
    assert searcher._ids["p"] in bad.tolist()
    assert len(good) == 1 and good[0] == int(np.argmin([searcher._final_value[i] for i in range(4)]))


def test_the_model_fits_the_highest_level_with_enough_values():
    searcher = make({"x": uniform(0, 1)}, seed=0, n_startup=4)
    for i in range(8):
        searcher.suggest(str(i))
    # Rung 1: all eight; rung 3: four (0-3); rung 9: two (0, 1); 4-7 stopped at rung 1.
    for i in range(8):
        searcher.on_trial_result(str(i), 1, 10.0 - i)  # at rung 1, trial 7 looks best
    for i in range(4):
        searcher.on_trial_result(str(i), 3, float(i))  # at rung 3, trial 0 is best
    for i in range(2):
        searcher.on_trial_result(str(i), 9, float(i))
    for i in range(4, 8):
        searcher.on_trial_complete(str(i), done(10.0 - i, 1, TrialEnd.STOPPED, 9))
    resource, values = searcher._model_level()
    assert resource == 3
    assert np.isfinite(values).tolist() == [True] * 4 + [False] * 4
    good, bad = searcher._split()
    # Trials 4-7 stopped below rung 3 are bad there, though they were best at rung 1.
    assert good.tolist() == [0] and bad.tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_full_budget_values_count_at_every_higher_level_and_failures_are_bad():
    searcher = make({"x": uniform(0, 1)}, seed=0, n_startup=3)
    for i in range(4):
        searcher.suggest(str(i))
    searcher.on_trial_complete("0", done(0.5, 5))  # completed at 5 (a stop= criterion)
    searcher.on_trial_complete("1", done(0.7, 9, TrialEnd.STOPPED, 9))  # stopped at max: full
    searcher.on_trial_complete("2", done(0.1, 9))
    searcher.on_trial_complete("3", Outcome(TrialEnd.FAILED))
    resource, values = searcher._model_level()
    assert resource == 9 and values.tolist() == [0.5, 0.7, 0.1, math.inf]
    good, bad = searcher._split()
    assert good.tolist() == [2] and bad.tolist() == [0, 1, 3]


@pytest.mark.parametrize("objectives", [1, 2])
def test_a_failed_trial_is_bad_at_the_levels_it_reported_before_it_failed(objectives):
    # Trial 0 is by far the best at resource 1, then crashes; the others are stopped at 1.
    # It used to stay in the good group at 1, where its reports were kept.
    searcher = TPESearcher({"x": uniform(0, 1)}, n_startup=3, gamma=0.34, seed=0)
    searcher.setup(None, 100, objectives)
    loss = [-100.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    value = (lambda v: v) if objectives == 1 else (lambda v: (v, v))
    for i, v in enumerate(loss):
        searcher.suggest(str(i))
        searcher.on_trial_result(str(i), 1, value(v))
    searcher.on_trial_complete("0", Outcome(TrialEnd.FAILED, None, 1, 9))
    for i, v in enumerate(loss[1:], start=1):
        searcher.on_trial_complete(str(i), Outcome(TrialEnd.STOPPED, value(v), 1, 9))
    twin = TPESearcher({"x": uniform(0, 1)}, n_startup=3, gamma=0.34, seed=1)
    twin.setup(None, 100, objectives)
    twin.restore(pickle.loads(pickle.dumps(searcher.state())))  # the level keeps trial 0's report
    for tpe in (searcher, twin):
        good, bad = tpe._split()
        # At level 1, n_good = ceil(0.34 * 6) = 3 of the five finite values.
        assert good.tolist() == [1, 2, 3] and bad.tolist() == [0, 4, 5]
        resource, values = tpe._model_level()
        assert resource == 1 and np.all(values[0] == math.inf)


def test_no_level_with_enough_values_uses_the_best_filled_one():
    searcher = make({"x": uniform(0, 1)}, seed=0, n_startup=3)
    for i in range(3):
        searcher.suggest(str(i))
    searcher.on_trial_complete("0", done(1.0, 1, TrialEnd.STOPPED, 9))
    searcher.on_trial_complete("1", done(2.0, 1, TrialEnd.STOPPED, 9))
    searcher.on_trial_complete("2", Outcome(TrialEnd.FAILED))
    assert searcher._model_level()[0] == 1


def test_conditional_parameters_are_sampled_under_their_option_and_learnt_per_branch():
    space = {"opt": choice([{"name": "sgd", "m": uniform(0, 1)}, {"name": "adam", "b": uniform(0, 1)}])}

    def loss(c):
        o = c["opt"]
        return abs(o["m"] - 0.8) if o["name"] == "sgd" else 0.5 + abs(o["b"] - 0.2)

    searcher = make(space, seed=1)
    configs = run(searcher, loss, 60)
    assert all(set(c["opt"]) == ({"name", "m"} if c["opt"]["name"] == "sgd" else {"name", "b"})
               for c in configs)
    late = configs[30:]
    assert sum(c["opt"]["name"] == "sgd" for c in late) >= 20
    assert np.median([abs(c["opt"]["m"] - 0.8) for c in late if c["opt"]["name"] == "sgd"]) < 0.1


def test_the_same_seed_and_events_give_the_same_suggestions():
    a, b, c = make(seed=7), make(seed=7), make(seed=8)
    assert run(a, mixed_loss, 25) == run(b, mixed_loss, 25) != run(c, mixed_loss, 25)


def test_state_round_trips_through_pickle_and_continues_the_same_search():
    searcher = make(seed=4)
    run(searcher, mixed_loss, 15)
    searcher.suggest("pending")
    searcher.on_trial_result("pending", 1, 0.3)
    twin = make(seed=99)
    twin.restore(pickle.loads(pickle.dumps(searcher.state())))
    assert repr(twin.state()) == repr(searcher.state())  # repr: nan == nan
    assert run(twin, mixed_loss, 5, start=100) == run(searcher, mixed_loss, 5, start=100)
    # A restored searcher does not add its warm start a second time on setup.
    clone = pickle.loads(pickle.dumps(searcher))
    clone.setup(None, 100)
    assert len(clone._ids) == len(searcher._ids)


def test_restore_refuses_another_searchers_state():
    other = HyperOptSearcher(CONDITIONAL, seed=0)
    other.setup(None, 10)
    with pytest.raises(ConfigError, match=r"cannot restore a state saved by 'another searcher'.*warm_start"):
        make().restore(other.state())
    state = make({"x": uniform(0, 1)}).state()
    with pytest.raises(ConfigError, match=r"parameters \['x'\], but the space has \['lr'"):
        make().restore(state)


def test_a_fork_with_an_added_parameter_keeps_the_old_trials():
    old = [({"x": x}, (x - 0.3) ** 2) for x in np.linspace(0, 1, 12)]
    with pytest.warns(UserWarning, match=r"fitted 12 of 12 .*'y' \(12\)"):
        searcher = make({"x": uniform(0, 1), "y": uniform(0, 1)}, seed=0, warm_start=old)
    assert len(searcher._ids) == 12
    # Twelve finished trials: the model is on from the first suggestion, and it uses x.
    xs = [c["x"] for c in run(searcher, lambda c: (c["x"] - 0.3) ** 2 + c["y"], 10)]
    assert np.median(np.abs(np.array(xs) - 0.3)) < 0.15


def test_a_fork_with_a_removed_and_a_narrowed_parameter():
    old = [({"x": x, "gone": 1}, (x - 0.3) ** 2) for x in np.linspace(0, 1, 11)]
    with pytest.warns(UserWarning) as record:
        searcher = make({"x": uniform(0, 0.5)}, seed=0, warm_start=old)
    message = str(record[0].message)
    assert "fitted 6 of 11" in message and "'gone' (11)" in message and "'x' (5)" in message
    assert len(searcher._ids) == 6


def test_a_warm_start_that_fits_exactly_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make({"x": uniform(0, 1)}, warm_start=[({"x": 0.5}, 1.0), ({"x": 0.2}, None)])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"gama": 0.2}, r"unknown option `gama=0.2`. Did you mean `gamma`\?"),
        ({"n_startup": 0}, r"`n_startup` is 0, but must be an int >= 1. Pass n_startup=10."),
        ({"gamma": 1.5}, r"^TPESearcher: `gamma` is 1.5, but must be in \(0, 1\]. Pass gamma=0.1.$"),
        ({"bandwidth": -1}, r"`bandwidth` is -1, but must be a finite number > 0. Pass bandwidth=0.1."),
        ({"bandwidth": float("inf")}, r"`bandwidth` is inf, but must be a finite number > 0"),
        ({"n_ei_candidates": 2.5}, r"`n_ei_candidates` is 2.5"),
        ({"seed": -1}, r"`seed` is -1"),
        ({"ordinal": 1}, r"`ordinal` is 1, but must be True or False"),
        ({"warm_start": [({"x": 1}, "nan")]}, r"`warm_start\[0\]` is \(\{'x': 1\}, 'nan'\)"),
        ({"space": {"x": grid([1, 2])}}, r"grid\(\) axes.*GridSearcher"),
    ],
)
def test_bad_options_are_refused_at_construction(kwargs, needle):
    kwargs = {"space": {"x": uniform(0, 1)}, **kwargs}
    with pytest.raises(ValueError, match=needle):
        TPESearcher(**kwargs)


def test_a_grid_from_the_tuner_is_refused_at_setup():
    with pytest.raises(ConfigError, match="GridSearcher"):
        TPESearcher().setup({"x": grid([1, 2])}, 10)


def test_a_space_of_constants_only_gives_its_constants():
    searcher = make({"x": 1, "nested": {"y": "a"}}, n_startup=1)
    assert run(searcher, lambda c: 1.0, 3) == [{"x": 1, "nested": {"y": "a"}}] * 3


def test_low_fidelity_levels_use_the_wider_bandwidth():
    searcher = make({"x": uniform(0, 1)}, seed=0, n_startup=1, bandwidth=0.1, discrete_bandwidth=0.2,
                    low_fidelity_bandwidth=0.3)
    for i in range(3):
        searcher.suggest(str(i))
    searcher.on_trial_complete("0", done(1.0, 1, TrialEnd.STOPPED, 9))
    assert searcher._bandwidth_at(1) == (0.3, 0.3)  # nothing has run its full budget yet
    searcher.on_trial_complete("1", done(0.5, 9, TrialEnd.STOPPED, 9))
    assert searcher._bandwidth_at(1) == (0.3, 0.3) and searcher._bandwidth_at(9) == (0.1, 0.2)
    plain = make({"x": uniform(0, 1)}, seed=0, bandwidth=0.1, discrete_bandwidth=0.4)
    run(plain, lambda c: c["x"], 3)  # single fidelity: no resource, no stopped trial
    assert plain._bandwidth_at(math.inf) == (0.1, 0.4)
    wide = make({"x": uniform(0, 1)}, n_startup=1, discrete_bandwidth=0.4, low_fidelity_bandwidth=0.2)
    wide.suggest("0")
    wide.on_trial_complete("0", done(1.0, 1, TrialEnd.STOPPED, 9))
    assert wide._bandwidth_at(1) == (0.2, 0.4)  # the wider of the two on discrete domains


def test_discrete_domains_have_their_own_bandwidth():
    from raytuner.search._parzen import ParzenEstimator
    from raytuner.search._tpe_space import EncodedSpace

    encoded = EncodedSpace({"x": uniform(0, 10), "k": randint(0, 11)})
    rows = np.array([[5.0, 5.0]] * 4)
    narrow = ParzenEstimator(encoded.dims, rows, np.ones(4), 1.0, 0.1, 0.1)
    wide = ParzenEstimator(encoded.dims, rows, np.ones(4), 1.0, 0.1, 0.3)
    assert narrow.sigma[0][0] == wide.sigma[0][0]  # the continuous kernel is the same
    assert wide.sigma[1][0] == pytest.approx(3 * narrow.sigma[1][0])  # the discrete one 3x wider
    default = ParzenEstimator(encoded.dims, rows, np.ones(4), 1.0, 0.1)
    assert default.sigma[1][0] == narrow.sigma[1][0]  # discrete_bandwidth defaults to bandwidth


def test_an_ordered_choice_is_modelled_by_rank_and_other_choices_stay_categorical():
    from raytuner.search._parzen import CategoricalDim, NumericDim
    from raytuner.search._tpe_space import EncodedSpace

    space = {"batch": choice([64, 16, 256, 32]), "act": choice(["relu", "tanh", "elu"]),
             "flag": choice([False, True, None]), "two": choice([1, 2]), "dup": choice([1, 1.0, 2])}
    encoded = EncodedSpace(space, ordinal=True)
    dims = dict(zip(encoded.labels, encoded.dims))
    assert dims["batch"] == NumericDim(-0.5, 3.5, q=1.0, grid_low=0.0, grid_high=3.0)
    assert all(isinstance(dims[k], CategoricalDim) for k in ("act", "flag", "two", "dup"))
    # Option indices in, ranks in the matrix, option indices out: 16 < 32 < 64 < 256.
    for index, rank in [(1, 0), (3, 1), (0, 2), (2, 3)]:
        row = encoded.encode({"batch": index, "act": 0, "flag": 0, "two": 0, "dup": 0})
        assert row[encoded.column["batch"]] == rank
        assert encoded.decode(np.array([encoded.column["batch"]]), np.array([float(rank)])) == {"batch": index}
    assert all(isinstance(d, CategoricalDim) for d in EncodedSpace(space, ordinal=False).dims)


def test_ordinal_choices_share_evidence_between_neighbouring_values():
    from raytuner.search._parzen import ParzenEstimator
    from raytuner.search._tpe_space import EncodedSpace

    widths = [512, 8, 128, 16, 64, 256, 32]  # listed out of order
    observed = [{"w": widths.index(64)}, {"w": widths.index(64)}, {"w": widths.index(8)}]
    masses = {}
    for ordinal in (True, False):
        encoded = EncodedSpace({"w": choice(widths)}, ordinal=ordinal)
        rows = np.array([encoded.encode(p) for p in observed])
        estimator = ParzenEstimator(encoded.dims, rows, np.ones(len(rows)), 1.0, 0.1)
        points = np.array([encoded.encode({"w": widths.index(w)}) for w in sorted(widths)])
        mass = np.exp(estimator.log_pdf(points))
        assert mass.sum() == pytest.approx(1.0)  # a distribution over the seven options
        masses[ordinal] = dict(zip(sorted(widths), mass))
    by_rank, by_category = masses[True], masses[False]
    # Unseen 32 and 128 lie next to 64, seen twice; unseen 256 and 512 lie far from it.
    assert by_rank[32] > 2 * by_rank[256] and by_rank[128] > 2 * by_rank[512]
    # As categories, every unseen option gets the same (prior) mass.
    assert by_category[32] == pytest.approx(by_category[256]) == pytest.approx(by_category[512])


def test_a_state_continues_with_the_encoding_it_was_saved_with():
    space = {"w": choice([32, 8, 16])}
    old = make(space, seed=1, ordinal=False)
    run(old, lambda c: c["w"], 12)
    state = old.state()
    twin = make(space, seed=5)  # ordinal by default: the saved matrix holds option indices
    twin.restore(state)
    assert twin.state()["ordinal"] is False
    assert run(twin, lambda c: c["w"], 5, start=50) == run(old, lambda c: c["w"], 5, start=50)
    with pytest.raises(ConfigError, match=r"TPESearcher: cannot restore state version 1; this version reads 2"):
        make(space).restore({**state, "version": 1})


def test_a_discrete_space_is_not_proposed_the_same_point_twice_while_new_ones_remain():
    space = {"a": choice([1, 2, 4, 8, 16]), "b": randint(0, 4), "act": choice(["relu", "tanh"])}  # 40 points
    loss = lambda c: abs(math.log2(c["a"]) - 2) + abs(c["b"] - 1) + (c["act"] == "tanh")  # noqa: E731
    distinct = {True: [], False: []}
    for avoid in distinct:
        for seed in range(4):
            configs = run(make(space, seed=seed, n_startup=5, avoid_repeats=avoid), loss, 25)
            distinct[avoid].append(len({tuple(sorted(c.items())) for c in configs}))
    assert distinct[True] == [25] * 4  # the start-up and the model both avoid repeats
    assert min(distinct[False]) < 25  # TPE left alone proposes the best point again and again


def test_avoiding_repeats_keeps_every_config_whole_in_a_conditional_space():
    space = {"opt": choice([{"name": "sgd", "m": choice([0.0, 0.5, 0.9])}, {"name": "adam"}]),
             "w": choice([8, 16, 32])}  # 12 points
    loss = lambda c: (c["opt"]["name"] == "adam") + abs(c["opt"].get("m", 0) - 0.5) + c["w"] / 32  # noqa: E731
    for seed in range(4):
        configs = run(make(space, seed=seed, n_startup=3), loss, 12)
        assert len({repr(c) for c in configs}) >= 10  # at most a couple of the 12 repeat
        for c in configs:  # a sub-space's parameters present exactly under its option
            assert set(c["opt"]) == ({"name", "m"} if c["opt"]["name"] == "sgd" else {"name"})


def test_repeats_finds_exact_rows_nan_included():
    from raytuner.search._tpe_space import EncodedSpace

    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, size=(300, 7)).astype(float)
    matrix[::3, 2] = np.nan  # inactive parameters
    rows = np.array([matrix[57], matrix[42], matrix[57] + [0, 0, 0, 0, 0, 0, 1e-9], matrix[1] * 0 - 1])
    assert EncodedSpace.repeats(matrix, rows).tolist() == [True, True, False, False]
    assert EncodedSpace.repeats(matrix[:0], rows).tolist() == [False] * 4


def test_a_trial_corrected_after_a_resume_is_learnt_at_the_config_it_ran():
    # Two seeds propose different first configs; the one whose proposal a resume corrects
    # then holds, for that trial, what the other proposed: its result counts there.
    ran = make(seed=1)
    config = ran.suggest("00000")
    restored = make(seed=2)
    assert restored.suggest("00000") != config
    assert restored.correct_config("00000", config)
    np.testing.assert_array_equal(restored.state()["matrix"], ran.state()["matrix"])  # NaN: inactive
    restored.on_trial_complete("00000", done(0.5))
    assert not restored.correct_config("00000", config)  # an ended trial keeps what it was credited with
    assert not restored.correct_config("00009", config)  # never proposed


def test_a_config_outside_the_space_is_not_taken_as_a_correction():
    searcher = make(space={"x": uniform(0, 1)}, seed=0)
    searcher.suggest("00000")
    proposed = searcher.state()["matrix"]
    assert not searcher.correct_config("00000", {"x": 3.0})
    assert not searcher.correct_config("00000", {})
    np.testing.assert_array_equal(searcher.state()["matrix"], proposed)
