"""Bad Tuner arguments fail at construction, before Ray starts or any trial runs."""

import threading

import pytest

import raytuner as rt
from raytuner.schedulers import ASHAScheduler, FIFOScheduler, HyperbandScheduler, MedianStoppingScheduler
from raytuner.search import GridSearcher, RandomSearcher


def train(config):
    rt.report({"loss": config["x"]})


SPACE = {"x": rt.uniform(0, 1)}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "minimize"}, r"Tuner: `mode` is .minimize., but must be .min. or .max."),
        ({"num_trials": 0}, r"Tuner: `num_trials` is 0, but must be an int >= 1"),
        ({"num_trials": 2.5}, r"`num_trials` is 2.5, but must be an int >= 1"),
        ({"max_concurrent": 0}, r"`max_concurrent` is 0, but must be"),
        ({"max_failures": -1}, r"`max_failures` is -1, but must be an int >= 0"),
        ({"time_budget_s": 0}, r"`time_budget_s` is 0, but must be"),
        ({"verbose": 5}, r"`verbose` is 5, but must be 0, 1 or 2"),
        ({"resources": {"cpu": -1}}, r"`resources\['cpu'\]` is -1, but must be a number >= 0"),
        ({"resources": {"gpu": 1.5}}, r"fraction of one GPU"),
        ({"name": "../../etc"}, r"not a valid experiment name"),
        ({"stop": 3}, r"`stop` must be a dict"),
        ({"gpu_memory_fraction": 2}, r"`gpu_memory_fraction` is 2, but must be"),
        ({"checkpoint_interval_s": -1}, r"`checkpoint_interval_s` is -1, but must be a number of seconds >= 0"),
        ({"checkpoint_interval_s": float("inf")}, r"`checkpoint_interval_s` is inf, but must be"),
        ({"checkpoint_interval_s": "1m"}, r"`checkpoint_interval_s` is '1m', but must be"),
        ({"checkpoint_interval_s": 60, "checkpoints_to_keep": None},
         r"`checkpoint_interval_s` is 60, but must be None or 0 with checkpoints_to_keep=None\. .*pass checkpoints_to_keep"),
        ({"scheduler": "asha"}, r"`scheduler` must be a schedulers.Scheduler"),
        ({"searcher": "tpe"}, r"`searcher` must be a search.Searcher"),
        ({"metric": None, "scheduler": ASHAScheduler(max_resource=9)}, r"ASHAScheduler needs a metric"),
        ({"space": None}, r"No search space"),
        ({"searcher": RandomSearcher(SPACE)}, r"Two search spaces"),
        ({"resource_attr": "epoch", "scheduler": ASHAScheduler(max_resource=9, resource_attr="step")}, r"Give it in one place"),
        ({"callbacks": [print]}, r"`callbacks` must hold raytuner.Callback"),
    ],
)
def test_bad_arguments_are_named_with_the_fix(kwargs, match):
    args = {"space": SPACE, "metric": "loss", **kwargs}
    with pytest.raises(rt.ConfigError, match=match):
        rt.Tuner(train, **args)


class _ResourceOnlyScheduler(FIFOScheduler):
    """A user's scheduler that, like FIFO, never compares values."""


class _LearningSearcher(RandomSearcher):
    """A user's searcher that learns from values, though built on random search."""

    needs_metric = True


def test_whether_a_metric_is_required_is_the_components_own_statement():
    rt.Tuner(train, space=SPACE, scheduler=_ResourceOnlyScheduler(max_resource=3))  # no metric: fine
    with pytest.raises(rt.ConfigError, match=r"_LearningSearcher learns from a metric: pass `metric=`"):
        rt.Tuner(train, space=SPACE, searcher=_LearningSearcher())
    assert [c.needs_metric for c in (FIFOScheduler, RandomSearcher, GridSearcher)] == [False] * 3
    assert all(c.needs_metric for c in (ASHAScheduler, HyperbandScheduler, MedianStoppingScheduler))
    assert rt.HyperOptSearcher.needs_metric


def test_nested_spaces_with_constants_pass():
    rt.Tuner(train, space={"x": rt.uniform(0, 1), "y": {"z": "fixed", "w": [1, 2]}}, metric="loss")


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"x": rt.uniform(0, 1), "y": {"w": [rt.uniform(0, 1)]}}, r"space\['y'\]\['w'\]\[0\]"),
    ],
)
def test_invalid_space_fails_before_anything_runs(space, match):
    with pytest.raises(ValueError, match=match):
        rt.Tuner(train, space=space, metric="loss")


def test_bad_domain_bounds_fail_where_the_space_is_written():
    with pytest.raises(ValueError, match=r"uniform\(low=2, high=1\)"):
        rt.uniform(2, 1)


def test_unpicklable_trainable_names_what_it_captures():
    lock = threading.Lock()

    def train_with_lock(config):
        with lock:
            rt.report({"loss": 1.0})

    with pytest.raises(rt.ConfigError, match=r"cannot be pickled.*lock"):
        rt.Tuner(train_with_lock, space=SPACE, metric="loss")


def test_grid_space_picks_grid_search_and_repeats_the_grid():
    tuner = rt.Tuner(train, space={"x": rt.grid([1, 2, 3])}, num_trials=2)
    assert isinstance(tuner._searcher, GridSearcher)
    assert tuner._searcher.num_trials == 6


def test_a_scripts_experiments_are_named_after_the_script(tmp_path):
    """Two examples that both call their function `train` are told apart in `raytuner ls`."""
    import subprocess
    import sys

    script = tmp_path / "keras_digits.py"
    script.write_text("from raytuner._tuner import _default_name\n\ndef train(config):\n    pass\n\n"
                      "def helper():\n    pass\n\nprint(_default_name(train))\n"
                      "import json\nprint(_default_name(json.dumps))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["keras_digits", "dumps"]  # a library function: its own name


def test_a_storage_path_through_a_file_is_refused_when_the_tuner_is_built(tmp_path):
    (tmp_path / "afile").write_text("")
    for root in (tmp_path / "afile", tmp_path / "afile" / "below"):
        with pytest.raises(rt.errors.ConfigError, match=r"`storage_path` is .*afile.*is a file, not a folder"):
            rt.Tuner(train, space={"x": 1.0}, storage_path=root)
    rt.Tuner(train, space={"x": 1.0}, storage_path=tmp_path / "new" / "folder")  # made when it runs


@pytest.mark.parametrize(("metric", "warned"), [("val_accuracy", True), ("auc", True), ("val_f1_score", True),
                                                 ("val_loss", False), ("mae", False), (["loss", "acc"], True),
                                                 ("map_size", False), ("accumulated_loss", False)])
def test_a_left_out_mode_minimises_and_warns_for_a_metric_named_to_be_maximised(metric, warned, recwarn):
    tuner = rt.Tuner(train, space={"x": 1.0}, metric=metric)
    said = [str(w.message) for w in recwarn.list if "will be minimised" in str(w.message)]
    assert bool(said) == warned, said
    assert tuner._settings["mode"] == ("min" if isinstance(metric, str) else ["min", "min"])
    rt.Tuner(train, space={"x": 1.0}, metric=metric, mode="min" if isinstance(metric, str) else ["min", "min"])
    assert len([w for w in recwarn.list if "will be minimised" in str(w.message)]) == len(said)  # explicit: quiet


@pytest.mark.parametrize(("seed", "match"), [
    (0, r"`seed=0` seeds the default searcher, but `searcher=` is given \(RandomSearcher\), so it would be ignored\. "
        r"Seed the searcher itself, e\.g\. searcher=RandomSearcher\(seed=0\)"),
    ("abc", r"Tuner: `seed` is 'abc', but must be a non-negative int or None"),
    (-5, r"Tuner: `seed` is -5"),
])
def test_a_seed_the_tuner_cannot_use_is_refused(seed, match):
    searcher = RandomSearcher() if isinstance(seed, int) and seed >= 0 else None
    with pytest.raises(rt.ConfigError, match=match):
        rt.Tuner(train, space=SPACE, metric="loss", searcher=searcher, seed=seed)


def test_a_searcher_is_left_as_it_was_by_a_tuner_refused_or_never_run():
    """The Tuner sets up a copy to check it: the searcher itself takes no space until a
    fit() runs with it, so another Tuner may have it, with another space."""
    searcher = rt.TPESearcher(seed=0)
    with pytest.raises(rt.ConfigError, match="PBTScheduler changes the trials' configs"):
        rt.Tuner(train, space=SPACE, metric="loss", searcher=searcher,
                 scheduler=rt.PBTScheduler(perturbation_interval=2, mutations={"x": rt.uniform(0, 1)}))
    rt.Tuner(train, space=SPACE, metric="loss", searcher=searcher)
    rt.Tuner(train, space={"y": rt.uniform(0, 1)}, metric="loss", searcher=searcher)
    assert searcher.space is None


def test_a_searcher_or_scheduler_that_ran_an_experiment_is_refused_naming_it():
    from raytuner._tuner_checks import mark_used

    searcher, scheduler = GridSearcher(), ASHAScheduler(max_resource=9)
    mark_used(searcher, "/results/first")
    with pytest.raises(rt.ConfigError, match=r"`searcher` \(GridSearcher\) already ran the experiment at "
                                             r"/results/first, and holds its trials: a searcher serves one "
                                             r"experiment\. Pass a new one, e\.g\. searcher=GridSearcher\(\.\.\.\)\. "
                                             r"To carry on with that experiment, raytuner\.Tuner\.resume\('/results/first', "
                                             r"trainable=train\)"):
        rt.Tuner(train, space={"x": rt.grid([1, 2])}, metric="loss", searcher=searcher)
    mark_used(scheduler, "/results/first")
    with pytest.raises(rt.ConfigError, match=r"`scheduler` \(ASHAScheduler\) already ran the experiment at "):
        rt.Tuner(train, space=SPACE, metric="loss", scheduler=scheduler)


def test_a_scheduler_is_left_as_it_was_by_a_tuner_never_run():
    """A Tuner of two objectives, built and not run, does not leave the scheduler set to two:
    the next Tuner, of one objective, takes it (it was refused as a resume of another kind)."""
    scheduler = ASHAScheduler(max_resource=9)
    rt.Tuner(train, space=SPACE, metric=["loss", "size"], scheduler=scheduler)
    tuner = rt.Tuner(train, space=SPACE, metric="loss", scheduler=scheduler)
    assert scheduler.num_objectives == 1
    tuner._set_up()  # as fit() does first
    assert scheduler.num_objectives == 1


def test_pb2_with_ray_tunes_bounds_list_is_refused_when_the_tuner_is_built():
    """The audit's repro: mutations={"lr": [1e-4, 1e-1]} over a loguniform lr trained with
    the two ends only, never with the GP."""
    pb2 = rt.PB2Scheduler(perturbation_interval=2, max_resource=12, mutations={"lr": [1e-4, 1e-1]})
    with pytest.raises(rt.ConfigError, match=r"`mutations\['lr'\]` is \[0.0001, 0.1\].*Ray Tune's PB2 takes "
                                             r"hyperparam_bounds.*mutations=\{'lr': rt.loguniform\(0.0001, 0.1\)\}"):
        rt.Tuner(train, space={"lr": rt.loguniform(1e-4, 1e-1)}, metric="loss", num_trials=4, scheduler=pb2)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"scheduler": ASHAScheduler(max_resource=9, resource_attr="loss")},
     r"^ASHAScheduler: `resource_attr` is 'loss', but must be a report key other than the Tuner's `metric`\. "
     r"ASHAScheduler's resource_attr='loss' and metric='loss' name the same key.*Pass resource_attr=None to count "
     r"reports, or report the progress under its own key"),
    ({"resource_attr": "loss"}, r"^Tuner: `resource_attr` is 'loss', .* resource_attr='loss' and metric='loss'"),
    ({"resource_attr": "params", "metric": ["loss", "params"], "searcher": rt.TPESearcher()},
     r"^Tuner: `resource_attr` is 'params', but must be a report key that is none of the Tuner's metrics "
     r"\['loss', 'params'\]\. resource_attr='params' and metric=\['loss', 'params'\]"),
])
def test_a_resource_attr_that_is_the_metric_is_refused_when_the_tuner_is_built(kwargs, match):
    """It failed after a trial's second report, advising to report the epoch as `loss`."""
    with pytest.raises(rt.ConfigError, match=match):
        rt.Tuner(train, **{"space": SPACE, "metric": "loss", "num_trials": 4, **kwargs})


def test_promotion_asha_warns_when_the_tuner_is_built_that_no_trial_may_reach_max_resource():
    scheduler = ASHAScheduler(max_resource=27, reduction_factor=3, variant="promotion")
    with pytest.warns(UserWarning, match=r"with 20 trials: .* floor\(20/3\*\*3\) = 0: no trial may train") as seen:
        rt.Tuner(train, space=SPACE, metric="loss", num_trials=20, scheduler=scheduler)
    assert seen[0].filename == __file__  # the user's Tuner(...) line


def test_a_searchers_setup_warning_is_said_once_when_the_tuner_is_built():
    """The Tuner sets up a copy when built and the searcher itself when fit() starts: the
    second setup says nothing again."""
    import warnings

    searcher = rt.TPESearcher(seed=0, warm_start=[({"x": 5.0}, 1.0), ({"x": 0.5}, 0.5)])
    with pytest.warns(UserWarning, match=r"fitted 1 of 2 warm-start observations") as said:
        tuner = rt.Tuner(train, space=SPACE, metric="loss", searcher=searcher)
    assert len(said) == 1
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        tuner._set_up()  # as fit() does first
    assert [str(w.message) for w in again] == []
