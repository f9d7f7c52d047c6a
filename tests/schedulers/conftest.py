"""A synchronous fake controller that runs trials to a scheduler's decisions.

It plays the controller's side of the contract: N slots; a free slot first asks
``choose_trial_to_resume`` and otherwise starts a new trial; once the trial budget is spent
it calls ``on_search_finished``; after every call it ends what ``trials_to_stop`` returns.
Reports come from a seeded random choice among running trials, so trials interleave as
they would asynchronously. It checks the hot-path invariant on every report: nothing but
CONTINUE below the decision point announced after the trial's previous report.
"""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import dataclass, field
from typing import Callable

import pytest

from raytuner.schedulers import Decision, Scheduler


class Stalled(AssertionError):
    """Paused trials remain, but nothing runs and nothing can be resumed or started."""


@dataclass
class SimTrial:
    trial_id: str
    status: str = "running"
    resource: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    resumes: int = 0
    decisions: list[tuple[int, Decision]] = field(default_factory=list)


@dataclass
class SimRun:
    trials: dict[str, SimTrial]
    log: list[tuple[str, int, Decision]]
    """Every report, in order: (trial id, resource, decision)."""
    scheduler: Scheduler

    def max_resource_of(self, trial_id: str) -> int:
        return self.trials[trial_id].resource


def simulate(
    make: Callable[[], Scheduler],
    values: Callable[[str, int], float],
    num_trials: int,
    slots: int = 4,
    length: int | None = None,
    seed: int = 0,
    roundtrip_every: int = 0,
    max_reports: int = 200_000,
    steps: tuple[int, ...] = (1,),
) -> SimRun:
    """Run ``num_trials`` trials (ids t0, t1, ...) to the end under ``make()``.

    Args:
        values: the value a trial reports at a resource (lower is better).
        length: the trainable's own number of epochs (default: the scheduler's
            max_resource); at its last report a CONTINUE completes the trial.
        roundtrip_every: if > 0, every that many reports the scheduler is replaced by a
            fresh ``make()`` restored from a pickled ``state()``.
        steps: how far the resource moves between reports, drawn at random (a report
            every few epochs skips rungs); capped at ``length``.
    """
    scheduler = make()
    if length is None:
        length = int(math.ceil(scheduler.max_resource))
    rng = random.Random(seed)
    pending = [f"t{i}" for i in range(num_trials)]
    trials: dict[str, SimTrial] = {}
    running: list[str] = []
    paused: set[str] = set()
    point: dict[str, float] = {}
    log: list[tuple[str, int, Decision]] = []
    search_finished = False

    def drain() -> None:
        for trial_id in scheduler.trials_to_stop():
            assert trial_id in paused, f"trials_to_stop returned {trial_id}, which is not paused"
            paused.remove(trial_id)
            trials[trial_id].status = "stopped"

    def fill() -> None:
        nonlocal search_finished
        while len(running) < slots:
            trial_id = scheduler.choose_trial_to_resume()
            drain()
            if trial_id is not None:
                assert trial_id in paused, f"resumed {trial_id}, which is not paused"
                paused.remove(trial_id)
                running.append(trial_id)
                trial = trials[trial_id]
                trial.status = "running"
                trial.resumes += 1
                point[trial_id] = scheduler.decision_point(trial_id, trial.resource)
            elif pending:
                trial_id = pending.pop(0)
                trials[trial_id] = SimTrial(trial_id)
                scheduler.on_trial_add(trial_id)
                running.append(trial_id)
                point[trial_id] = scheduler.decision_point(trial_id, 0)
                drain()
            elif not search_finished:
                search_finished = True
                scheduler.on_search_finished()
                drain()
            else:
                return

    while True:
        fill()
        if not running:
            if paused:
                raise Stalled(f"stalled with paused trials {sorted(paused)}")
            break
        assert len(log) < max_reports, "too many reports"
        trial_id = rng.choice(running)
        trial = trials[trial_id]
        trial.resource = min(trial.resource + rng.choice(steps), length)
        value = values(trial_id, trial.resource)
        trial.history.append((trial.resource, value))
        decision = scheduler.on_result(trial_id, trial.resource, value)
        if trial.resource < point[trial_id]:
            assert decision is Decision.CONTINUE, (
                f"{trial_id} got {decision} at {trial.resource}, below its decision point "
                f"{point[trial_id]}"
            )
        log.append((trial_id, trial.resource, decision))
        trial.decisions.append((trial.resource, decision))
        if decision is Decision.CONTINUE:
            if trial.resource >= length:
                running.remove(trial_id)
                trial.status = "completed"
                scheduler.on_trial_complete(trial_id)
                drain()
            else:
                point[trial_id] = scheduler.decision_point(trial_id, trial.resource)
        elif decision is Decision.STOP:
            running.remove(trial_id)
            trial.status = "stopped"
        elif decision is Decision.COMPLETE:
            # The scheduler closed the trial itself: it is not told on_trial_complete.
            running.remove(trial_id)
            trial.status = "completed"
        else:
            running.remove(trial_id)
            paused.add(trial_id)
            trial.status = "paused"
        # As the controller does: apply the decision, then end what the scheduler gave up.
        drain()
        if roundtrip_every and len(log) % roundtrip_every == 0:
            saved = pickle.loads(pickle.dumps(scheduler.state()))
            scheduler = make()
            scheduler.restore(saved)
    return SimRun(trials=trials, log=log, scheduler=scheduler)


@pytest.fixture
def sim():
    """The fake controller loop: ``sim(make, values, num_trials, slots=..., ...)``."""
    return simulate


def iid_values(seed: int) -> Callable[[str, int], float]:
    """One i.i.d. uniform value per (trial, resource), reproducible."""
    cache: dict[tuple[str, int], float] = {}

    def values(trial_id: str, resource: int) -> float:
        key = (trial_id, resource)
        if key not in cache:
            cache[key] = random.Random(f"{seed}/{trial_id}/{resource}").random()
        return cache[key]

    return values


def curve_values(seed: int) -> Callable[[str, int], float]:
    """Learning curves: a per-trial quality plus a decaying 1/resource term and noise."""
    quality: dict[str, float] = {}

    def values(trial_id: str, resource: int) -> float:
        if trial_id not in quality:
            quality[trial_id] = random.Random(f"{seed}/{trial_id}").random()
        noise = random.Random(f"{seed}/{trial_id}/{resource}").gauss(0, 0.01)
        return quality[trial_id] + 1.0 / resource + noise

    return values


@pytest.fixture
def iid():
    return iid_values


@pytest.fixture
def curves():
    return curve_values
