"""PBT resumed from a saved state older than the trial records, at every pair of points.

The driver saves the searcher's and scheduler's state at most once a second; the trial
folders are written every turn. So a resume restores the scheduler from a state that may
be many events behind what the folders say, and the lifecycle's restore and reconcile must
bring the two together. Here a synthetic population runs through the lifecycle with the
real PBTScheduler; after every event the trials (the records: every write of that event
landed) and the saved state are kept. Then for each pair (state saved at k, records at
j >= k) a new lifecycle resumes as the driver does and runs to the end: every trial must
end COMPLETED at the full budget on one trajectory (a clone may skip ahead to its
donor's progress), with every launch a known kind. No
Ray; the crash harness (tests/integration/test_crash_harness.py) kills a real driver.
"""

from __future__ import annotations

import copy
import random

import pytest

from raytuner._driver import events as ev
from raytuner._driver.lifecycle import Lifecycle
from raytuner._storage.history import fold, is_marker
from raytuner._trial import TrialStatus
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import PBTScheduler
from raytuner.search import uniform

from tests.raytuner.lifecycle_fakes import ListSearcher, check_index, make, of, report, reported

TRIALS, STEPS = 4, 6


def pbt(synch: bool) -> PBTScheduler:
    return PBTScheduler(2, {"k": uniform(0, 100)}, max_resource=STEPS, synch=synch, seed=3)


def run(life: Lifecycle, rng: random.Random, every: int, trace: list | None = None, lines: dict | None = None) -> None:
    """Drive ``life`` to its end with two workers, as the controller and the harness's
    trainable would: the trial to report next is drawn by ``rng``; a report checkpoints at
    every ``every``-th iteration and at the last, and awaits a decision at the worker's
    ``decide_at``; a trial restarted at the budget returns at once; ``Drained`` once nothing
    runs. With ``trace``, the records and the saved state after every event are appended."""
    lines = {} if lines is None else lines
    running: dict[str, list] = {}  # trial id -> [worker, decide_at]
    workers = ["w0", "w1"]

    def handle(event):
        out = life.handle(event)
        for command in of(out, ev.AppendResults):
            lines.setdefault(command.trial_id, []).extend(command.rows)
        if trace is not None:
            trace.append((copy.deepcopy(life.trials), copy.deepcopy(life.state()), copy.deepcopy(lines)))
        return out

    for _ in range(1000):
        assert life.abort is None, life.abort
        for launch in of(handle(ev.Fill(idle=tuple(workers), pool_size=2)), ev.Launch):
            workers.remove(launch.worker)
            running[launch.trial_id] = [launch.worker, launch.decide_at]
        if not running:
            handle(ev.Drained())
            return
        trial_id = rng.choice(sorted(running))
        trial = life.trials[trial_id]
        i = trial.iteration + 1
        if i > STEPS:  # restarted at its budget (a clone of a donor there): it returns at once
            out = handle(reported(trial_id, exit=TrialExit(Signal.COMPLETED)))
        else:
            loss = (int(trial_id) % 3 + 1) / i + trial.config["k"] * 1e-3
            awaits = i >= running[trial_id][1]
            out = handle(reported(trial_id, report(i, loss, awaits=awaits, checkpoint=i % every == 0 or i == STEPS),
                                  exit=TrialExit(Signal.COMPLETED) if i == STEPS and not awaits else None))
        for deliver in of(out, ev.Deliver):
            running[trial_id][1] = deliver.decide_at
            if deliver.signal in (Signal.PAUSE, Signal.STOP, Signal.COMPLETED):
                handle(reported(trial_id, exit=TrialExit(deliver.signal)))
            elif i == STEPS:
                handle(reported(trial_id, exit=TrialExit(Signal.COMPLETED)))
        if life.trials[trial_id].status is not TrialStatus.RUNNING:
            workers.append(running.pop(trial_id)[0])
        check_index(life)
    raise AssertionError("the population did not finish in 1000 events")


def resume(trials, state, synch: bool) -> Lifecycle:
    """A lifecycle resumed as the driver resumes one (raytuner._driver.resume and run)."""
    scheduler = pbt(synch)
    scheduler.restore(state["scheduler"])
    life = make(scheduler=scheduler, searcher=ListSearcher(n=TRIALS), num_trials=TRIALS, max_concurrent=2)
    life = type(life)(life.settings, life.searcher, scheduler, trials=copy.deepcopy(trials),
                      next_id=state["next_id"], exploits=state["exploits"])
    life.reconcile(state["next_id"], state["closed"])
    return life


@pytest.mark.parametrize(("synch", "every", "seed"), [(True, 1, 0), (True, 2, 1), (False, 1, 1), (False, 2, 0)])
def test_a_population_resumed_from_any_older_saved_state_completes_every_trial(synch, every, seed):
    """Before the fixes: a synchronous round after the resume set the barrier at the
    trials' points, so none was ever resumed (all STOPPED at the end); the exploits a round
    decided during the resume waited, and a clone then copied its donor's final checkpoint."""
    trace: list = []
    first = make(scheduler=pbt(synch), searcher=ListSearcher(n=TRIALS), num_trials=TRIALS, max_concurrent=2)
    run(first, random.Random(seed), every, trace)
    assert all(t.status is TrialStatus.COMPLETED for t in first.trials.values())
    failures = []
    for j, (trials, _, lines) in enumerate(trace):
        for k in range(j + 1):
            life = resume(trials, trace[k][1], synch)
            after = copy.deepcopy(lines)
            run(life, random.Random(seed + j), every, lines=after)
            statuses = {t: trial.status for t, trial in life.trials.items()}
            if len(statuses) != TRIALS or any(s is not TrialStatus.COMPLETED for s in statuses.values()):
                failures.append((k, j, statuses, {t: trial.note for t, trial in life.trials.items()}))
                continue
            for trial_id, trial in life.trials.items():
                iterations = [r["iteration"] for r in fold(after[trial_id]).rows]  # a clone may skip ahead
                assert iterations == sorted(set(iterations)) and iterations[-1] == STEPS, (k, j, trial_id, iterations)
                reasons = {line["reason"] for line in after[trial_id] if is_marker(line)}
                assert reasons <= {"start", "promotion", "exploit", "resume"}, (k, j, reasons)
    assert not failures, f"{len(failures)} of {len(trace) * (len(trace) + 1) // 2} resumes, e.g. {failures[:3]}"
