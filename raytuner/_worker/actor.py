"""The trial worker: a Ray actor that runs trainables in a thread, one trial at a time.

Protocol (docs/architecture.md, "The report path"): the controller keeps one call outstanding per
busy worker. :meth:`TrialWorker.start` and :meth:`TrialWorker.next_event` block until the
trial has something to say and return it as an :class:`Event`: the reports made since the
last call, and the trial's end if it ended. Each ``next_event`` call carries the decision
for the report the trial is blocked on, so a decision costs one round trip at most; a STOP
or PAUSE goes by :meth:`TrialWorker.finish`, which returns with the trial's end.

A report blocks the training loop only when its resource reaches the scheduler's next
decision point (``decide_at``); below it, reports stream and training goes on.
"""

from __future__ import annotations

import gc
import math
import queue
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

from raytuner._storage.trial_files import CheckpointRef
from raytuner._worker import accelerators as _accelerators
from raytuner._worker import quiet_tf as _quiet_tf
from raytuner._worker import session as _session
from raytuner._worker import tf_gradients as _tf_gradients
from raytuner._worker.checkpoints import Orphaned, TrialCheckpoints
from raytuner._worker.freshness import changed_modules
from raytuner._worker.logs import TrialLog
from raytuner._worker.notes import TrialNotes
from raytuner._worker.outbox import Outbox
from raytuner._worker.protocol import Event, Report, Signal, TrialExit, TrialSpec, spec_from_wire
from raytuner._worker.scratch import Scratch
from raytuner.errors import CheckpointGoneError, ReportError, ResourceError, TrialStopped, is_fatal

LINGER_S = 0.05
#: The actor's second concurrency group, of one thread: :meth:`TrialWorker.hurry` runs there
#: while the default group's call waits for the trial's news.
WIND_UP = "wind_up"
#: A trial that prints without reporting gets its log shipped this often (the trial page
#: shows it live); a log-only answer costs the driver one more call.
LOG_FLUSH_S = 1.0


class TrialRun(_session.Session):
    """One trial inside a worker: the thread that runs the trainable and its report path."""

    def __init__(self, spec: TrialSpec, fn: Callable[..., Any], events: queue.SimpleQueue):
        self.spec = spec
        self._fn = fn
        self._events = events
        self._cond = threading.Condition()
        self._decide_at = spec.decide_at
        self._blocked = False
        self._decision: Signal | None = None
        self._pending: Signal | None = None
        self._ended: Signal | None = None
        self._returned = False  # the trainable returned a mapping: its last report (_report_returned)
        self.iteration = spec.start_iteration
        self._last_resource: float | None = None  # this run's; a resumed run may re-report older ones
        self._reported: set[str] = set()  # every metric name this run reported (for stop=)
        self._t0 = time.monotonic() - spec.start_time_s
        self._scratch = Scratch(spec.trial_id)
        self._trial_dir: Path | None = None
        self._checkpoints = TrialCheckpoints(spec, self._scratch.path)
        self._outbox = Outbox(events, self._checkpoints.store, lambda staged: shutil.rmtree(staged.folder, True),
                              keep=spec.checkpoints_to_keep, interval=spec.checkpoint_interval_s)
        self.checkpoint_dir: Path | None = None  # filled in by run(), before the trainable starts
        self.log = TrialLog(spec.storage_dir)
        self.notes = TrialNotes()

    @property
    def trial_dir(self) -> Path:
        if self._trial_dir is None:
            if self._checkpoints.sees_folder():
                self._trial_dir = Path(self.spec.storage_dir)  # the controller made it
            else:
                self._trial_dir = self._scratch.path() / "trial"
                self._trial_dir.mkdir(parents=True, exist_ok=True)
        return self._trial_dir

    def context(self) -> _session.TrialContext:
        spec = self.spec
        return _session.TrialContext(
            spec.trial_id, spec.experiment_name, self.trial_dir, spec.config, spec.resources, self.iteration
        )

    def new_checkpoint_dir(self) -> Path:
        return self._checkpoints.new_folder()

    # -- called by the controller's thread (through the actor) ---------------------------
    def deliver(self, decision: Signal | None, decide_at: float) -> None:
        with self._cond:
            self._decide_at = decide_at
            if decision is None:
                return
            if self._blocked:
                self._decision = decision
                self._cond.notify_all()
            elif decision is not Signal.CONTINUE:
                self._pending = decision  # applied at the trial's next report

    # -- called by the trainable's thread (the Session API) --------------------------------
    def decision_due(self, metrics: Mapping[str, Any]) -> bool:
        if self.spec.resource_attr is None:
            resource = self.iteration + 1
        else:
            resource = metrics.get(self.spec.resource_attr)
        with self._cond:
            return resource is not None and resource >= self._decide_at

    def report(self, metrics: Mapping[str, Any], checkpoint: Any = None, *,
               last_checkpoint: Callable[[], Any] | None = None) -> Signal:
        spec = self.spec
        clean = _session.clean_metrics(metrics, spec.trial_id, spec.metric)
        self.check_metric(clean)
        self._reported.update(clean)
        with self._cond:
            if self._ended is not None:  # a decision already ended the trial
                raise TrialStopped(self._ended)
            pending, self._pending = self._pending, None
        if pending is not None and pending is not Signal.STOP:
            return self._apply(pending)
        self.iteration += 1
        if spec.resource_attr is None:
            resource: float = self.iteration
        else:
            if spec.resource_attr not in clean:
                msg = (
                    f"The scheduler counts resource by {spec.resource_attr!r}, but trial "
                    f"{spec.trial_id} reported {sorted(clean)}. Report {spec.resource_attr!r} "
                    "each time, or pass `resource_attr=None` to count reports."
                )
                raise ReportError(msg)
            resource = clean[spec.resource_attr]
            if self._last_resource is not None and not resource > self._last_resource:
                # Caught here, in the trial, so that it ends the experiment with this message
                # instead of the report being skipped without a word on the driver.
                raise ResourceError.not_increasing("The Tuner", spec.trial_id, spec.resource_attr,
                                                   self._last_resource, resource)
            self._last_resource = resource
        elapsed = time.monotonic() - self._t0
        so_far = {**clean, "iteration": self.iteration, "time_total_s": elapsed}
        # The trial's last report: a stop sent while it trained (its work since counts, as
        # far as this report), or the Tuner's stop= reached.
        end = pending if pending is not None else Signal.COMPLETED if self._returned or (
            spec.stop and spec.stop.reached(spec.trial_id, so_far)) else None
        if checkpoint is None and end is not None and last_checkpoint is not None:
            checkpoint = last_checkpoint()
        staged = self._checkpoints.stage(checkpoint, self.iteration) if checkpoint is not None else None
        name = staged.name if staged is not None else None
        if end is not None:
            self._outbox.send(Report(self.iteration, resource, clean, elapsed, time.time(), name), staged, final=True)
            return self._apply(end)
        with self._cond:
            needs_decision = resource >= self._decide_at
            self._blocked = needs_decision
        # Out of the lock: the outbox may wait for a checkpoint to be stored.
        self._outbox.send(Report(self.iteration, resource, clean, elapsed, time.time(), name, needs_decision), staged)
        with self._cond:
            if not needs_decision:
                return Signal.CONTINUE
            while self._decision is None:
                self._cond.wait()
            decision, self._decision, self._blocked = self._decision, None, False
        return self._apply(decision)

    def _restore(self, ref: CheckpointRef) -> Path:
        """A private copy of the checkpoint the trial restarts from; one gone from the storage
        since the driver checked it (deleted by hand) is a :class:`CheckpointGoneError`, which
        the driver answers with a relaunch from the newest one left, not a failure."""
        try:
            return self._checkpoints.restore(ref)
        except FileNotFoundError as exc:
            raise CheckpointGoneError(f"Trial {ref.trial_id}'s checkpoint {ref.name} was gone from the "
                                      f"experiment's storage when its worker came to read it: {exc}") from None

    def _report_returned(self, returned: Mapping[str, Any]) -> None:
        """The mapping a trainable that reported nothing returned is its one report (Ray
        Tune's function API takes it as the final result), sent as the trial's end, with no
        decision to wait for: without it its metrics would be lost without a word. (A
        trainable that reported, such as one returning Keras's ``history.history``, keeps
        its reports; what it returns is not looked at.)"""
        self._returned = True
        self.report(returned)

    def _check_stop_reported(self) -> None:
        """Raise :class:`ReportError` if the trainable ended on its own, after reporting from
        its start, without any report of a key its ``stop=`` thresholds need (a typo, most
        likely: nothing stopped the trial by it). A run restarted from a checkpoint, or
        ended by a decision, may not have come to a report that holds it."""
        spec = self.spec
        if not spec.stop or self._ended is not None or spec.start_iteration or self.iteration == 0:
            return
        spec.stop.check_reported(spec.trial_id, self._reported)

    def stop_soon(self) -> None:
        """See :meth:`TrialWorker.stop_soon`."""
        with self._cond:
            # A trial blocked on a decision gets the STOP as that decision, with the answer
            # to the report it waits on; one that ended needs none.
            if not self._blocked and self._ended is None and self._pending is None:
                self._pending = Signal.STOP
                self._cond.notify_all()  # whoever waits on the run hears of it now

    def hurry(self) -> int:
        """See :meth:`TrialWorker.hurry`."""
        self._outbox.hurry()
        return self.iteration

    def _apply(self, decision: Signal) -> Signal:
        if decision is not Signal.CONTINUE:
            self._ended = decision  # the caller ends the trial: rt.report raises, Keras stops fit
        return decision

    def run(self) -> None:
        end: TrialExit
        _session._install(self)
        try:
            self.log.start()
            self.notes.start()
            if self.spec.restore is not None:
                self.checkpoint_dir = self._restore(self.spec.restore)
            returned = self._fn(dict(self.spec.config))
            if isinstance(returned, Mapping) and self.iteration == self.spec.start_iteration:
                self._report_returned(returned)  # it returned its result instead of reporting it
            self._check_stop_reported()
            # A stop or pause applied at one of its reports ended it, and it returned (the
            # Keras callback stops fit where rt.report raises): that is its end. Otherwise it
            # returned of its own accord, also when a stop was sent too late to reach it.
            ended = self._ended if self._ended in (Signal.STOP, Signal.PAUSE) else Signal.COMPLETED
            end = TrialExit(ended)
        except TrialStopped as stopped:
            end = TrialExit(Signal(stopped.decision))
        except BaseException as exc:  # noqa: BLE001 - everything a trainable raises is its failure
            end = TrialExit(Signal.ERROR, traceback.format_exc(), type(exc).__name__, str(exc),
                            fatal=is_fatal(exc))
        finally:
            self.notes.stop()
            self.log.stop()
            _session._install(None)
        try:
            self._outbox.drain()  # every report goes out before the trial's end
        except Orphaned:
            end = TrialExit(Signal.STOP)  # its driver is gone: nothing more to tell
        except BaseException as exc:  # noqa: BLE001 - a checkpoint that could not be stored fails the trial
            if end.signal is not Signal.ERROR:
                end = TrialExit(Signal.ERROR, "".join(traceback.format_exception(exc)), type(exc).__name__, str(exc),
                                fatal=is_fatal(exc))
        _release_trial_state()
        self._checkpoints.discard_unreported()
        self._scratch.remove()
        self._events.put(end)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _release_trial_state() -> None:
    """Leave nothing of the last trial behind for the next one on this worker.

    Plain Python objects of the trial are freed by reference counting when its thread ends.
    A framework's graphs and device buffers are not, so those get cleared and a collection;
    it is skipped otherwise, as it costs tens of milliseconds per trial in a process that
    holds Ray. Then TensorFlow's custom-gradient registry lets go of the graphs just
    collected (see :mod:`raytuner._worker.tf_gradients`).
    """
    if "keras" in sys.modules:
        try:
            sys.modules["keras"].backend.clear_session(free_memory=False)  # collected below, cheaper
        except TypeError:  # Keras < 3.6 has no free_memory argument (and does not collect)
            sys.modules["keras"].backend.clear_session()
        _collect()
    elif "torch" in sys.modules or "jax" in sys.modules or "tensorflow" in sys.modules:
        _collect()
    if "tensorflow" in sys.modules:
        _tf_gradients.prune()


_frozen = False


def _collect() -> None:
    """A full collection that skips what the framework's import left alive.

    A full collection walks every tracked object, and a worker that imported TensorFlow
    holds millions (its modules, Keras', Ray's): about 0.2 s per trial on 2 cores, 6% of a
    10-epoch Keras trial of the digits MLP (benchmarks/keras_throughput.py). After its first
    collection the worker freezes what survived (``gc.freeze``: the framework, and nothing
    of the trial, just collected), so later collections walk only what later trials made.
    What is frozen is still freed by reference counting; only a reference cycle among frozen
    objects would never be collected, and those are the imported framework's own.
    """
    global _frozen
    gc.collect()
    if not _frozen:
        gc.freeze()
        _frozen = True


class TrialWorker:
    """A reusable trial process; decorated with ``ray.remote`` by the worker pool."""

    def __init__(self, gpu_memory_fraction: float | None = None, has_gpu: bool = False) -> None:
        _accelerators.configure(gpu_memory_fraction, has_gpu=has_gpu)
        _accelerators.after_import("tensorflow", _tf_gradients.install)
        _quiet_tf.arm()  # TensorFlow's start-up lines would land in the user's live table
        self._fns: dict[str, Callable[..., Any]] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._run: TrialRun | None = None
        self._shared: tuple[Any, ...] | None = None  # the run's part of a spec: see protocol.spec_to_wire
        self._born = time.time()

    def node_id(self) -> str:
        return _node_id()

    def changed_modules(self) -> list[str]:
        """Modules this worker imported whose files changed since it started: a new
        experiment must not take it (:mod:`raytuner._worker.freshness`)."""
        return changed_modules(self._born)

    def start(self, own: tuple[Any, ...], shared: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """Start a trial (a spec from :func:`~raytuner._worker.protocol.spec_to_wire`; the
        run's part only with this worker's first trial of the run) and return its first
        event, as :meth:`Event.to_wire` has it, as every call here does."""
        if shared is not None:
            self._shared = shared
        elif self._shared is None:
            raise RuntimeError("TrialWorker.start() got no experiment settings and has none from an earlier trial")
        spec = spec_from_wire(own, self._shared)
        fn = self._resolve(spec.trainable[0])
        self._events = queue.SimpleQueue()
        self._run = TrialRun(spec, fn, self._events)
        threading.Thread(target=self._run.run, name=f"trial-{spec.trial_id}", daemon=True).start()
        return self._drain()

    def next_event(self, decision: str | None, decide_at: float) -> tuple[Any, ...]:
        """``decision``: a :class:`Signal`'s value, or None."""
        if self._run is None:
            raise RuntimeError("TrialWorker.next_event() called with no trial running")
        self._run.deliver(None if decision is None else Signal(decision), decide_at)
        return self._drain()

    def hurry(self) -> int:
        """The driver winds the run up: the trial's queued reports go out now instead of
        waiting for the checkpoint throttle, and reach the driver through the calls it makes
        (``next_event``). Returns the iteration of the last report the trial made (0: none
        or no trial), which the driver takes in before it ends the trial. Called in the
        :data:`WIND_UP` concurrency group, so it runs while a call of the default group waits."""
        run = self._run
        return run.hurry() if run is not None else 0

    def stop_soon(self, trial_id: str) -> None:
        """A control command stops the trial: its next report is its last, recorded, and
        ends it as a STOP delivered by :meth:`finish` would. Called in the :data:`WIND_UP`
        concurrency group while a call of the default group waits for the trial's news (the
        report a STOP sent with the answer to that news would have come one report late).
        A call that arrives after its trial ended, maybe with the next one running, does
        nothing."""
        run = self._run
        if run is not None and run.spec.trial_id == trial_id:
            run.stop_soon()

    def finish(self, decision: str) -> tuple[Any, ...]:
        """Deliver a STOP or PAUSE and wait for the trial to end: every report it made
        meanwhile, and its end. The controller may queue the worker's next trial behind
        this call, which is why it returns only once the trial's thread is done."""
        if self._run is None:
            raise RuntimeError("TrialWorker.finish() called with no trial running")
        self._run.deliver(Signal(decision), math.inf)
        reports: list[Report] = []
        while True:
            item = self._events.get()
            if isinstance(item, TrialExit):
                return self._answer(reports, item)
            reports.append(item)

    def _drain(self) -> tuple[Any, ...]:
        """The next event: waits for the trial's first news, then gathers what follows.

        Streamed reports (no decision due) linger up to ``LINGER_S`` for company, so a
        short trial's reports and its end come back in one call instead of one each; a
        report that awaits a decision, or the trial's end, returns at once.
        """
        reports: list[Report] = []
        while True:
            try:
                item = self._events.get(timeout=LOG_FLUSH_S)
                break
            except queue.Empty:
                if self._run is not None and self._run.log.pending():
                    return self._answer(reports)
        deadline = time.monotonic() + LINGER_S
        while True:
            if isinstance(item, TrialExit):
                return self._answer(reports, item)
            reports.append(item)
            if item.awaits_decision:
                return self._answer(reports)
            try:
                item = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return self._answer(reports)

    def _answer(self, reports: list[Report], exit: TrialExit | None = None) -> tuple[Any, ...]:
        """The event to return, with what the trial printed since the last one."""
        run = self._run
        if exit is not None:
            self._run = None
        if run is None:
            return Event(reports, exit).to_wire()
        return Event(reports, exit, run.log.take(), run.notes.take()).to_wire()

    def _resolve(self, ref: Any) -> Callable[..., Any]:
        import ray

        key = ref.hex()
        if key not in self._fns:
            self._fns.clear()  # one experiment's trainable at a time
            self._fns[key] = ray.get(ref)
        return self._fns[key]
