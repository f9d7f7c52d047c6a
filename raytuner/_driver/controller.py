"""The Ray driver: a thin shell around the trial lifecycle.

Each turn of the loop: let the lifecycle fill free slots, persist, wait on every busy worker
at once with ``ray.wait``, turn each answer into a lifecycle event, carry out the commands
it returns. Every decision about trials is in :mod:`raytuner._driver.lifecycle` (no Ray);
this module owns the Ray side only: actors (through the pool), futures, the trainable's
object ref, storage writes and callbacks.

Persistence comes last on purpose: the workers get their answers and their next trials,
and only then are trial files and callbacks written (:meth:`Controller._flush`, once per
turn, and always before a searcher snapshot). A worker never waits on the driver's disk.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections import deque
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from raytuner._best import scope_of
from raytuner._callbacks import Callback
from raytuner._display import resume_hint
from raytuner._driver import events as ev
from raytuner._driver.autoscale import Capacity
from raytuner._driver.control import ControlInbox, applied_limits, describe_applied, record_limits
from raytuner._driver.lifecycle import Lifecycle, LifecycleSettings
from raytuner._driver.pool import acquire_pool, all_gone, park_pool
from raytuner._driver.progress import Progress
from raytuner._driver.ray_init import check_client_storage
from raytuner._driver.run_clock import RunClock
from raytuner._driver.settings import ExperimentSettings
from raytuner._driver.stall import StallWatch
from raytuner._driver.tidy import tidy_after_lost_workers
from raytuner._driver.wind_up_calls import WindUpCalls
from raytuner._results import Results
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation
from raytuner._trial import Trial, TrialResult
from raytuner._worker import logs as _logs
from raytuner._worker.protocol import Event, Signal, TrialSpec, spec_to_wire
from raytuner.errors import StorageError
from raytuner.schedulers import Scheduler
from raytuner.search import Searcher

logger = logging.getLogger("raytuner")
#: Workers started in one turn of the loop, at most.
SPAWN_PER_TURN = 32
#: How long an end of every trial (a time budget, an ``end_experiment`` command) waits for
#: the answers already on their way: a worker sends streamed reports within its linger
#: (``LINGER_S``, 50 ms), or once the store throttle lets their checkpoint go in, so that
#: the reports a trial made before the end are recorded, not lost. A trial in the middle of
#: a step has nothing on its way; the end waits this long for it, no longer.
SETTLE_S = 1.0


class Controller:
    def __init__(self, settings: ExperimentSettings, *, trainable_ref: Any, searcher: Searcher, scheduler: Scheduler,
                 storage: ExperimentStorage, callbacks: Sequence[Callback] = (), meta: dict[str, Any] | None = None,
                 trials: dict[str, Trial] | None = None, next_id: int = 0, capacity: int,
                 exploits: dict[str, Any] | None = None):
        import ray

        self.settings = settings
        self._trainable = [trainable_ref]
        self._storage = storage
        self._callbacks = list(callbacks)
        self._meta = dict(meta or {})
        # Workers put checkpoints there themselves, once they see that it is this run's.
        self._where = ExperimentLocation(storage.location, self._meta["run_id"],
                                         ray.get_runtime_context().get_node_id())
        self.life = Lifecycle(
            LifecycleSettings(
                metric=settings.metric, mode=settings.mode, num_trials=settings.num_trials,
                max_concurrent=settings.max_concurrent, resource_attr=settings.resource_attr,
                max_failures=settings.max_failures, fail_fast=settings.fail_fast,
                checkpoints_to_keep=settings.checkpoints_to_keep, experiment_path=storage.location,
                checkpoint_interval_s=settings.checkpoint_interval_s,
            ),
            searcher, scheduler, trials=trials, next_id=next_id, exploits=exploits,
            stored=self._stored,  # a checkpoint, a PBT clone's copy, or what it copies, may be gone
            carry_out=self._apply,
        )
        self._calls: dict[Any, str] = {}  # outstanding call -> the trial it answers for
        self._briefed: set[Any] = set()  # workers given this run's part of a trial spec (spec_to_wire)
        self._wind_up_calls = WindUpCalls()
        self._starts: dict[Any, Any] = {}  # outstanding start call -> its worker
        self._io: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()  # see _flush
        self._checkpoint_io: set[str] = set()  # trials with checkpoint deletions or copies in self._io
        self._refused: StorageError | None = None  # a worker's checkpoint refused by the storage: see _event
        self._state_cost_s = 0.0
        self._unrecorded = False  # a control command taken in whose history line the disk refused
        self._last_state_save = 0.0
        self._control = ControlInbox(storage, self._meta.get("run_id"))
        self._clock = RunClock(self._meta)  # the time budget counts the earlier runs' time too
        self._deadline = math.inf
        self._pool = acquire_pool(settings.resources, settings.gpu_memory_fraction)
        self._capacity = Capacity(settings.resources, capacity)  # trials the cluster can hold at once
        self._lost_workers = False  # a worker died during a call: its leftovers are tidied at the run's end
        self._killed: list[Any] = []  # workers killed while their trial ran (the run's end): likewise
        self._stall = StallWatch(settings.name, settings.resources)  # says if a lost node leaves trials waiting
        self._progress = Progress(self.life.trials, name=settings.name, metric=settings.metric, mode=settings.mode,
                                  total=self.life.num_trials, verbose=settings.verbose, describe=scheduler.describe,
                                  scope=scope_of(self._meta), ran_before=self._clock.before)
        self._do: dict[type, Callable[[Any], None]] = {
            ev.Launch: self._launch, ev.Deliver: self._deliver, ev.Spawn: self._spawn,
            ev.StopSoon: lambda c: self._wind_up_calls.stop_soon(c.worker, c.trial_id),
            ev.Release: lambda c: self._pool.release(c.worker), ev.Discard: self._discard,
            ev.WriteConfig: self._write_config,
            ev.WriteTrial: lambda c: self._later(self._storage.write_trial, c.trial_id, c.record),
            ev.AppendResults: lambda c: self._later(self._storage.append_results, c.trial_id, c.rows),
            ev.DeleteCheckpoints: self._delete_checkpoints,
            ev.CopyCheckpoint: self._copy_checkpoint,
            ev.AppendError: lambda c: self._later(self._storage.append_error, c.trial_id, c.text),
            ev.AppendLog: lambda c: self._later(self._storage.append_log, c.trial_id, c.text),
            ev.ShowWarnings: lambda c: self._progress.trial_warned(c.trial_id, c.notes),
            ev.Notify: self._notify,
            ev.ControlApplied: self._control_applied,
        }

    @property
    def trials(self) -> dict[str, Trial]:
        return self.life.trials

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> Results:
        import ray

        self._clock.start()  # the run time as of now: the views count on from here, not from the last run's end
        self._meta.update(status="RUNNING", start_time=self._meta.get("start_time") or time.time(),
                          **self._clock.record())
        self._meta.pop("error", None)  # a resume's: the last run's failure is over
        self._storage.write_experiment(self._meta)
        self._storage.sync()  # in a bucket too before any worker looks for this run there
        self._emit("on_experiment_start", self._storage.path, self._meta)
        self._deadline = self._clock.deadline(self.settings.time_budget_s)
        self._progress.start()
        status = "COMPLETED"
        refused: StorageError | SystemExit | None = None  # a write refused (the run stops, interrupted), or an exit
        try:
            check_client_storage(self._where)
            while True:
                self._storage.check_standing()  # no other driver took the experiment over, no lease ran out
                for command in self._control.poll():  # from the CLI or the dashboard
                    if isinstance(command, ev.EndExperiment):
                        self._settle()
                    self._apply(self.life.handle(command))
                if time.monotonic() >= self._deadline:
                    self._settle()
                    self._apply(self.life.handle(ev.Deadline()))
                    self._progress.budget_reached(self._clock.elapsed(), (self.life.num_trials or 0) - len(self.trials),
                                                  self._resume_hint())
                    status = "TIMED_OUT"
                    break
                self._apply(self.life.handle(ev.Fill(tuple(self._pool.idle), len(self._pool.starting()),
                                                     self._pool.size)))
                self._flush()
                self._storage.flush_to_disk()
                self._save_state(throttle=True)
                if self._clock.due():  # for a resume after a crash, and for the views meanwhile
                    self._meta.update(self._clock.record())
                    self._later(self._storage.write_experiment, dict(self._meta))
                starting = self._pool.starting()
                # Workers still starting matter only while there is work for them: an actor
                # the cluster has no room for may stay pending for good.
                if not self._calls and (not starting or not self.life.may_have_work()):
                    if self.life.abort is not None:
                        raise self.life.abort
                    self._apply(self.life.handle(ev.Drained()))
                    break
                timeout = max(0.0, min(0.5, self._deadline - time.monotonic()))
                ready, _ = ray.wait(list(self._calls) + starting, num_returns=1, timeout=timeout)
                for ref in ready:
                    if ref in self._calls:
                        self._apply(self.life.handle(self._event(ref)))
                        if self._refused is not None:
                            raise self._refused
                    else:
                        self._pool.started(ref)
                self._progress.update()
                self._stall.check(self.life)
                if self.life.abort is not None:
                    self._apply(self.life.end_for_abort())
                    status = "FAILED"
                    raise self.life.abort
        except (KeyboardInterrupt, SystemExit) as exc:
            # Ctrl-C; or the process asked to exit: SIGTERM (Ray's handler raises SystemExit),
            # as `timeout`, `ray job stop`, Slurm and Kubernetes send. Either way the trials
            # stop where they are and a resume continues them; the exit goes on after.
            status = "INTERRUPTED"
            self._records_left()
            try:
                self._settle()  # what the trials reported before it is recorded, with its checkpoint
            except KeyboardInterrupt:
                pass  # a second Ctrl-C: stop at once
            except StorageError as error:
                refused = error
            self._apply(self.life.handle(ev.Interrupt()))
            self._calls.clear()
            self._starts.clear()
            how = "Interrupted" if isinstance(exc, KeyboardInterrupt) else "Asked to exit (SIGTERM?)"
            logger.warning("%s: stopped running trials; results so far are in %s. Continue with: %s", how,
                           self._storage.location, self._resume_hint())
            if isinstance(exc, SystemExit):
                refused = exc  # the exit goes on once the run is wound up
        except StorageError as exc:
            status, refused = "INTERRUPTED", exc
            if self._storage.stood_down is None:  # else the experiment is another driver's: nothing of ours goes there
                self._apply(self.life.handle(ev.Interrupt()))  # its trials restart from their checkpoints on resume
            self._calls.clear()
            self._starts.clear()
        except BaseException as exc:
            status = "FAILED"  # and that error is the one raised, whatever the winding up meets
            self._records_left()
            # What ended the run, for every reader (a searcher's bug, a fatal trial error):
            # `raytuner show` says it, and the traceback is kept here.
            self._meta["error"] = "".join(traceback.format_exception(exc))
            raise
        finally:
            self._killed += park_pool(self._pool, self.settings.keep_workers_s)
            try:
                self._wind_up(status)
            except StorageError as exc:
                # The disk filled up at the very end, or is still full after stopping the run:
                # experiment.json keeps saying RUNNING, which readers show as INTERRUPTED.
                if status == "FAILED":
                    logger.error("%s", exc)
                else:
                    refused = refused or exc
            finally:
                self._progress.close()
        if refused is not None:
            raise refused
        results = self.results()
        self._emit("on_experiment_end", results)
        return results

    def _records_left(self) -> None:
        """Queue the records of an event whose handling raised (a searcher's bug) or was cut
        short (Ctrl-C): what the trial reported before it is written with the wind-up. The
        error that ended the run stays the one raised, whatever this meets."""
        try:
            self._apply(self.life.records_left())
        except Exception as exc:  # noqa: BLE001 - the run's own error is the one to raise
            logger.error("Could not queue what the trials reported before the run's end: %r", exc)

    def _wind_up(self, status: str) -> None:
        """What a run writes last, whatever ended it: the queued writes, the searcher's and
        scheduler's state (not after a control command whose line the disk refused), then
        the experiment's status; all of it uploaded for a URI. Commands still waiting are
        refused first, each with its line. None of it once another driver runs the experiment."""
        if self._storage.stood_down is not None:
            self._storage.close()  # the uploads stop; they put nothing more (the lease's fence)
            return
        if not self._unrecorded:
            self._control.refuse_the_rest(f"the run ended ({status}) before its driver read this command; "
                                          "nothing of it was applied")
        self._flush()
        if not self._unrecorded:
            self._save_state(throttle=False)
        # Once the killed workers are dead nothing stores: what they were storing goes now (a resume
        # does it after a Ctrl-C, which waits for nothing).
        if status != "INTERRUPTED" and (self._lost_workers or self._killed) and all_gone(self._killed):
            tidy_after_lost_workers(self._storage, self.trials)
        self._meta.update(status=status, end_time=time.time(), **self._clock.record())
        self._storage.write_experiment(self._meta)
        self._storage.close()  # cloud storage: the last changes are uploaded before fit() returns

    def results(self) -> Results:
        trials = [self._result(t) for t in self.trials.values()]
        return Results(self._storage.shown(), trials, self.settings.metric, self.settings.mode, self._meta)

    def _result(self, trial: Trial, *, written: bool = True) -> TrialResult:
        """The trial as the user sees it: paths under the experiment's URI for cloud storage,
        and no checkpoint if its folder was deleted meanwhile (``written``: its writes are
        done, so a missing folder is news). In a bucket the worker put the checkpoint before
        the row naming it, and the local copy holds none: not checked."""
        local = self._storage.trial_path(trial.trial_id) if written and self._storage.uri is None else None
        return TrialResult.from_trial(trial, self._storage.trial_shown(trial.trial_id), local)

    def reconcile(self, next_id: int, closed: set[str], since: Sequence[tuple[Any, ...]] = (),
                  undecided: Mapping[str, float] | None = None, decided: Mapping[str, str] | None = None) -> None:
        """After a resume: see :meth:`Lifecycle.reconcile`."""
        self._apply(self.life.reconcile(next_id, closed, since, undecided, decided))

    def retry(self, trial_ids: Sequence[str]) -> None:
        """After a resume with ``retry_failed``: each FAILED trial runs again, as a RetryTrial
        command makes it (its history line says so, with origin ``resume``)."""
        for trial_id in trial_ids:
            self._apply(self.life.handle(ev.RetryTrial(trial_id, origin="resume")))

    def _resume_hint(self) -> str:
        return resume_hint(self._storage.location, self._meta.get("trainable"), self._meta.get("trainable_file"))

    def _event(self, ref: Any) -> ev.Reported | ev.CallFailed:
        """The lifecycle event for a finished call."""
        import ray

        trial_id = self._calls.pop(ref)
        worker = self._starts.pop(ref, None)
        try:
            answer = Event.from_wire(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:  # raised inside the worker, which lives on
            self._briefed.discard(worker)  # a start that failed may not have kept the run's part of the spec
            return ev.CallFailed(trial_id, f"The trial's worker could not run it: {exc}", worker_lost=False)
        except ray.exceptions.RayError as exc:  # the actor, its process or its node died
            self._briefed.discard(worker)
            self._lost_workers = True  # it may have left checkpoint folders no report names (tidy_after_lost_workers)
            # A worker on this node leaves its last output on disk (a segfault's traceback).
            leftover = _logs.recover(str(self._storage.trial_path(trial_id)))
            if leftover:
                self._later(self._storage.append_log, trial_id, leftover)
            return ev.CallFailed(trial_id, f"The trial's worker died: {type(exc).__name__}: {exc}", worker_lost=True)
        end = answer.exit
        if end is not None and end.signal is Signal.ERROR and end.error_type == StorageError.__name__:
            # The storage refused the trial's checkpoint (a full disk...): not the trial's
            # failure. Its reports count; then the run stops as for the driver's own writes,
            # and the trial, still running as far as the lifecycle knows, restarts on resume.
            self._refused = StorageError(end.message or "The experiment's storage refused a checkpoint.")
            answer = replace(answer, exit=None)
        return ev.Reported(trial_id, answer)

    def _settle(self) -> None:
        """Before every trial is ended: take in the answers that come within ``SETTLE_S``
        (all of them, not one per turn), so that what the trials reported before the end is
        recorded. A trial in the middle of a step has nothing on its way and is not waited
        for beyond that."""
        import ray

        if not self._calls:
            return
        deadline = time.monotonic() + SETTLE_S
        # Reports held back by the checkpoint throttle go out now; each worker says how far
        # its trial had reported, which is taken in (the trial trains on meanwhile: what it
        # reports after this is not waited for).
        reported = self._wind_up_calls.hurry(self.life.busy_workers(), SETTLE_S)
        on_their_way = set(self._calls)
        while (left := deadline - time.monotonic()) > 0:
            awaited = [ref for ref, trial_id in self._calls.items()
                       if ref in on_their_way or self.trials[trial_id].iteration < reported.get(trial_id, 0)]
            if not awaited:
                return
            ready, _ = ray.wait(awaited, num_returns=1, timeout=left)
            for ref in ready:
                self._apply(self.life.handle(self._event(ref)))
                if self._refused is not None:
                    raise self._refused

    # -- commands --------------------------------------------------------------------------
    def _apply(self, commands: list[ev.Command]) -> None:
        for command in commands:
            self._do[type(command)](command)

    def _launch(self, command: ev.Launch) -> None:
        self._pool.take(command.worker)
        if command.trial_id in self._checkpoint_io:
            # The checkpoints a rewind lost go before the new attempt may store one of the
            # same name; a PBT clone's copy of its donor's checkpoint is in place before its
            # worker reads it.
            self._flush()
        spec = TrialSpec(
            trial_id=command.trial_id,
            experiment_name=self.settings.name,
            config=command.config,
            trainable=self._trainable,
            metric=self.settings.metric,
            resource_attr=self.settings.resource_attr,
            stop=self.settings.stop,
            decide_at=command.decide_at,
            storage_dir=str(self._storage.trial_path(command.trial_id)),
            storage=self._where,
            resources=self.settings.resources,
            start_iteration=command.start_iteration,
            start_time_s=command.start_time_s,
            restore=CheckpointRef(command.trial_id, command.checkpoint) if command.checkpoint else None,
            checkpoints_to_keep=self.settings.checkpoints_to_keep,
            checkpoint_interval_s=self.settings.checkpoint_interval_s,
        )
        worker = command.worker
        ref = worker.start.remote(*spec_to_wire(spec, shared=worker not in self._briefed))
        self._calls[ref] = command.trial_id
        self._starts[ref] = worker
        self._briefed.add(worker)

    def _deliver(self, command: ev.Deliver) -> None:
        worker, signal = command.worker, command.signal
        if signal in (Signal.STOP, Signal.PAUSE):
            ref = worker.finish.remote(signal.value)
        else:
            ref = worker.next_event.remote(None if signal is None else signal.value, command.decide_at)
        self._calls[ref] = command.trial_id

    def _discard(self, command: ev.Discard) -> None:
        self._briefed.discard(command.worker)
        self._pool.discard(command.worker)
        self._killed.append(command.worker)

    def _delete_checkpoints(self, command: ev.DeleteCheckpoints) -> None:
        self._checkpoint_io.add(command.trial_id)
        self._later(self._storage.delete_checkpoints, command.trial_id, command.folders)

    def _stored(self, trial_id: str, folder: str) -> bool:
        """Whether a trial's checkpoint folder is in storage now, asked by the lifecycle as it
        launches the trial. The trial's queued checkpoint writes are carried out first: a PBT
        clone's copy queued since the last flush is then made, or finds its source gone
        (deleted by hand), before the launch relies on it, never after."""
        if trial_id in self._checkpoint_io:
            self._flush()
        return self._storage.has_checkpoint(trial_id, folder)

    def _copy_checkpoint(self, command: ev.CopyCheckpoint) -> None:
        self._checkpoint_io.add(command.trial_id)
        self._later(self._storage.clone_checkpoint, command.source_trial, command.source, command.trial_id,
                    command.folder)

    def _spawn(self, command: ev.Spawn) -> None:
        # However high max_concurrent is set, one turn starts a bounded number of workers,
        # and never more than the cluster can hold: an actor with no room stays pending.
        for _ in range(min(command.count, SPAWN_PER_TURN, self._capacity.room(self._pool.size))):
            self._pool.spawn()

    def _write_config(self, command: ev.WriteConfig) -> None:
        self._storage.trial_path(command.trial_id).mkdir(parents=True, exist_ok=True)  # the worker may write there
        self._later(self._storage.write_config, command.trial_id, command.config)

    def _notify(self, command: ev.Notify) -> None:
        if command.hook == "on_trial_end":
            (trial,) = command.args
            self._progress.trial_ended(trial)
            # Taken now: the trial may change again before the queue is flushed.
            self._later(self._emit, "on_trial_end", self._result(trial, written=False))
        else:
            self._later(self._emit, command.hook, *command.args)

    def _control_applied(self, command: ev.ControlApplied) -> None:
        # First its history line, ahead of the command's effects (the lifecycle puts this
        # ahead of them too): a crash after the line leaves a resume to make them hold
        # (control.replay); a crash before it, or a disk that refuses it, leaves the
        # command's file, which the next run refuses and records. Never an effect without
        # its line.
        try:
            self._control.record(command)
        except StorageError:
            # The searcher and scheduler have taken the command in: a snapshot of them now
            # would hold it with no line. The run stops; resume starts from the last one.
            self._unrecorded = True
            raise
        limits = applied_limits(command)
        if limits:
            if "time_budget_s" in limits:
                self._deadline = self._clock.deadline(limits["time_budget_s"])
            record_limits(self._meta, limits)  # the views show them; resume restores them
            self._later(self._storage.write_experiment, dict(self._meta))
            self._progress.total = self.life.num_trials
        # The terminal says what changed the sweep (a refusal changes nothing: verbose=2 only).
        self._progress.note(describe_applied(command), verbose=1 if command.accepted else 2)

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
        self._storage.save_state("state", self.life.state())
        self._last_state_save = time.monotonic()
        self._state_cost_s = self._last_state_save - now

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
        self._checkpoint_io.clear()

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in list(self._callbacks):
            try:
                getattr(callback, hook)(*args)
            except OSError as exc:  # a full disk, a permission: its own line, not a traceback
                logger.error("Callback %s.%s could not write (%s); it is disabled for the rest of the experiment.",
                             type(callback).__name__, hook, exc)
                self._callbacks.remove(callback)
            except Exception:
                logger.exception("Callback %s.%s failed; it is disabled for the rest of the experiment.",
                                 type(callback).__name__, hook)
                self._callbacks.remove(callback)
