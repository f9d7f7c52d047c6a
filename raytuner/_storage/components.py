"""The searcher and the scheduler in storage: as data where they can describe themselves.

A built-in component goes into experiment.json as its ``config()`` (readable, diffable,
safe to load) and is rebuilt from it on resume, then restored from the state snapshot
(``state.pkl``). Only what cannot be described is pickled into ``tuner.pkl``: a searcher or
scheduler of the user's own (or a built-in one whose space JSON cannot carry), and the
Tuner's settings, which hold ``stop=`` (possibly a function).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from raytuner import schedulers, search
from raytuner._formats import dumps
from raytuner._objectives import Objectives
from raytuner._storage.experiment import ExperimentStorage
from raytuner.errors import ConfigError, ExperimentError

#: experiment.json keys written here, beside the Tuner's own.
META_KEYS = ("searcher_config", "scheduler_config", "milestones")


def as_data(component: Any, rebuild: Callable[[Any], Any]) -> dict[str, Any] | None:
    """``component.config()`` as stored, if ``rebuild`` turns it back into the same class
    with the same config; None if the component must be pickled instead."""
    config = component.config()
    if config is None:
        return None
    stored = json.loads(dumps(config))
    try:
        rebuilt = rebuild(stored)
    except ConfigError:  # a user's subclass that inherited config(), under its own name
        return None
    return stored if type(rebuilt) is type(component) and rebuilt.config() == stored else None


def save(storage: ExperimentStorage, settings: Any, searcher: search.Searcher,
         scheduler: schedulers.Scheduler) -> dict[str, Any]:
    """Write ``tuner.pkl``; return what experiment.json records of the two components."""
    searcher_config = as_data(searcher, search.from_config)
    scheduler_config = as_data(scheduler, schedulers.from_config)
    storage.save_state("tuner", {
        "settings": settings,
        "searcher": searcher if searcher_config is None else None,
        "scheduler": scheduler if scheduler_config is None else None,
    })
    return {"searcher_config": searcher_config, "scheduler_config": scheduler_config,
            "milestones": scheduler.milestones()}


def load(storage: ExperimentStorage, meta: dict[str, Any]) -> tuple[Any, search.Searcher, schedulers.Scheduler]:
    """The settings, searcher and scheduler of an experiment, as :func:`save` left them
    (the searcher set up again; neither restored from ``state.pkl`` yet)."""
    saved = storage.load_state("tuner")
    if not isinstance(saved, dict) or "settings" not in saved or not all(key in meta for key in META_KEYS):
        raise ExperimentError(
            f"{storage.path} has no usable tuner.pkl, or was written by an earlier raytuner that did not record "
            "its searcher and scheduler as data, so they cannot be rebuilt. Only experiments started by "
            "raytuner.Tuner.fit() of this version can be resumed; rt.load() still reads its results."
        )
    settings = saved["settings"]
    objectives = Objectives.of(settings.metric, settings.mode)
    searcher = saved["searcher"]
    if searcher is None:
        searcher = search.from_config(meta["searcher_config"])
        setup_components(searcher, None, settings.num_trials, objectives)  # its space is part of its config
    scheduler = saved["scheduler"]
    if scheduler is None:
        scheduler = schedulers.from_config(meta["scheduler_config"])
    scheduler.set_objectives(list(objectives.metrics) or 1)  # before restore(): a saved state of another k is refused
    return settings, searcher, scheduler


def setup_components(searcher: search.Searcher, space: Any, num_trials: int, objectives: Objectives,
                     scheduler: schedulers.Scheduler | None = None) -> None:
    """Set a searcher up (and tell a scheduler the objectives), the one way the Tuner and
    resume do it: ``objectives=`` goes to ``setup`` only with several, so a searcher of
    one's own whose ``setup`` predates the argument keeps working with one objective."""
    if objectives.multi:
        searcher.setup(space, num_trials, objectives=list(objectives.metrics))
    else:
        searcher.setup(space, num_trials)
    if scheduler is not None:
        scheduler.set_objectives(list(objectives.metrics) or 1)
