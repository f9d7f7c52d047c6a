"""The trial lifecycle: every decision about trials, as a state machine without Ray.

Events come in (:mod:`raytuner._driver.events`: a slot may be free, a worker reported or
its trial ended, a call failed or its worker was lost, the deadline, Ctrl-C, and control
commands from the CLI or the dashboard); :meth:`Lifecycle.handle` applies one and
returns the commands it leads to, in the order they must be carried out: launch a trial on
a worker, deliver a decision, spawn, release or discard workers, persist, notify. The Ray
driver (:mod:`raytuner._driver.controller`) turns futures into events and carries the
commands out; this module only sees workers as opaque handles, so every race of the report
path can be replayed here with synthetic event streams.

One source of trial state: :attr:`Lifecycle.trials`. A trial's status changes only in
:meth:`Lifecycle._set_status`, along :data:`raytuner._driver.trial_state.TRANSITIONS`, and
with it the one index over trials (by status, in the order they reached it: the PENDING ones
are the queue of trials waiting for a worker). A trial on a worker also has a
:class:`~raytuner._driver.trial_state.Run`: which worker, and what the driver last told it
(its :class:`~raytuner._driver.trial_state.RunPhase`). The handling of reports and trial
ends is in :mod:`raytuner._driver.lifecycle_reports`, the control commands' handlers in
:mod:`raytuner._driver.lifecycle_control`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from raytuner._driver.events import (
    AppendError,
    AppendLog,
    AppendResults,
    CallFailed,
    Command,
    Deadline,
    DeleteCheckpoints,
    Deliver,
    Discard,
    Drained,
    EndExperiment,
    Event,
    Fill,
    Interrupt,
    Launch,
    Notify,
    Release,
    Reported,
    RetryTrial,
    SetLimits,
    ShowWarnings,
    Spawn,
    StopTrial,
    Worker,
    WriteConfig,
    WriteTrial,
)
from raytuner._driver.exploits import Exploits, copy_queued
from raytuner._driver.lifecycle_control import ControlHandlers
from raytuner._driver.lifecycle_reports import ReportHandlers
from raytuner._driver.trial_state import TRANSITIONS, LifecycleSettings, Run, RunPhase, drop_gone_checkpoints
from raytuner._formats import as_recorded
from raytuner._objectives import Objectives
from raytuner._storage.history import attempt_marker
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.protocol import Signal
from raytuner.errors import RayTunerError
from raytuner.schedulers import Decision, Scheduler
from raytuner.search import FINISHED, Outcome, Searcher, TrialEnd

logger = logging.getLogger("raytuner")

#: The commands that write what happened to a trial (see Lifecycle.records_left).
_RECORDS = (WriteConfig, WriteTrial, AppendResults, AppendLog, AppendError)


# -- the state machine ---------------------------------------------------------------------
_SIGNAL = {Decision.STOP: Signal.STOP, Decision.PAUSE: Signal.PAUSE, Decision.COMPLETE: Signal.STOP}


class Lifecycle(ReportHandlers, ControlHandlers):
    """Owns trial state, the searcher and the scheduler; see the module docstring.

    Args:
        settings: What the Tuner fixed for the experiment.
        searcher, scheduler: Already set up (and restored, on resume).
        trials: Trials restored from storage; RUNNING and PENDING ones are queued to
            restart from their checkpoints, PAUSED ones wait for the scheduler.
        next_id: The next trial id to use (at least one past the highest id of ``trials``).
        exploits: PBT exploits decided and not launched yet, as :meth:`state` saved them.
        clock: Wall-clock time for start and end stamps (tests pass a fixed one).
        stored: Whether a trial's checkpoint folder is in storage, ``stored(trial_id, folder)``,
            asked at relaunches (a checkpoint deleted by hand is none) and PBT clones'
            launches (:meth:`Exploits.drop_gone`); None: not asked.
        carry_out: Carries out commands now, as the driver does what :meth:`handle` returns:
            a clone's copy decided in the event that launches it is then made (or fails)
            before the launch checks it, as every other is. None: not (the unit tests).
    """

    def __init__(self, settings: LifecycleSettings, searcher: Searcher, scheduler: Scheduler, *,
                 trials: dict[str, Trial] | None = None, next_id: int = 0,
                 exploits: dict[str, dict[str, Any]] | None = None, clock: Callable[[], float] = time.time,
                 stored: Callable[[str, str], bool] | None = None,
                 carry_out: Callable[[list[Command]], None] | None = None):
        self.settings = settings
        self.searcher = searcher
        self.scheduler = scheduler
        self._clock = clock
        self.objectives = Objectives.of(settings.metric, settings.mode)
        self.num_trials = searcher.num_trials or settings.num_trials
        self.max_concurrent = settings.max_concurrent
        self.trials: dict[str, Trial] = {}
        self._by_status: dict[TrialStatus, dict[str, None]] = {status: {} for status in TrialStatus}
        self._runs: dict[str, Run] = {}
        self._closed: set[str] = set()  # trials the searcher has been told the end of
        self._unknown: set[str] = set()  # resumed trials the searcher did not propose again
        # Failed trials re-run by a control command: searcher and scheduler already closed
        # them, so the re-run is only recorded (see _on_retry_trial).
        self._reruns: set[str] = set()
        self._exhausted = False  # the searcher returned FINISHED
        self._ended = False  # Deadline, EndExperiment or an abort: nothing new starts
        # Past the highest id, not the count: with a trial missing between others (a bucket
        # that lost the last second of uploads, a folder moved out by hand) the count is a
        # taken id.
        self._next_id = max([next_id, *(int(trial_id) + 1 for trial_id in trials or ())])
        self._warned_rewind = False
        # Why a PENDING trial will be launched again, for its attempt marker (default "retry").
        self._restart_reason: dict[str, str] = {}
        self.abort: BaseException | None = None
        self._out: list[Command] = []
        self._left: list[Command] = []  # see records_left()
        self._exploits = Exploits(self.objectives, settings.resource_attr, exploits)
        self._stored, self._carry_out = stored, carry_out
        self._were_running: list[str] = []  # restored RUNNING, recorded PENDING by reconcile()
        if trials:
            self._restore(trials, next_id)

    # -- queries ---------------------------------------------------------------------------
    def ids(self, status: TrialStatus) -> list[str]:
        """Trials in ``status``, in the order they reached it."""
        return list(self._by_status[status])

    @property
    def busy(self) -> bool:
        """Whether any trial is on a worker (a call is outstanding)."""
        return bool(self._runs)

    def slots_used(self) -> int:
        """Trials on workers, less those whose worker has already moved on."""
        return sum(run.phase is not RunPhase.HANDED_ON for run in self._runs.values())

    def busy_workers(self) -> dict[str, Worker]:
        """The workers running a trial, by its id."""
        return {trial_id: run.worker for trial_id, run in self._runs.items()}

    def may_have_work(self) -> bool:
        """Whether a new worker could get a trial: new configs, retries or paused trials."""
        if self._ended:
            return False
        return (not self._search_done() or bool(self._by_status[TrialStatus.PENDING])
                or bool(self._by_status[TrialStatus.PAUSED])
                or any(run.phase is RunPhase.PROMOTED for run in self._runs.values()))

    def state(self) -> dict[str, Any]:
        """Searcher and scheduler state with the bookkeeping resume needs."""
        return {"searcher": self.searcher.state(), "scheduler": self.scheduler.state(),
                "next_id": self._next_id, "closed": sorted(self._closed), "exploits": self._exploits.state(),
                # What searcher and scheduler had heard of each trial: a resume replays what
                # the trial folders hold beyond it (resume.py, reconcile).
                "fed": {trial_id: trial.fed_resource for trial_id, trial in self.trials.items()},
                # The ends decided at a trial's last fed report and not in yet: a resume
                # carries out one its record missed (reconcile's `undecided`).
                "decided": {trial_id: run.decision.value for trial_id, run in self._runs.items()
                            if run.decision is not None and run.phase in (RunPhase.ENDING, RunPhase.HANDED_ON)}}

    # -- events ----------------------------------------------------------------------------
    def handle(self, event: Event) -> list[Command]:
        """Apply one event; the commands it leads to, in order."""
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"Lifecycle cannot handle {event!r}")
        try:
            handler(self, event)
        except BaseException:
            # A searcher or scheduler raised (its bug ends the run): what the event recorded
            # before that, such as the reports a trial made, stays for records_left().
            self._left, self._out = [command for command in self._out if isinstance(command, _RECORDS)], []
            raise
        out, self._out = self._out, []
        return out

    def records_left(self) -> list[Command]:
        """The writes of records an event made before its handler raised: the reports it
        took in, the trial's status and its log. They happened, and the driver writes them
        before the run ends on that error, so that a searcher's bug never loses what a
        trial reported; nothing else the event led to is carried out. Empty after a call."""
        left, self._left = self._left, []
        return left

    def _on_fill(self, event: Fill) -> None:
        idle = list(event.idle)
        while self.slots_used() < self.max_concurrent and self.abort is None and not self._ended:
            if not idle:
                if self.may_have_work():  # trials are chosen when their workers are up
                    wanted = self.max_concurrent - self.slots_used() - event.starting
                    count = min(wanted, self.max_concurrent - event.pool_size)
                    if count > 0:
                        self._out.append(Spawn(count))
                return
            trial = self._next_trial()
            if trial is None:
                return
            self._launch(trial, idle.pop())

    def _on_reported(self, event: Reported) -> None:
        if event.trial_id not in self._runs:
            return  # the answer of a worker discarded when the experiment ended: stale
        if event.answer.log:
            self._out.append(AppendLog(event.trial_id, event.answer.log))
        if event.answer.notes:
            self._out.append(ShowWarnings(event.trial_id, tuple(event.answer.notes)))
        trial = self.trials[event.trial_id]
        run = self._runs[event.trial_id]
        decision = self._record(trial, run, event.answer.reports)
        if event.answer.exit is not None:
            del self._runs[trial.trial_id]
            if run.phase is not RunPhase.HANDED_ON:
                self._out.append(Release(run.worker))
            self._on_exit(trial, run, event.answer.exit)
            return
        if run.phase is RunPhase.STOP_QUEUED:
            run.phase = RunPhase.ENDING
            self._out.append(Deliver(run.worker, trial.trial_id, Signal.STOP, math.inf))
            return
        if decision in _SIGNAL:
            run.decision, run.phase = decision, RunPhase.ENDING
            self._out.append(Deliver(run.worker, trial.trial_id, _SIGNAL[decision], math.inf))
            if decision is not Decision.PAUSE and self.may_have_work():
                # The trial's end is now certain and its slot free: the worker's next trial
                # queues behind the stop and starts the moment it lands, with no round trip
                # to the driver in between. (A pausing trial keeps its slot until the pause
                # is confirmed, as the scheduler may resume it at once.)
                run.phase = RunPhase.HANDED_ON
                self._out.append(Release(run.worker))
            return
        signal = None if decision is None else Signal.CONTINUE
        self._out.append(Deliver(run.worker, trial.trial_id, signal, self._decision_point(trial)))

    def _on_call_failed(self, event: CallFailed) -> None:
        if event.trial_id not in self._runs:
            return  # a worker discarded when the experiment ended, as it was killed
        trial = self.trials[event.trial_id]
        run = self._runs.pop(event.trial_id)
        if event.worker_lost:
            self._out.append(Discard(run.worker))
        elif run.phase is not RunPhase.HANDED_ON:
            self._out.append(Release(run.worker))
        self._on_failure(trial, event.error, retry=run.decision is not Decision.STOP)

    _HANDLERS: dict[type, Callable[[Lifecycle, Any], None]] = {
        Fill: _on_fill, Reported: _on_reported, CallFailed: _on_call_failed,
        Deadline: ControlHandlers._on_deadline, Interrupt: ControlHandlers._on_interrupt,
        Drained: ControlHandlers._on_drained, StopTrial: ControlHandlers._on_stop_trial,
        SetLimits: ControlHandlers._on_set_limits, EndExperiment: ControlHandlers._on_end_experiment,
        RetryTrial: ControlHandlers._on_retry_trial,
    }

    # -- starting trials -------------------------------------------------------------------
    def _search_done(self) -> bool:
        return self._exhausted or len(self.trials) >= self.num_trials

    def _next_trial(self) -> Trial | None:
        """Who gets the next free slot: a trial waiting for a worker (a retry, a restored
        trial, a promoted one whose pause is in), then a paused trial the scheduler resumes,
        then a new config from the searcher."""
        for trial_id in self._by_status[TrialStatus.PENDING]:
            return self.trials[trial_id]
        resume_id = self.scheduler.choose_trial_to_resume()
        self._stop_paused_losers()
        if resume_id is not None:
            run = self._runs.get(resume_id)
            if run is not None:
                # Promoted the moment it paused, before its worker confirmed the pause: it
                # goes out once the pause is in (_on_exit), and this slot waits for it.
                run.phase = RunPhase.PROMOTED
                return None
            self._restart_reason[resume_id] = "promotion"
            return self.trials[resume_id]
        if self._search_done():
            self._finish_search()
            return None
        trial_id = f"{self._next_id:05d}"
        config = self.searcher.suggest(trial_id)
        if config is FINISHED:
            self._exhausted = True
            self._finish_search()
            return None
        if config is None:
            if not self._runs:
                raise RayTunerError(
                    f"{type(self.searcher).__name__}.suggest() returned None (not now) while no trial "
                    "is running, so it would wait forever. A searcher may only wait on running trials."
                )
            return None
        try:
            config = as_recorded(config)
        except TypeError as exc:
            raise RayTunerError(
                f"{type(self.searcher).__name__}.suggest() returned a config config.json cannot record: {exc}. A "
                "retried or resumed trial gets its config back from there: suggest names, numbers, strings, lists "
                "and dicts, and build objects inside the trainable.") from exc
        self._next_id += 1
        trial = Trial(trial_id, config)
        self._add(trial)
        self._out.append(WriteConfig(trial_id, trial.config))
        self.scheduler.on_trial_add(trial_id)
        self.scheduler.on_trial_config(trial_id, trial.config)
        if self._search_done():  # the last trial: PBT then knows its whole population has started
            self._finish_search()
        return trial

    def _finish_search(self) -> None:
        self.scheduler.on_search_finished()
        self._stop_paused_losers()

    def _launch(self, trial: Trial, worker: Worker) -> None:
        """Put ``trial`` on ``worker``: from its latest checkpoint, or from scratch.

        One trajectory per trial: a restart from the checkpoint made at iteration k (k = 0
        without one) rewinds the trial to k. The attempt marker written first tells readers
        that the rows the lost attempt wrote past k are superseded (see
        :mod:`raytuner._storage.history`); searcher and scheduler hear only of progress past
        what they were already fed (``Trial.fed_resource``).
        """
        if self._carry_out is not None and copy_queued(self._out, trial.trial_id):
            out, self._out = self._out, []  # in order, with everything before it
            self._carry_out(out)
        self._exploits.drop_gone(trial, self.scheduler, self._stored, self.settings.experiment_path,
                                 made=self._carry_out is not None)
        exploit = self._exploits.apply(trial)
        gone = exploit is None and drop_gone_checkpoints(trial, self._stored, self.settings.experiment_path)
        start_iteration = trial.checkpoint_iteration if trial.checkpoint else 0
        start_time = trial.checkpoint_time_s if trial.checkpoint else 0.0
        if trial.iteration > start_iteration and not self._warned_rewind and exploit is None and not gone:
            self._warned_rewind = True
            if start_iteration and self.settings.checkpoint_interval_s == 0 and self.settings.checkpoints_to_keep is None:
                where, advice = f"its checkpoint at report {start_iteration}", (
                    "Its newer checkpoints were not stored yet when its worker was lost (or its trainable saved "
                    "none since).")
            elif start_iteration and self.settings.checkpoint_interval_s == 0:
                where, advice = f"its checkpoint at report {start_iteration}", (
                    f"With checkpoints_to_keep={self.settings.checkpoints_to_keep}, a worker drops a checkpoint that "
                    "as many newer ones overtake before it is stored (the Keras callback's `checkpoint=` also "
                    "chooses its epochs): pass checkpoints_to_keep=None to store every one, at a cost in time.")
            elif start_iteration:  # it checkpoints: the newest one stored is behind its last report
                where, advice = f"its checkpoint at report {start_iteration}", (
                    "Its later reports had no stored checkpoint: either its trainable made none there (the Keras "
                    "callback's default saves only where the scheduler may pause, at the end and every "
                    "`checkpoint_period_s`; ReportCallback(checkpoint=True) saves every epoch), or a worker stored "
                    "none of them: it stores at most one checkpoint per interval (the Tuner's "
                    "`checkpoint_interval_s`, adapted to the stores' cost by default; pass checkpoint_interval_s=0 to "
                    "store every one, at a cost in time).")
            else:
                where, advice = "scratch (it has no checkpoint)", (
                    "Pass `checkpoint=` to raytuner.report so paused and retried trials continue where they "
                    "stopped; the Keras callback's default checkpoints where the scheduler may pause, at the "
                    "end and every `checkpoint_period_s` (60 s): ReportCallback(checkpoint=True) saves every epoch.")
            lost_reports = (f"report {trial.iteration} is" if trial.iteration == start_iteration + 1
                            else f"reports {start_iteration + 1}-{trial.iteration} are")
            logger.warning("Trial %s restarts from %s; its %s superseded (kept in results.jsonl for audit, left out "
                           "of its history). %s", trial.trial_id, where, lost_reports, advice)
        lost, extra = exploit if exploit is not None else (trial.rewind(start_iteration, start_time), {})
        reason = ("exploit" if exploit is not None else "start" if not trial.attempt else "rerun"
                  if trial.trial_id in self._reruns else self._restart_reason.pop(trial.trial_id, "retry"))
        self._restart_reason.pop(trial.trial_id, None)
        trial.attempt += 1
        self._out.append(AppendResults(trial.trial_id, [attempt_marker(
            trial.attempt, start_iteration, trial.checkpoint if start_iteration else None, reason, self._clock(),
            **extra)]))
        if lost:
            self._out.append(DeleteCheckpoints(trial.trial_id, tuple(lost)))
        if trial.attempt > 1:  # where each attempt's output starts, in the trial's log as in its results
            start = f"its checkpoint at report {start_iteration}" if start_iteration else "scratch"
            self._out.append(AppendLog(trial.trial_id, f"[raytuner] attempt {trial.attempt} ({reason}) starts from "
                                                      f"{start}\n"))
        cloned_at = start_iteration if exploit is not None else None
        self._runs[trial.trial_id] = Run(worker, cloned_at=cloned_at)
        trial.start_time = trial.start_time or self._clock()
        self._set_status(trial, TrialStatus.RUNNING, notify=False)
        self._out.append(Launch(worker, trial.trial_id, trial.config, trial.checkpoint if start_iteration else None,
                                start_iteration, start_time, self._decision_point(trial)))
        self._out.append(Notify("on_trial_start", (trial.trial_id, trial.config)))

    def _decision_point(self, trial: Trial) -> float:
        if trial.trial_id in self._reruns:
            return math.inf
        return self.scheduler.decision_point(trial.trial_id, trial.fed_resource if trial.fed_resource is not None else 0)

    # -- bookkeeping -----------------------------------------------------------------------
    def _add(self, trial: Trial) -> None:
        """A trial enters the lifecycle: new (PENDING), or restored as storage recorded it."""
        self.trials[trial.trial_id] = trial
        self._by_status[trial.status][trial.trial_id] = None

    def _set_status(self, trial: Trial, status: TrialStatus, note: str | None = None, *,
                    notify: bool = True, record: bool = True) -> None:
        """The one place a trial's status changes, and with it the index by status.

        ``record``: write the trial's record (False only for a restored trial, whose record
        is rewritten when it runs); ``notify``: call the callbacks' ``on_trial_end``.
        """
        if status not in TRANSITIONS[trial.status]:
            raise AssertionError(f"trial {trial.trial_id}: {trial.status.value} -> {status.value} is not a "
                                 "transition of the trial lifecycle")
        self._by_status[trial.status].pop(trial.trial_id, None)
        self._by_status[status][trial.trial_id] = None
        trial.status = status
        if status != TrialStatus.RUNNING:
            self._runs.pop(trial.trial_id, None)
        if note:
            trial.note = note
        if status.is_finished():
            trial.end_time = self._clock()
        if record:
            self._out.append(WriteTrial(trial.trial_id, trial.to_record()))
        if notify:
            self._out.append(Notify("on_trial_end", (trial,)))

    def _close(self, trial: Trial, end: TrialEnd) -> None:
        """Tell the searcher how the trial ended (once); remembered for resume."""
        self._exploits.forget(trial.trial_id)
        if trial.trial_id in self._closed:
            return
        self._closed.add(trial.trial_id)
        if trial.trial_id not in self._unknown:
            outcome = Outcome(end, trial.last_value, trial.resource, self.scheduler.max_resource)
            self.searcher.on_trial_complete(trial.trial_id, outcome)
