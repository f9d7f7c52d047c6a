"""A resume from a saved state older than the trial records, at every pair of points.

The driver saves the searcher's and scheduler's state at most once a second; the trial
folders are written every turn. So a resume restores the scheduler from a state that may
be many events behind what the folders say, and the lifecycle's restore and reconcile must
bring the two together. Here a synthetic population runs through the lifecycle with a real
scheduler (PBT, synchronous and not; Hyperband; ASHA's promotion variant); after every
event the trials (the records: every write of that event landed), their results.jsonl lines
and the saved state are kept. Then for each pair (state saved at k, records at j >= k) a new
lifecycle resumes as the driver does (:func:`raytuner._driver.resume.since_snapshot`, then
``reconcile``) and runs to the end. Every trial must end, none left paused when nothing
more can run (the scheduler never lost track of it), each on one trajectory, COMPLETED
only at the full budget; under PBT every trial COMPLETED (a clone may skip ahead to its
donor's progress). No Ray; the crash harness (tests/integration/test_crash_harness.py)
kills a real driver.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from raytuner._driver import events as ev
from raytuner._driver.lifecycle import Lifecycle
from raytuner._driver.resume import decided_before, since_snapshot, undecided
from raytuner._storage.history import fold, is_marker
from raytuner._trial import TrialStatus
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import ASHAScheduler, FIFOScheduler, HyperbandScheduler, PBTScheduler, Scheduler
from raytuner.search import TPESearcher, uniform

from tests.raytuner.lifecycle_fakes import ListSearcher, check_index, of, report, reported, settings

PAUSED_AT_THE_END = "paused when the experiment ended"


@dataclasses.dataclass
class Case:
    scheduler: Callable[[], Scheduler]
    trials: int
    steps: int
    every: int  # a report checkpoints at every every-th iteration (and at the last)
    seed: int  # the order in which the running trials report
    levels: frozenset = frozenset()  # where the scheduler may stop a trial short of the budget (none: anywhere)

    def lifecycle(self, clock, scheduler: Scheduler | None = None, **restored) -> Lifecycle:
        return Lifecycle(settings(num_trials=self.trials), ListSearcher(n=self.trials), scheduler or self.scheduler(),
                         clock=clock, **restored)


def run(case: Case, life: Lifecycle, rng: random.Random, clock, trace: list | None = None,
        lines: dict | None = None) -> None:
    """Drive ``life`` to its end with two workers, as the controller and a trainable would:
    the trial to report next (or whose exit, once told to end, lands next) is drawn by
    ``rng``; a report awaits a decision at the worker's ``decide_at``; a trial restarted at
    its budget returns at once; ``Drained`` once nothing runs. With ``trace``, the records,
    lines and saved state after every event are kept."""
    lines = {} if lines is None else lines
    running: dict[str, list] = {}  # trial id -> [worker, decide_at, the exit on its way or None]
    workers = ["w0", "w1"]

    def handle(event):
        out = life.handle(event)
        for command in of(out, ev.AppendResults):
            lines.setdefault(command.trial_id, []).extend(command.rows)
        if trace is not None:
            trace.append((copy.deepcopy(life.trials), copy.deepcopy(lines), copy.deepcopy(life.state())))
        return out

    for _ in range(1000):
        assert life.abort is None, life.abort
        for launch in of(handle(ev.Fill(idle=tuple(workers), pool_size=2)), ev.Launch):
            workers.remove(launch.worker)
            running[launch.trial_id] = [launch.worker, launch.decide_at, None]
        if not running:
            handle(ev.Drained())
            return
        # The next to land: a running trial's report, or the exit of one told to end (so
        # other trials' reports may come between a decision and its exit).
        trial_id = rng.choice(sorted(running))
        trial = life.trials[trial_id]
        i = trial.iteration + 1
        if running[trial_id][2] is not None:
            out = handle(reported(trial_id, exit=TrialExit(running[trial_id][2])))
        elif i > case.steps:  # restarted at its budget (a clone of a donor there): it returns at once
            out = handle(reported(trial_id, exit=TrialExit(Signal.COMPLETED)))
        else:
            loss = (int(trial_id) % 3 + 1) / i + trial.config["k"] * 1e-3
            awaits = i >= running[trial_id][1]
            checkpoint = i % case.every == 0 or i == case.steps
            made = dataclasses.replace(report(i, loss, awaits=awaits, checkpoint=checkpoint), timestamp=clock())
            last = i == case.steps and not awaits
            out = handle(reported(trial_id, made, exit=TrialExit(Signal.COMPLETED) if last else None))
        for deliver in of(out, ev.Deliver):
            running[trial_id][1] = deliver.decide_at
            if deliver.signal in (Signal.PAUSE, Signal.STOP, Signal.COMPLETED):
                running[trial_id][2] = deliver.signal
            elif i == case.steps:
                running[trial_id][2] = Signal.COMPLETED
        if life.trials[trial_id].status is not TrialStatus.RUNNING:
            workers.append(running.pop(trial_id)[0])
        check_index(life)
    raise AssertionError("the experiment did not finish in 1000 events")


def resume(case: Case, trials, lines, state, clock) -> Lifecycle:
    """A lifecycle resumed as the driver resumes one (raytuner._driver.resume and run): the
    scheduler restored from ``state``, the trials and their lines as the folders hold them."""
    scheduler = case.scheduler()
    scheduler.restore(state["scheduler"])  # before the trials are taken in, as the driver does
    life = case.lifecycle(clock, scheduler, trials=copy.deepcopy(trials), next_id=state["next_id"],
                          exploits=state["exploits"])
    ended = {t: trial.end_time for t, trial in trials.items() if trial.status.is_finished()}
    histories = {t: fold(rows) for t, rows in lines.items()}
    since = since_snapshot(histories, state["fed"], state["next_id"], life.objectives, ended)
    open_ends = undecided(trials, histories)
    life.reconcile(state["next_id"], state["closed"], since, open_ends, decided_before(state, open_ends))
    return life


def test_since_snapshot_lists_creations_and_the_reports_fed_after_it_in_the_order_they_happened():
    """Every row, kept or superseded by a restart, whose resource went past the highest fed
    so far (what the lifecycle fed), for a trial known to the snapshot only past what it had
    heard; a trial created after it from its first marker's time; a snapshot from before
    ``fed`` was recorded replays no report."""
    from raytuner._objectives import Objectives
    from raytuner._storage.history import attempt_marker

    def row(iteration, attempt, at):
        return {"loss": float(iteration), "iteration": iteration, "attempt": attempt, "timestamp": at}

    lines = {
        "00000": [attempt_marker(1, 0, None, "start", 1.0), row(1, 1, 2.0), row(2, 1, 4.0), row(3, 1, 6.0),
                  attempt_marker(2, 1, "checkpoint_000001", "retry", 7.0), row(2, 2, 8.0), row(3, 2, 9.0),
                  row(4, 2, 10.0)],
        "00001": [attempt_marker(1, 0, None, "start", 5.0), row(1, 1, 5.5)],
        "00002": [],  # created, never launched
    }
    histories = {t: fold(rows) for t, rows in lines.items()}
    minimize = Objectives.of("loss", "min")
    # The snapshot had heard 00000 up to 2 and nothing of the trials from 00001 on.
    assert since_snapshot(histories, {"00000": 2}, 1, minimize) == [
        ("add", "00001"), ("result", "00001", 1, 1.0), ("result", "00000", 3, 3.0),
        ("result", "00000", 4, 4.0), ("add", "00002")]  # the restart's 2 and 3 were not fed again
    assert since_snapshot(histories, None, 1, minimize) == [("add", "00001"), ("add", "00002")]


def test_since_snapshot_keeps_each_trials_order_whatever_the_clocks_of_its_nodes():
    """Rows carry their worker's clock, creations and ends the driver's: with skewed nodes a
    trial's rows may look older than its creation, a retry's (on another node) older than
    the first attempt's, its end older than its last row. Each trial's events still come in
    the order they happened: created, its reports as made, ended."""
    from raytuner._objectives import Objectives
    from raytuner._storage.history import attempt_marker

    def row(iteration, attempt, at):
        return {"loss": float(iteration), "iteration": iteration, "attempt": attempt, "timestamp": at}

    lines = {
        # A node 100 s behind the driver; its retry ran on one 50 s behind the first.
        "00001": [attempt_marker(1, 0, None, "start", 10.0), row(1, 1, -89.0), row(2, 1, -88.0),
                  attempt_marker(2, 1, None, "retry", 13.0), row(2, 2, -137.0), row(3, 2, -136.0)],
        # A node 5 s ahead: its row looks later than its end, as the driver recorded it.
        "00002": [attempt_marker(1, 0, None, "start", 11.0), row(1, 2, 16.5)],
        "00003": [],  # created, never launched, stopped by a command: ended with no marker
    }
    histories = {t: fold(rows) for t, rows in lines.items()}
    since = since_snapshot(histories, {}, 1, Objectives.of("loss", "min"),
                           ended={"00001": 14.0, "00002": 12.0, "00003": 11.5})
    assert since == [("add", "00001"), ("result", "00001", 1, 1.0), ("result", "00001", 2, 2.0),
                     ("result", "00001", 3, 3.0), ("add", "00002"), ("end", "00001"), ("result", "00002", 1, 1.0),
                     ("end", "00002"), ("add", "00003"), ("end", "00003")]


@examples(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=4),  # rows per attempt
                          st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4),  # each attempt's node's clock offset
                          st.floats(0, 50), st.booleans()),  # when it was created; whether it ended
                min_size=1, max_size=4))
def test_since_snapshot_keeps_each_trials_order_for_any_clock_offsets(trials):
    """Property: whatever the offsets of the nodes' clocks from the driver's, each trial's
    events come created, then its reports in the order made, then ended."""
    from raytuner._objectives import Objectives
    from raytuner._storage.history import attempt_marker

    histories, ended, made = {}, {}, {}
    for number, (rows_per_attempt, offsets, created, ends) in enumerate(trials):
        trial_id, lines, t, iteration, order = f"{number:05d}", [], created, 0, []
        for attempt, rows in enumerate(rows_per_attempt, start=1):
            lines.append(attempt_marker(attempt, iteration, None, "start" if attempt == 1 else "retry", t))
            iteration = max(0, iteration - 1)  # each retry rewinds one step
            for _ in range(rows):
                t, iteration = t + 1.0, iteration + 1
                lines.append({"loss": float(iteration), "iteration": iteration, "attempt": attempt,
                              "timestamp": t + offsets[attempt - 1]})
                order.append(iteration)
        histories[trial_id] = fold(lines)
        made[trial_id] = order
        if ends:
            ended[trial_id] = t + 0.5
    since = since_snapshot(histories, {}, 0, Objectives.of("loss", "min"), ended=ended)
    for trial_id in histories:
        mine = [event for event in since if event[1] == trial_id]
        assert mine[0] == ("add", trial_id)
        assert (mine[-1] == ("end", trial_id)) == (trial_id in ended)
        resources = [event[2] for event in mine if event[0] == "result"]
        # As the lifecycle fed them: each report whose resource went past the highest so far.
        fed, heard = [], 0
        for iteration in made[trial_id]:
            if iteration > heard:
                fed.append(iteration)
                heard = iteration
        assert resources == fed


def pbt(synch: bool) -> Callable[[], Scheduler]:
    return lambda: PBTScheduler(2, {"k": uniform(0, 100)}, max_resource=6, synch=synch, seed=3)


CASES = {
    "synchronous PBT": Case(pbt(True), trials=4, steps=6, every=1, seed=0),
    "synchronous PBT, every 2nd": Case(pbt(True), trials=4, steps=6, every=2, seed=1),
    "PBT": Case(pbt(False), trials=4, steps=6, every=1, seed=1),
    "PBT, every 2nd": Case(pbt(False), trials=4, steps=6, every=2, seed=0),
    "Hyperband": Case(lambda: HyperbandScheduler(max_resource=9), trials=6, steps=9, every=1, seed=1,
                      levels=frozenset({1, 3})),
    "Hyperband, every 3rd": Case(lambda: HyperbandScheduler(max_resource=9), trials=9, steps=9, every=3, seed=2,
                                 levels=frozenset({1, 3})),
    "ASHA promotion": Case(lambda: ASHAScheduler(max_resource=9, variant="promotion"), trials=6, steps=9, every=1,
                           seed=0, levels=frozenset({1, 3})),
    "ASHA stopping": Case(lambda: ASHAScheduler(max_resource=9), trials=6, steps=9, every=1, seed=0,
                          levels=frozenset({1, 3})),
}


@pytest.mark.parametrize("name", CASES)
def test_an_experiment_resumed_from_any_older_saved_state_runs_every_trial_to_its_end(name):
    """Before the fixes, under PBT: a synchronous round after the resume set the barrier at
    the trials' points, so none was ever resumed (all STOPPED at the end); exploits a round
    decided during the resume waited, and a clone then copied its donor's final checkpoint.
    Under Hyperband: the trials created after the saved state each got a bracket of their
    own, and the reports since were never heard, so no round closed (every trial STOPPED,
    paused at the end), and a trial whose pause the last run had decided but not recorded
    ran to the end beside the bracket's winner. Under ASHA: the reports since were heard with
    the search already over, or the trials paused since were taken for running: paused
    trials left at the end."""
    case = CASES[name]
    clock = itertools.count(1).__next__
    trace: list = []
    run(case, case.lifecycle(clock), random.Random(case.seed), clock, trace)
    exploits = isinstance(case.scheduler(), PBTScheduler)
    # Hyperband's plan fixes how many trials reach the full budget, whatever the order.
    completing = sum(trial.status is TrialStatus.COMPLETED for trial in trace[-1][0].values())
    failures = []
    for j, (trials, lines, _) in enumerate(trace):
        for k in range(j + 1):
            life = resume(case, trials, lines, trace[k][2], clock)
            after = copy.deepcopy(lines)
            run(case, life, random.Random(case.seed + j), clock, lines=after)
            ends = {t: (trial.status, trial.note) for t, trial in life.trials.items()}
            if (len(ends) != case.trials or any(not status.is_finished() for status, _ in ends.values())
                    or any(note == PAUSED_AT_THE_END for _, note in ends.values())
                    or (exploits and any(status is not TrialStatus.COMPLETED for status, _ in ends.values()))
                    or (isinstance(life.scheduler, HyperbandScheduler)
                        and sum(status is TrialStatus.COMPLETED for status, _ in ends.values()) != completing)):
                failures.append((k, j, ends))
                continue
            for trial_id, trial in life.trials.items():
                iterations = [r["iteration"] for r in fold(after[trial_id]).rows]
                if exploits:  # a clone may skip ahead
                    assert iterations == sorted(set(iterations)), (k, j, trial_id, iterations)
                else:
                    assert iterations == list(range(1, len(iterations) + 1)), (k, j, trial_id, iterations)
                if trial.status is TrialStatus.COMPLETED:
                    assert iterations[-1] == case.steps, (k, j, trial_id, iterations)
                if trial.status is TrialStatus.STOPPED and case.levels:
                    # Where the scheduler decided it, as in a run never interrupted: a decision
                    # the last driver made and did not record is carried out, not skipped.
                    assert iterations[-1] in case.levels, (k, j, trial_id, iterations)
                reasons = {line["reason"] for line in after[trial_id] if is_marker(line)}
                assert reasons <= {"start", "promotion", "exploit", "resume", "retry"}, (k, j, reasons)
    assert not failures, f"{len(failures)} of {len(trace) * (len(trace) + 1) // 2} resumes, e.g. {failures[:3]}"


class CountingTPE(TPESearcher):
    """TPE that counts the configs a resume had to correct (its proposal differed)."""

    def __init__(self) -> None:
        super().__init__(n_startup=3, seed=0)
        self.setup({"k": uniform(0, 100)}, 6)
        self.corrected: list[str] = []

    def correct_config(self, trial_id, config) -> bool:
        self.corrected.append(trial_id)
        return super().correct_config(trial_id, config)


def test_a_restored_tpe_told_what_happened_in_order_proposes_the_same_configs_again():
    """TPE is deterministic given its state and what it is told, so when a resume tells it
    the creations, reports and ends since its snapshot in the order they happened, it
    proposes every trial created since exactly as it did (nothing to correct). Told the
    creations first and the rest after, as before, it proposed others in most resumes."""
    case = Case(FIFOScheduler, trials=6, steps=4, every=1, seed=0)
    clock = itertools.count(1).__next__
    trace: list = []
    run(case, Lifecycle(settings(num_trials=6), CountingTPE(), FIFOScheduler(), clock=clock),
        random.Random(0), clock, trace)
    corrected = resumes = 0
    for j, (trials, lines, _) in enumerate(trace):
        for _, _, state in trace[:j + 1]:
            searcher = CountingTPE()
            searcher.restore(state["searcher"])
            life = Lifecycle(settings(num_trials=6), searcher, FIFOScheduler(), clock=clock,
                             trials=copy.deepcopy(trials), next_id=state["next_id"])
            ended = {t: trial.end_time for t, trial in trials.items() if trial.status.is_finished()}
            life.reconcile(state["next_id"], state["closed"],
                           since_snapshot({t: fold(rows) for t, rows in lines.items()}, state["fed"],
                                          state["next_id"], life.objectives, ended))
            corrected += len(searcher.corrected)
            resumes += 1
    assert resumes > 500 and corrected == 0, (resumes, corrected)


@pytest.mark.parametrize("reports, said", [(1, "its 1 report is superseded"), (3, "its 3 reports are superseded")])
def test_the_resume_plan_counts_superseded_reports_in_good_english(reports, said):
    from raytuner._driver.resume import ResumePlan

    assert said in ResumePlan({}, [("00000", reports, 0)], [], 0).describe()
