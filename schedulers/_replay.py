"""Replaying the config schedule that PBT found for one trial, on one trial from scratch."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from raytuner.errors import ConfigError, invalid, refuse_unknown_keywords

from ._base import Decision, Exploit, Scheduler, Value
from ._pbt import COMBINES
from ._trials import ResourceOrder
from ._validation import check_resource_attr, is_number


_FIX = "Pass PBTReplay(results.path, results.best.trial_id), or schedule=[[0, config], ...]."


def _check_source(owner: str, experiment_path: Any, trial_id: Any) -> tuple[Any, str]:
    """``(folder, trial_id)`` of a replay read from an experiment, each argument checked on
    its own; a ``Results`` (``rt.load(path)``) stands for its folder, ``.path``."""
    path = getattr(experiment_path, "path", experiment_path)
    if not isinstance(path, (str, os.PathLike)):
        raise invalid(owner, "experiment_path", experiment_path,
                      "the PBT experiment's folder (a path, or its rt.load Results)", _FIX)
    if not isinstance(trial_id, str):
        raise invalid(owner, "trial_id", trial_id, "a trial id string such as '00000'", _FIX)
    return path, trial_id


class PBTReplay(Scheduler):
    """Re-run the config schedule that produced one trial's model in a PBT experiment, as a
    single trial trained from scratch (the way Ray Tune's ``PopulationBasedTrainingReplay``
    replays its policy log, but from the lineage the experiment stored).

    The schedule follows the trial back through its donors (``Results.schedule``): the
    donor's configs up to the report it was cloned at, then the trial's own. The replayed
    trial starts with the first config; when its resource reaches the next change, it is
    PAUSEd and relaunched from its own checkpoint there with the next config (an
    :class:`Exploit` whose donor is itself). The trainable must checkpoint at every
    change (at every report is simplest; the Keras callback does at every decision point).

    Args:
        experiment_path: The PBT experiment's folder (or ``raytuner.load`` path), or the
            ``Results`` that ``raytuner.load`` returned for it.
        trial_id: The trial whose model to reproduce (e.g. ``results.best.trial_id``).
        schedule: Instead of the two above: ``[[resource, config], ...]``, the first at 0.
        resource_attr: The report key holding the resource (default: the experiment's).

    Example:
        >>> from raytuner.schedulers import PBTReplay
        >>> replay = PBTReplay(schedule=[[0, {"lr": 0.1}], [4, {"lr": 0.05}]])
        >>> replay.space, replay.decision_point("00000", 0)
        ({'lr': 0.1}, 4)

    Run it with ``rt.Tuner(train, space=replay.space, scheduler=replay, num_trials=1,
    metric=..., mode=...)``.
    """

    changes_configs = True
    requires_checkpoints = True
    needs_metric = False

    @refuse_unknown_keywords
    def __init__(self, experiment_path: str | os.PathLike[str] | None = None, trial_id: str | None = None, *,
                 schedule: Sequence[Sequence[Any]] | None = None, resource_attr: str | None = None) -> None:
        owner = type(self).__name__
        if schedule is None:
            experiment_path, trial_id = _check_source(owner, experiment_path, trial_id)
            from raytuner._storage.lineage import recorded_schedule  # reads files: not needed to rebuild from data

            schedule, recorded_attr = recorded_schedule(experiment_path, trial_id)
            resource_attr = resource_attr if resource_attr is not None else recorded_attr
        if (not isinstance(schedule, Sequence) or not schedule
                or not all(isinstance(s, Sequence) and len(s) == 2 and is_number(s[0]) and isinstance(s[1], Mapping)
                           for s in schedule)
                or schedule[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(schedule, schedule[1:]))):
            raise invalid(owner, "schedule", schedule, "[[0, config], [resource, config], ...] with increasing resources",
                          "Pass what Results.schedule() lists, or build it with PBTReplay(path, trial_id).")
        check_resource_attr(owner, resource_attr)
        self.experiment_path = None if experiment_path is None else str(experiment_path)
        self.trial_id = trial_id
        self.schedule = [[s[0], dict(s[1])] for s in schedule]
        self.resource_attr = resource_attr
        self._trial: str | None = None
        self._next = 1  # the index of the next change
        self._paused = False
        self._order = ResourceOrder(owner, resource_attr)
        self._pending: list[Exploit] = []

    @property
    def space(self) -> dict[str, Any]:
        """The first config, as the Tuner's space."""
        return dict(self.schedule[0][1])

    def __repr__(self) -> str:
        # Not the base's call from config(): a schedule may hold hundreds of configs.
        return f"PBTReplay({len(self.schedule)} configs, changes at {[s[0] for s in self.schedule[1:]]})"

    def _config(self) -> dict[str, Any]:
        return {"experiment_path": self.experiment_path, "trial_id": self.trial_id, "schedule": self.schedule,
                "resource_attr": self.resource_attr}

    def milestones(self) -> dict[str, Any]:
        return {"kind": "schedule", "levels": [s[0] for s in self.schedule[1:]], "pauses": True,
                "max_resource": self.max_resource}

    def check_experiment(self, space: Mapping[str, Any] | None, searcher: Any, num_trials: int) -> None:
        owner = type(self).__name__
        if num_trials != 1:
            raise invalid(owner, "num_trials", num_trials, "1", "A replay trains one trial: pass num_trials=1.")
        if space is not None and dict(space) != self.space:
            raise ConfigError(f"{owner} starts from the recorded first config {self.space!r}, but the space is "
                              f"{dict(space)!r}. Pass space=replay.space.")
        from raytuner.search import GridSearcher, RandomSearcher

        if not isinstance(searcher, (RandomSearcher, GridSearcher)):
            raise ConfigError(f"{owner} sets the configs itself; it combines with {COMBINES} only (the default). "
                              f"Leave `searcher=` out instead of passing {type(searcher).__name__}.")

    def on_trial_add(self, trial_id: str) -> None:
        if self._trial is None:
            self._trial = trial_id
        elif trial_id != self._trial:
            raise ConfigError(f"{type(self).__name__} replays one trial, but a second ({trial_id}) started. "
                              "Pass num_trials=1 to the Tuner.")

    def on_trial_restore(self, trial_id: str, config: Mapping[str, Any], paused: bool,
                         resource: float | None = None) -> None:
        self.on_trial_add(trial_id)
        self._paused = paused
        self._order.resumed(trial_id)

    def on_result(self, trial_id: str, resource: float, value: Value) -> Decision:
        self.on_trial_add(trial_id)
        self._order.advance(trial_id, resource)
        # `>=`: the change applies from its resource on; a report that jumps past it applies it there.
        if self._next < len(self.schedule) and resource >= self.schedule[self._next][0]:
            self._pending.append(Exploit(trial_id, trial_id, dict(self.schedule[self._next][1])))
            self._next += 1
            self._paused = True
            self._order.resumed(trial_id)
            return Decision.PAUSE
        return Decision.CONTINUE

    def decision_point(self, trial_id: str, resource: float) -> float:
        if self._next >= len(self.schedule):
            return math.inf
        level = self.schedule[self._next][0]
        return level if level > resource else resource

    def choose_trial_to_resume(self) -> str | None:
        if not self._paused:
            return None
        self._paused = False
        return self._trial

    def exploits(self) -> list[Exploit]:
        pending, self._pending = self._pending, []
        return pending

    def state(self) -> dict[str, Any]:
        return {"trial": self._trial, "next": self._next, "paused": self._paused,
                "resource_order": self._order.state(),
                "pending": [(e.trial_id, e.donor, e.config) for e in self._pending]}

    def restore(self, state: dict[str, Any]) -> None:
        self._trial, self._next, self._paused = state["trial"], state["next"], state["paused"]
        self._order.restore(state["resource_order"])
        self._pending = [Exploit(*e) for e in state["pending"]]
