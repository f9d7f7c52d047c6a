"""The controller: the only owner of trial workers and of trial state.

Each turn of the loop reads like the design's prose: fill free slots (a paused trial the
scheduler promotes first, else a retry, else a new config from the searcher), wait on every
busy worker at once, handle each event as it arrives (no barrier between trials), pass each
report to the searcher and the scheduler, answer with the decision, persist.

Persistence comes last on purpose: what an event changes is decided in memory (searcher,
scheduler, trial state, checkpoints), the workers get their answers and their next trials,
and only then are trial files and callbacks written (:meth:`Controller._flush`, once per
turn, and always before a searcher snapshot). A worker never waits on the driver's disk.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from raytuner._worker import checkpoint as _checkpoint
from raytuner._callbacks import Callback
from raytuner._driver.pool import acquire_pool, park_pool
from raytuner._driver.progress import Progress
from raytuner._results import Results, TrialResult
from raytuner._driver.stop import StopCriteria
from raytuner._storage.experiment import ExperimentStorage, dumps
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.actor import CONTINUE, PAUSE, STOP, Event, Report, TrialSpec
from raytuner.errors import ReportError, RayTunerError
from raytuner.schedulers import Decision, Scheduler
from raytuner.search import FINISHED, Outcome, Searcher, TrialEnd

logger = logging.getLogger("raytuner")

_WIRE = {Decision.CONTINUE: CONTINUE, Decision.STOP: STOP, Decision.PAUSE: PAUSE}


@dataclass
class _Busy:
    """A trial on a worker, and what the controller last told that worker."""

    trial: Trial
    worker: Any
    decided: str | None = None  # a STOP/PAUSE already sent, so the end is known
    handed_on: bool = False  # the worker already has its next trial, queued behind this end


@dataclass
class ExperimentSettings:
    name: str
    metric: str | None
    mode: str
    num_trials: int
    max_concurrent: int
    resources: dict[str, float]
    stop: StopCriteria
    time_budget_s: float | None
    resource_attr: str | None
    max_failures: int
    fail_fast: bool
    checkpoints_to_keep: int | None
    gpu_memory_fraction: float | None
    verbose: int
    keep_workers_s: float = 30.0


class Controller:
    def __init__(self, settings: ExperimentSettings, *, trainable_ref: Any, searcher: Searcher, scheduler: Scheduler,
                 storage: ExperimentStorage, callbacks: Sequence[Callback] = (), meta: dict[str, Any] | None = None,
                 trials: dict[str, Trial] | None = None, next_id: int = 0):
        import ray

        self.s = settings
        self._sign = 1.0 if settings.mode == "min" else -1.0
        self._trainable = [trainable_ref]
        self._searcher = searcher
        self._scheduler = scheduler
        self._storage = storage
        self._callbacks = list(callbacks)
        self._meta = dict(meta or {})
        self._driver_node = ray.get_runtime_context().get_node_id()
        self.trials: dict[str, Trial] = dict(trials or {})
        self._busy: dict[Any, _Busy] = {}  # outstanding call -> the trial it answers for
        self._io: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()  # see _flush
        self._promoted: deque[str] = deque()  # chosen to resume while their pause was in flight
        # Restored trials that were on a worker when the last driver stopped start again from
        # their checkpoints; finished ones stay finished, paused ones wait for the scheduler.
        self._retry: deque[str] = deque(
            t.trial_id for t in self.trials.values() if t.status in (TrialStatus.RUNNING, TrialStatus.PENDING)
        )
        for trial_id in self._retry:
            self.trials[trial_id].status = TrialStatus.PENDING
        self._paused = {t.trial_id for t in self.trials.values() if t.status == TrialStatus.PAUSED}
        self._search_done = False
        self._next_id = max(next_id, len(self.trials))
        self._closed: set[str] = set()  # trials the searcher has been told the end of
        self._unknown: set[str] = set()  # resumed trials the searcher did not propose again
        self._state_cost_s = 0.0
        self._warned_no_checkpoint = False
        self._abort: BaseException | None = None
        self._pool = acquire_pool(settings.resources, settings.gpu_memory_fraction)
        self._progress = Progress(self.trials, name=settings.name, metric=settings.metric, mode=settings.mode,
                                  total=searcher.num_trials, verbose=settings.verbose,
                                  describe=scheduler.describe)
        self._last_state_save = 0.0

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> Results:
        import ray

        self._meta.update(status="RUNNING", start_time=self._meta.get("start_time") or time.time())
        self._storage.write_experiment(self._meta)
        self._emit("on_experiment_start", self._storage.path, self._meta)
        deadline = math.inf if self.s.time_budget_s is None else time.monotonic() + self.s.time_budget_s
        self._progress.start()
        status = "COMPLETED"
        try:
            while True:
                if time.monotonic() >= deadline:
                    self._end_all("time budget reached")
                    status = "TIMED_OUT"
                    break
                self._fill_slots()
                self._flush()
                self._save_state(throttle=True)
                starting = self._pool.starting()
                # Workers still starting matter only while there is work for them: an actor
                # the cluster has no room for may stay pending for good.
                if not self._busy and (not starting or not self._may_have_work()):
                    if self._abort is not None:
                        raise self._abort
                    self._close_paused()
                    break
                timeout = max(0.0, min(0.5, deadline - time.monotonic()))
                ready, _ = ray.wait(list(self._busy) + starting, num_returns=1, timeout=timeout)
                for ref in ready:
                    if ref in self._busy:
                        self._handle(ref)
                    else:
                        self._pool.started(ref)
                self._progress.update()
                if self._abort is not None:
                    self._end_all("experiment aborted")
                    status = "FAILED"
                    raise self._abort
        except KeyboardInterrupt:
            status = "INTERRUPTED"
            self._end_all("interrupted (Ctrl-C)", final=False)
            logger.warning("Interrupted: stopped running trials; results so far are in %s. Continue with: "
                           "raytuner resume %s", self._storage.path, self._storage.path)
        except BaseException:
            status = "FAILED"
            raise
        finally:
            park_pool(self._pool, self.s.keep_workers_s)
            self._flush()
            self._save_state(throttle=False)
            self._meta.update(status=status, end_time=time.time())
            self._storage.write_experiment(self._meta)
            self._progress.close()
        results = self.results()
        self._emit("on_experiment_end", results)
        return results

    def results(self) -> Results:
        trials = [TrialResult.from_trial(t, self._storage.trial_path(t.trial_id)) for t in self.trials.values()]
        return Results(self._storage.path, trials, self.s.metric, self.s.mode, self._meta)

    # -- starting trials -----------------------------------------------------------------
    def _running(self) -> int:
        """Slots in use: calls outstanding, less trials whose worker has moved on."""
        return sum(not busy.handed_on for busy in self._busy.values())

    def _fill_slots(self) -> None:
        while self._running() < self.s.max_concurrent and self._abort is None:
            worker = self._pool.idle_worker()
            if worker is None:
                if self._may_have_work():  # trials are chosen when their workers are up
                    wanted = self.s.max_concurrent - self._running() - len(self._pool.starting())
                    for _ in range(min(wanted, self.s.max_concurrent - self._pool.size)):
                        self._pool.spawn()
                return
            trial = self._next_trial()
            if trial is None:
                self._pool.release(worker)
                return
            self._launch(trial, worker)

    def _may_have_work(self) -> bool:
        """Whether a new worker could get a trial: new configs, retries or paused trials."""
        return not self._search_done or bool(self._retry) or bool(self._promoted) or bool(self._paused)

    def _next_trial(self) -> Trial | None:
        for trial_id in self._promoted:
            if self.trials[trial_id].status == TrialStatus.PAUSED:
                self._promoted.remove(trial_id)
                return self.trials[trial_id]
        resume_id = self._scheduler.choose_trial_to_resume()
        self._stop_paused_losers()
        if resume_id is not None:
            if self.trials[resume_id].status == TrialStatus.RUNNING:
                # Promoted the moment it paused, before its worker confirmed the pause: it
                # goes out once the pause is in (_on_end), and this slot waits for it.
                self._promoted.append(resume_id)
                return None
            return self.trials[resume_id]
        if self._retry:
            return self.trials[self._retry.popleft()]
        if self._search_done:
            return None
        if len(self.trials) >= (self._searcher.num_trials or self.s.num_trials):
            return self._finish_search()
        trial_id = f"{self._next_id:05d}"
        config = self._searcher.suggest(trial_id)
        if config is FINISHED:
            return self._finish_search()
        if config is None:
            if not self._busy:
                raise RayTunerError(
                    f"{type(self._searcher).__name__}.suggest() returned None (not now) while no trial "
                    "is running, so it would wait forever. A searcher may only wait on running trials."
                )
            return None
        self._next_id += 1
        trial = Trial(trial_id, dict(config))
        self.trials[trial_id] = trial
        self._storage.trial_path(trial_id).mkdir(parents=True, exist_ok=True)  # the worker may write there
        self._later(self._storage.write_config, trial_id, trial.config)
        self._scheduler.on_trial_add(trial_id)
        return trial

    def _finish_search(self) -> None:
        self._search_done = True
        self._scheduler.on_search_finished()
        self._stop_paused_losers()
        return None

    def _launch(self, trial: Trial, worker: Any) -> None:
        checkpoint = None
        start_iteration, start_time = trial.iteration, trial.time_total_s
        if trial.checkpoint:
            checkpoint = _checkpoint.pack_dir(self._storage.trial_path(trial.trial_id) / trial.checkpoint)
            start_iteration, start_time = trial.checkpoint_iteration, trial.checkpoint_time_s
        elif trial.iteration and not self._warned_no_checkpoint:
            self._warned_no_checkpoint = True
            logger.warning(
                "Trial %s resumes with no checkpoint, so its training restarts from scratch while its "
                "report count goes on from %d. Pass `checkpoint=` to raytuner.report (or use the Keras "
                "callback, which checkpoints) so paused and retried trials continue where they stopped.",
                trial.trial_id, trial.iteration,
            )
        spec = TrialSpec(
            trial_id=trial.trial_id,
            experiment_name=self.s.name,
            config=trial.config,
            trainable=self._trainable,
            metric=self.s.metric,
            resource_attr=self.s.resource_attr,
            stop=self.s.stop,
            decide_at=self._decision_point(trial),
            storage_dir=str(self._storage.trial_path(trial.trial_id)),
            driver_node_id=self._driver_node,
            resources=self.s.resources,
            start_iteration=start_iteration,
            start_time_s=start_time,
            checkpoint=checkpoint,
        )
        self._busy[worker.start.remote(spec)] = _Busy(trial, worker)
        trial.status = TrialStatus.RUNNING
        self._paused.discard(trial.trial_id)
        trial.start_time = trial.start_time or time.time()
        self._later(self._storage.write_trial, trial.trial_id, trial.to_record())
        self._later(self._emit, "on_trial_start", trial.trial_id, trial.config)

    def _decision_point(self, trial: Trial) -> float:
        return self._scheduler.decision_point(trial.trial_id, trial.resource if trial.resource is not None else 0)

    # -- events --------------------------------------------------------------------------
    def _handle(self, ref: Any) -> None:
        import ray

        busy = self._busy.pop(ref)
        trial = busy.trial
        try:
            event: Event = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised inside the worker, which lives on
            if not busy.handed_on:
                self._pool.release(busy.worker)
            self._on_failure(trial, f"The trial's worker could not run it: {exc}")
            return
        except ray.exceptions.RayError as exc:  # the actor, its process or its node died
            self._pool.discard(busy.worker)
            self._on_failure(trial, f"The trial's worker died: {type(exc).__name__}: {exc}")
            return
        decision = self._record(trial, busy, event.reports)
        if event.end is not None:
            if not busy.handed_on:
                self._pool.release(busy.worker)
            self._on_end(trial, busy, event.end)
            return
        if decision in (STOP, PAUSE):
            busy.decided = decision
            self._busy[busy.worker.finish.remote(decision)] = busy
            if decision == STOP and self._may_have_work():
                # The trial's end is now certain and its slot free: the worker's next trial
                # queues behind the stop and starts the moment it lands, with no round trip
                # to the driver in between. (A pausing trial keeps its slot until the pause
                # is confirmed, as the scheduler may resume it at once.)
                busy.handed_on = True
                self._pool.release(busy.worker)
            return
        self._busy[busy.worker.next_event.remote(decision, self._decision_point(trial))] = busy

    def _record(self, trial: Trial, busy: _Busy, reports: list[Report]) -> str | None:
        """Store the reports, feed them to searcher and scheduler; the decision to send."""
        if not reports:
            return None
        rows = []
        decision: str | None = None
        for report in reports:
            row = dict(report.metrics)
            row.update(iteration=report.iteration, time_total_s=report.time_total_s, timestamp=report.timestamp)
            if self.s.resource_attr is not None:
                row["resource"] = report.resource
            rows.append(row)
            if report.checkpoint is not None:
                trial.checkpoint = self._storage.write_checkpoint(
                    trial.trial_id, report.iteration, report.checkpoint, self.s.checkpoints_to_keep
                )
                trial.checkpoint_iteration = report.iteration
                trial.checkpoint_time_s = report.time_total_s
            previous = trial.resource
            value = None
            if self.s.metric is not None:
                raw = report.metrics[self.s.metric]
                value = self._sign * raw
            trial.observe(report.iteration, report.resource, report.metrics, value, report.time_total_s)
            # A trial resumed from an older checkpoint re-reports resources the scheduler has
            # seen; only progress beyond them is news to it.
            if value is None or busy.decided or (previous is not None and report.resource <= previous):
                continue
            self._searcher.on_trial_result(trial.trial_id, report.resource, value)
            wire = _WIRE[self._scheduler.on_result(trial.trial_id, report.resource, value)]
            if wire != CONTINUE and decision in (None, CONTINUE):
                decision = wire
        if decision is None and reports[-1].awaits_decision:
            decision = CONTINUE  # the training loop waits for an answer, whatever was fed where
        self._later(self._storage.append_results, trial.trial_id, rows)
        for row in rows:
            self._later(self._emit, "on_trial_result", trial.trial_id, row)
        self._stop_paused_losers()
        return decision

    def _on_end(self, trial: Trial, busy: _Busy, end: Any) -> None:
        if end.kind == "error":
            if end.error_type == ReportError.__name__:
                # A report the Tuner cannot use is a bug in the script, the same in every trial.
                self._abort = ReportError(end.message)
            self._on_failure(trial, end.error)
            return
        kind = busy.decided or end.kind
        if kind == STOP and trial.resource is not None and trial.resource >= self._scheduler.max_resource:
            kind = "completed"  # the scheduler ends every trial at its full budget: it completed
        if kind == PAUSE:
            self._set_status(trial, TrialStatus.PAUSED)  # if already promoted, _next_trial sends it out
        elif kind == STOP:
            self._set_status(trial, TrialStatus.STOPPED)
            self._close(trial, TrialEnd.STOPPED)
        else:
            self._set_status(trial, TrialStatus.COMPLETED)
            if busy.decided is None:  # a trial the scheduler ended at full budget is already closed there
                self._scheduler.on_trial_complete(trial.trial_id)
            self._close(trial, TrialEnd.COMPLETED)
        self._stop_paused_losers()

    def _on_failure(self, trial: Trial, error: str) -> None:
        trial.num_failures += 1
        trial.error = (trial.error + "\n" if trial.error else "") + error
        self._later(self._storage.append_error, trial.trial_id,
                    f"--- failure {trial.num_failures} at {time.ctime()} ---\n{error}")
        if trial.num_failures <= self.s.max_failures and self._abort is None:
            trial.status = TrialStatus.PENDING
            self._later(self._storage.write_trial, trial.trial_id, trial.to_record())
            self._retry.append(trial.trial_id)
            logger.warning("Trial %s failed (%d of %d retries used); retrying from its latest checkpoint.",
                           trial.trial_id, trial.num_failures, self.s.max_failures)
            return
        self._set_status(trial, TrialStatus.FAILED)
        self._scheduler.on_trial_error(trial.trial_id)
        self._close(trial, TrialEnd.FAILED)
        self._stop_paused_losers()
        if self.s.fail_fast and self._abort is None:
            self._abort = RayTunerError(
                f"Trial {trial.trial_id} failed and `fail_fast=True`, so the experiment stopped. Its results "
                f"so far are in {self._storage.path}; fix the cause, then continue it with "
                f"raytuner.Tuner.resume({str(self._storage.path)!r}).\n{error}"
            )

    def _close(self, trial: Trial, end: TrialEnd) -> None:
        """Tell the searcher how the trial ended (once); remembered for resume."""
        self._closed.add(trial.trial_id)
        if trial.trial_id not in self._unknown:
            self._searcher.on_trial_complete(trial.trial_id, self._outcome(trial, end))

    def _outcome(self, trial: Trial, end: TrialEnd) -> Outcome:
        return Outcome(end, trial.last_value, trial.resource, self._scheduler.max_resource)

    def _set_status(self, trial: Trial, status: TrialStatus, note: str | None = None) -> None:
        trial.status = status
        if status == TrialStatus.PAUSED:
            self._paused.add(trial.trial_id)
        else:
            self._paused.discard(trial.trial_id)
        if note:
            trial.note = note
        if status.is_finished():
            trial.end_time = time.time()
        self._later(self._storage.write_trial, trial.trial_id, trial.to_record())
        self._progress.trial_ended(trial)
        self._later(self._emit, "on_trial_end", TrialResult.from_trial(trial, self._storage.trial_path(trial.trial_id)))

    # -- ending trials the controller's way ----------------------------------------------
    def _stop_paused_losers(self) -> None:
        """Paused trials the scheduler will never resume end as STOPPED."""
        for trial_id in self._scheduler.trials_to_stop():
            trial = self.trials[trial_id]
            if trial.status == TrialStatus.PAUSED:
                self._set_status(trial, TrialStatus.STOPPED)
                self._close(trial, TrialEnd.STOPPED)

    def _close_paused(self) -> None:
        """At the end, paused trials that nothing will resume are closed as STOPPED."""
        for trial in self.trials.values():
            if trial.status == TrialStatus.PAUSED:
                self._scheduler.on_trial_remove(trial.trial_id)
                self._set_status(trial, TrialStatus.STOPPED, note="paused when the experiment ended")
                self._close(trial, TrialEnd.STOPPED)

    def _end_all(self, why: str, final: bool = True) -> None:
        """End every running trial now (time budget, abort, Ctrl-C).

        Goes by trial status, not by the outstanding calls: a Ctrl-C can land while one
        trial's event is being handled, when its call is out of ``_busy``.
        """
        for busy in self._busy.values():
            self._pool.discard(busy.worker)
        for trial in [t for t in self.trials.values() if t.status == TrialStatus.RUNNING]:
            if final:
                self._scheduler.on_trial_remove(trial.trial_id)
                self._set_status(trial, TrialStatus.STOPPED, note=why)
                self._close(trial, TrialEnd.STOPPED)
            else:  # left resumable: it restarts from its checkpoint on resume
                self._set_status(trial, TrialStatus.PENDING, note=why)
        self._busy.clear()
        if final:
            self._close_paused()

    # -- persistence and hooks -----------------------------------------------------------
    def _save_state(self, throttle: bool) -> None:
        """Snapshot searcher and scheduler together (one file), for resume.

        A snapshot grows with the trials (TPE's history), so it is taken at most every
        second and at most 5% of the time; what happened after the last one is recovered
        from the trial folders by :meth:`reconcile`.
        """
        now = time.monotonic()
        if throttle and now - self._last_state_save < max(1.0, 20 * self._state_cost_s):
            return
        state = {
            "searcher": self._searcher.state(),
            "scheduler": self._scheduler.state(),
            "next_id": self._next_id,
            "closed": sorted(self._closed),
        }
        self._storage.save_state("state", state)
        self._last_state_save = time.monotonic()
        self._state_cost_s = self._last_state_save - now

    def reconcile(self, next_id: int, closed: set[str]) -> None:
        """After a resume: catch searcher and scheduler (restored from their last snapshot)
        up with what the trial folders say happened after it.

        Trials created after the snapshot are proposed again so the searcher counts them
        (a searcher restored to the same state proposes the same config: it is checked);
        trials that ended after it are reported to both.
        """
        mismatched = []
        for trial_id, trial in sorted(self.trials.items()):
            if int(trial_id) >= next_id:
                replay = self._searcher.suggest(trial_id)
                if not isinstance(replay, dict):
                    self._unknown.add(trial_id)  # it declined: never report this trial to it
                if not isinstance(replay, dict) or json.loads(dumps(replay)) != trial.config:
                    mismatched.append(trial_id)
                self._scheduler.on_trial_add(trial_id)
            if trial.status.is_finished() and trial_id not in closed:
                end = {TrialStatus.COMPLETED: TrialEnd.COMPLETED, TrialStatus.STOPPED: TrialEnd.STOPPED,
                       TrialStatus.FAILED: TrialEnd.FAILED}[trial.status]
                self._close(trial, end)
                if end is TrialEnd.COMPLETED:
                    self._scheduler.on_trial_complete(trial_id)
                elif end is TrialEnd.FAILED:
                    self._scheduler.on_trial_error(trial_id)
                else:
                    self._scheduler.on_trial_remove(trial_id)
        self._closed |= closed
        if mismatched:
            logger.warning(
                "Trials %s were created after the searcher's last saved state and it now proposes other "
                "configs for them; they keep the configs they ran with.", ", ".join(mismatched))

    def _later(self, write: Callable[..., Any], *args: Any) -> None:
        """Queue a write of trial files or a callback; arguments are taken now, as they are."""
        self._io.append((write, args))

    def _flush(self) -> None:
        """Do the queued writes, in order. An item leaves the queue only once done, so a
        Ctrl-C in the middle leaves the rest (and at worst a repeat) to the final flush."""
        while self._io:
            write, args = self._io[0]
            write(*args)
            self._io.popleft()

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in list(self._callbacks):
            try:
                getattr(callback, hook)(*args)
            except Exception:
                logger.exception("Callback %s.%s failed; it is disabled for the rest of the experiment.",
                                 type(callback).__name__, hook)
                self._callbacks.remove(callback)
