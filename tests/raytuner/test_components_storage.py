"""Searcher and scheduler in storage: configs in experiment.json, a pickle only for the rest."""

from __future__ import annotations

import pickle

import pytest

import raytuner as rt
from raytuner._driver.settings import ExperimentSettings
from raytuner._driver.stop import StopCriteria
from raytuner._storage import components
from raytuner._storage.experiment import ExperimentStorage
from raytuner.errors import ExperimentError
from raytuner.schedulers import ASHAScheduler, FIFOScheduler, Scheduler
from raytuner.search import GridSearcher, RandomSearcher

SPACE = {"x": rt.uniform(0, 1), "g": rt.grid([1, 2])}


def settings(num_trials: int = 2) -> ExperimentSettings:
    return ExperimentSettings(
        name="exp", metric="loss", mode="min", num_trials=num_trials, max_concurrent=1, resources={"cpu": 1},
        stop=StopCriteria(lambda trial_id, result: False, "loss", "min"), time_budget_s=None,
        resource_attr=None, max_failures=0, fail_fast=False, checkpoints_to_keep=1,
        gpu_memory_fraction=None, verbose=0,
    )


def round_trip(tmp_path, searcher, scheduler, space=SPACE):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    searcher.setup(space, num_trials=2)
    meta = {"name": "exp", **components.save(storage, settings(), searcher, scheduler)}
    storage.write_experiment(meta)
    return storage, storage.read_experiment()


def test_built_in_components_are_stored_as_data_and_rebuilt(tmp_path):
    searcher, scheduler = GridSearcher(seed=3), ASHAScheduler(max_resource=9, variant="promotion")
    storage, meta = round_trip(tmp_path, searcher, scheduler)
    assert meta["searcher_config"]["type"] == "GridSearcher"
    assert meta["scheduler_config"] == scheduler.config()
    assert meta["milestones"]["levels"] == [1, 3]
    pickled = pickle.loads((storage.path / "tuner.pkl").read_bytes())
    assert pickled["searcher"] is None and pickled["scheduler"] is None  # only the settings (stop=)
    loaded_settings, rebuilt, rebuilt_scheduler = components.load(storage, meta)
    assert loaded_settings.num_trials == 2 and loaded_settings.stop
    assert type(rebuilt_scheduler) is ASHAScheduler and rebuilt_scheduler.config() == scheduler.config()
    # Set up again from its own config: the same grid, the same trial count, the same configs.
    assert rebuilt.num_trials == searcher.num_trials == 4
    rebuilt.restore(searcher.state())
    assert [rebuilt.suggest(str(i)) for i in range(4)] == [searcher.suggest(str(i)) for i in range(4)]


class Patience(Scheduler):
    """A scheduler of the user's own: it cannot describe itself, so it is pickled."""

    def on_result(self, trial_id, resource, value):
        return rt.schedulers.Decision.CONTINUE


class SeededRandom(RandomSearcher):
    """A user's subclass of a built-in searcher: its inherited config() does not rebuild it."""


def test_what_cannot_be_described_is_pickled(tmp_path):
    storage, meta = round_trip(tmp_path, SeededRandom(seed=1), Patience(), {"x": rt.uniform(0, 1)})
    assert meta["searcher_config"] is None and meta["scheduler_config"] is None
    assert meta["milestones"]["kind"] == "none"
    _, searcher, scheduler = components.load(storage, meta)
    assert type(searcher) is SeededRandom and type(scheduler) is Patience


def test_an_experiment_without_component_configs_cannot_be_resumed(tmp_path):
    storage, meta = round_trip(tmp_path, RandomSearcher(seed=1), FIFOScheduler(), {"x": rt.uniform(0, 1)})
    del meta["searcher_config"]  # as an earlier raytuner wrote it
    with pytest.raises(ExperimentError, match=r"did not record its searcher and scheduler as data.*rt.load\(\)"):
        components.load(storage, meta)


@pytest.mark.parametrize("scheduler", [
    rt.PBTScheduler(perturbation_interval=2, mutations={"x": rt.uniform(0, 1), "g": [1, 2]}, synch=True, seed=4),
    rt.PB2Scheduler(perturbation_interval=3, mutations={"x": rt.uniform(0, 1)}, max_resource=12, seed=5),
    rt.PBTReplay(schedule=[[0, {"x": 0.5, "g": 1}], [4, {"x": 0.25, "g": 2}]]),
], ids=lambda s: type(s).__name__)
def test_population_schedulers_are_stored_as_data_and_rebuilt_with_their_state(tmp_path, scheduler):
    searcher = RandomSearcher(seed=1)
    space = scheduler.space if isinstance(scheduler, rt.PBTReplay) else {"x": rt.uniform(0, 1), "g": rt.choice([1, 2])}
    scheduler.check_experiment(space, searcher, 1 if isinstance(scheduler, rt.PBTReplay) else 2)
    scheduler.on_trial_add("00000")
    scheduler.on_trial_config("00000", {"x": 0.5, "g": 1})
    storage, meta = round_trip(tmp_path, searcher, scheduler, space)
    assert meta["scheduler_config"] == scheduler.config()
    assert meta["scheduler_config"]["type"] == type(scheduler).__name__
    assert pickle.loads((storage.path / "tuner.pkl").read_bytes())["scheduler"] is None
    assert meta["milestones"] == scheduler.milestones()
    _, _, rebuilt = components.load(storage, meta)
    assert type(rebuilt) is type(scheduler) and rebuilt.config() == scheduler.config()
    rebuilt.restore(scheduler.state())  # a resumed driver's state.pkl fits the rebuilt scheduler
    assert rebuilt.state() == scheduler.state()
