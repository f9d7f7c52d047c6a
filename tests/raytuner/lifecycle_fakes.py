"""Fakes for driving the trial lifecycle with synthetic event streams (test_lifecycle.py,
test_trajectory.py): a searcher that proposes {"k": n}, a scheduler that follows a script,
and builders of reports and events."""

from __future__ import annotations

from typing import Any

from raytuner._formats import checkpoint_name
from raytuner._driver import events as ev
from raytuner._driver.lifecycle import Lifecycle, LifecycleSettings
from raytuner._trial import TrialStatus
from raytuner._worker.protocol import Event, Report
from raytuner.schedulers import Decision, FIFOScheduler, Scheduler
from raytuner.search import FINISHED, Outcome, Searcher


class ListSearcher(Searcher):
    """Proposes configs {"k": 0}, {"k": 1}, ... and records what it is told."""

    def __init__(self, n: int | None = None, *, wait: bool = False):
        self.space = {}
        self.n = n
        self.wait = wait
        self.results: list[tuple[str, float, float]] = []
        self.ends: dict[str, Outcome] = {}
        self.asked: list[str] = []

    def suggest(self, trial_id: str) -> Any:
        self.asked.append(trial_id)
        if self.wait:
            return None
        k = int(trial_id)
        if self.n is not None and k >= self.n:
            return FINISHED
        return {"k": k}

    def on_trial_result(self, trial_id: str, resource: float, value: float) -> None:
        self.results.append((trial_id, resource, value))

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        assert trial_id not in self.ends, f"trial {trial_id} closed twice"
        self.ends[trial_id] = outcome


class ScriptedScheduler(Scheduler):
    """Decides from a script {(trial_id, resource): Decision}; can resume paused trials at
    once; records every call it gets."""

    max_resource = 9

    def __init__(self, script: dict[tuple[str, float], Decision] | None = None, *, decide_every: float = 1,
                 resume: list[str] | None = None):
        self.script = script or {}
        self.decide_every = decide_every
        self.resume = list(resume or [])
        self.calls: list[tuple[str, str]] = []

    def on_trial_add(self, trial_id: str) -> None:
        self.calls.append(("add", trial_id))

    def on_result(self, trial_id: str, resource: float, value: float) -> Decision:
        decision = self.script.get((trial_id, resource), Decision.CONTINUE)
        if decision is Decision.PAUSE:
            self.paused = trial_id
        return decision

    def decision_point(self, trial_id: str, resource: float) -> float:
        return resource + self.decide_every

    def choose_trial_to_resume(self) -> str | None:
        return self.resume.pop(0) if self.resume and getattr(self, "paused", None) == self.resume[0] else None

    def on_trial_complete(self, trial_id: str) -> None:
        self.calls.append(("complete", trial_id))

    def on_trial_error(self, trial_id: str) -> None:
        self.calls.append(("error", trial_id))

    def on_trial_remove(self, trial_id: str) -> None:
        self.calls.append(("remove", trial_id))


def settings(**overrides: Any) -> LifecycleSettings:
    base = dict(metric="loss", mode="min", num_trials=4, max_concurrent=2, resource_attr=None, max_failures=0,
                fail_fast=False, checkpoints_to_keep=None, experiment_path="/exp")
    return LifecycleSettings(**{**base, **overrides})


def report(iteration: int, loss: float, *, awaits: bool = True, checkpoint: bool = False) -> Report:
    """A report; with ``checkpoint``, one whose worker stored a checkpoint under the name it
    gives (the iteration's)."""
    return Report(iteration, iteration, {"loss": loss}, float(iteration), 1000.0 + iteration,
                  checkpoint_name(iteration) if checkpoint else None, awaits)


def reported(trial_id: str, *reports: Report, exit: TrialExit | None = None) -> ev.Reported:
    return ev.Reported(trial_id, Event(list(reports), exit))


def of(commands: list[Any], *kinds: type) -> list[Any]:
    return [c for c in commands if isinstance(c, kinds)]


def check_index(life: Lifecycle) -> None:
    """The one index over trial state agrees with the trials, and runs with RUNNING."""
    for status in TrialStatus:
        assert set(life.ids(status)) == {t for t, trial in life.trials.items() if trial.status is status}
    assert set(life._runs) == set(life.ids(TrialStatus.RUNNING))


def make(scheduler: Scheduler | None = None, searcher: Searcher | None = None, stored: Any = None,
         carry_out: Any = None, **kw: Any) -> Lifecycle:
    return Lifecycle(settings(**kw), searcher or ListSearcher(), scheduler or FIFOScheduler(), clock=lambda: 5.0,
                     stored=stored, carry_out=carry_out)
