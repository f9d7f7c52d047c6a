r"""A trial run's reports on their way to the driver: in order, each once its checkpoint is stored.

A report that carries a checkpoint may leave the worker only once the checkpoint is in
place in storage (the row that names it commits it). Storing takes time (flushing a large
folder to disk, an upload), so it is done here, on a thread of the outbox's own, while the
training loop goes on: ``report`` returns as soon as the checkpoint is staged. Reports
behind one that waits for its checkpoint wait too, so the driver sees them in the order
they were made; with nothing ahead, a report goes out at once, without a thread.

With ``keep`` set (the Tuner's ``checkpoints_to_keep``), storing is throttled and
overtaken checkpoints are dropped. At most one store starts per interval: a checkpoint
staged when the last store started longer ago than that (or none has yet) and nothing is
ahead of it is stored at once, so a trial that checkpoints less often waits for nothing;
one staged sooner waits until the interval is up. A staged checkpoint that is not being
stored yet and that ``keep`` newer staged ones have overtaken is dropped: its copy is
removed unstored and its report goes out in its place without a checkpoint. The driver
would delete it as soon as those newer ones are committed anyway, so storing it would only
cover the moments in between, at the cost of writing every byte of it while a faster
trainable waits on the disk. So when the interval is up the newest staged checkpoint is
stored (with ``keep=1``; with more, the oldest of the ``keep`` newest), whatever the rate of
checkpoints: the stored one is never more than about the interval and one store behind
the newest. The trade-off: a crash loses up to that much training, and the reports behind
a waiting checkpoint wait with it (they go in order; with ``keep=1``, until the trial's next
checkpoint overtakes it). Nothing waits for the interval once a queued report awaits a
decision (its training loop waits for the decision, so nothing is staged behind it and it
is stored at once), nor a trial's last report (``final``) or its end (:meth:`Outbox.drain`),
so a trial's last checkpoint is always stored, at once. ``keep=None`` neither waits nor drops.

The interval is the Tuner's ``checkpoint_interval_s`` when given (0: no waiting), else it
adapts to what a store costs: with :math:`d` the duration of the trial run's last store
(its copy flushed to disk, or its upload),

.. math:: T = \min\bigl(T_{\max},\ \max(T_{\min},\ d / s)\bigr),
   \qquad T_{\min} = 1\ \mathrm{s},\ s = 0.2,\ T_{\max} = 60\ \mathrm{s}

(:data:`STORE_INTERVAL_S`, :data:`STORE_SHARE`, :data:`STORE_INTERVAL_MAX_S`), counted from
that store's start: storing takes at most the share :math:`s` of a trial's time, until the
interval reaches :math:`T_{\max}`, which bounds the training a crash may cost. A store of
under :math:`s T_{\min}` = 0.2 s (small checkpoints; 256 MB flushed to a local disk here)
keeps the second of :math:`T_{\min}`; an upload of 1 s, one store per 5 s; 12 s or more,
one a minute. Until the first store has finished, :math:`T_{\min}` applies. :math:`s` was
chosen by measurement (``benchmarks/checkpoint_cadence.py``, RESULTS.md): against a fixed
second, 0.05-0.2 all cut uploads to a bucket from 7-8 of 10 checkpoints to 2-3 and a
sweep's time by 10-15%; on a local disk 0.05 and 0.1 also stored fewer, at no gain in time
and twice the reports' lag, where 0.2 stores as the fixed second does.

With ``keep=None``, at most :data:`MAX_STAGED` checkpoints wait to be stored; a report
with one more blocks until one is done, so staged copies cannot pile up on disk. With
``keep`` set, dropping bounds them instead (the one being stored and ``keep`` behind it),
so training never waits for the disk. A report that awaits a decision is sent the same
way; its training loop waits for the decision anyway.

A store that fails for a passing cause (a bucket that refuses connections for a moment,
times out, answers 5xx or throttles) is made again by the store itself, with backoff, for
up to :data:`raytuner._storage.remote.RETRY_S`; the reports behind it wait meanwhile, in
order, as for any store. If storing fails, the reports from that one on are not sent (none
of them may name a checkpoint that is not there) and the error is raised in the training
thread, at its next report or at the end of the trial (:meth:`Outbox.drain`): a
:class:`~raytuner.errors.StorageError` (the storage refused, or stayed out of reach) stops
the run, INTERRUPTED, and the trial restarts from its last stored checkpoint on resume.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from typing import Callable

from raytuner._worker.checkpoints import Staged
from raytuner._worker.protocol import Report

#: Checkpoints staged and waiting to be stored, at most, when none are dropped.
MAX_STAGED = 2

#: With ``keep`` set and no fixed interval, the least time between the starts of two stores
#: of a trial run's checkpoints, unless a report awaits a decision or the trial ends, and
#: the most it grows to, :math:`T_{\min}` and :math:`T_{\max}` (see the module docstring).
STORE_INTERVAL_S = 1.0
STORE_INTERVAL_MAX_S = 60.0

#: The share of a trial's time that storing its checkpoints may take, :math:`s`: the
#: adaptive interval is the last store's duration over it.
STORE_SHARE = 0.2


class Clock:
    """The outbox's time: :meth:`now` in seconds, and :meth:`wait` on the outbox's condition
    (held by the caller) for at most ``timeout`` seconds or until it is notified."""

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    def wait(cond: threading.Condition, timeout: float) -> None:
        cond.wait(timeout)


class Outbox:
    """Sends a trial run's reports into ``events`` (the worker's queue of news for the driver).

    Args:
        events: Where reports go for the driver (the actor's next answer).
        store: Puts a staged checkpoint in place; raises if it cannot.
        discard: Removes a staged checkpoint that will not be stored.
        keep: Drop a staged checkpoint once this many newer ones are staged behind it,
            unless it is being stored, and start at most one store per interval (the
            Tuner's ``checkpoints_to_keep``); None: neither.
        interval: With ``keep``, the least seconds between the starts of two stores (the
            Tuner's ``checkpoint_interval_s``); None: adapted to the stores' duration (see
            the module docstring).
        clock: Where the throttle reads the time and waits; None: the monotonic clock.
    """

    def __init__(self, events: queue.SimpleQueue, store: Callable[[Staged], None],
                 discard: Callable[[Staged], None], keep: int | None = None, interval: float | None = None,
                 clock: Clock | None = None):
        self._events = events
        self._store = store
        self._discard = discard
        self._keep = keep
        self._interval = interval
        self._clock = clock if clock is not None else Clock()
        self._cond = threading.Condition()
        # (report, its staged checkpoint, whether it must not wait for the throttle); the
        # head stays until it is sent
        self._items: deque[tuple[Report, Staged | None, bool]] = deque()
        self._staged = 0
        self._urgent = 0  # queued reports that must not wait: everything ahead of them goes at once
        self._draining = False
        self._next_store: float | None = None  # when the next store may start, by the clock
        self._busy = False  # the thread runs
        self._storing: Staged | None = None  # the checkpoint the thread is storing
        self._error: BaseException | None = None

    def send(self, report: Report, staged: Staged | None = None, final: bool = False) -> None:
        """Send ``report`` once everything before it is sent and ``staged`` (the checkpoint it
        names) is stored; ``final``: the trial's last report, which waits for no throttle
        (nor does one that awaits a decision). Raises the error of a checkpoint that could
        not be stored."""
        dropped: list[Staged] = []
        try:
            with self._cond:
                self._raise_if_failed(staged)
                if staged is None and not self._items:
                    self._events.put(report)
                    return
                if staged is not None:
                    dropped = self._overtake()
                # With keep set, overtaking has just made room (the one being stored and
                # fewer than keep behind it): only keep=None waits for the disk.
                while staged is not None and self._keep is None and self._staged >= MAX_STAGED and self._error is None:
                    self._cond.wait()
                self._raise_if_failed(staged)
                urgent = final or report.awaits_decision
                self._items.append((report, staged, urgent))
                self._staged += staged is not None
                self._urgent += urgent
                if staged is not None and len(self._items) == 1 and self._throttled_for(staged) <= 0:
                    # Due at once with nothing ahead: it is the thread's next store, claimed
                    # now, so a newer checkpoint staged before the thread gets to it cannot
                    # overtake it ("stored at once" must not depend on the thread's start).
                    self._storing = staged
                if not self._busy:
                    self._busy = True
                    threading.Thread(target=self._run, name="raytuner-outbox", daemon=True).start()
                if self._keep is not None:
                    # A thread waiting out the interval looks again: this report may await a
                    # decision, or overtaking may have left the head without a checkpoint.
                    self._cond.notify_all()
        finally:
            for item in dropped:  # out of the lock: removing a large folder takes a while
                self._discard(item)

    def hurry(self) -> None:
        """The run winds up (its time budget, Ctrl-C, an end command): from now on nothing
        waits for the throttle, so every queued report goes out as soon as the checkpoint it
        names is stored, while the driver still takes reports in."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every report is sent; raise the error of a checkpoint that could not be stored."""
        self.hurry()  # the trial is over: nothing waits for the throttle any more
        with self._cond:
            while self._items and self._error is None:
                self._cond.wait()
            self._raise_if_failed(None)

    def _overtake(self) -> list[Staged]:
        """Before one more checkpoint is queued: take the checkpoints out of the reports that
        it and those queued since overtake (see the module docstring); return them."""
        if self._keep is None:
            return []
        dropped: list[Staged] = []
        newer = 1  # the one about to be queued
        for index in range(len(self._items) - 1, -1, -1):
            report, staged, urgent = self._items[index]
            if staged is None or staged is self._storing:
                continue
            if newer >= self._keep:
                self._items[index] = (dataclasses.replace(report, checkpoint=None), None, urgent)
                self._staged -= 1
                dropped.append(staged)
            else:
                newer += 1
        return dropped

    def _throttled_for(self, staged: Staged | None) -> float:
        """How long the head of the queue, naming ``staged``, has yet to wait; <= 0: none."""
        if staged is None or self._keep is None or self._urgent or self._draining or self._next_store is None:
            return 0.0
        return self._next_store - self._clock.now()

    def _pace(self, started: float, duration: float | None) -> None:
        """Set when the store after the one that ``started`` may start: ``duration`` is its
        duration once it is done, None while it runs (see the module docstring)."""
        if self._interval is not None:
            interval = self._interval
        elif duration is None:
            interval = STORE_INTERVAL_S
        else:
            interval = min(STORE_INTERVAL_MAX_S, max(STORE_INTERVAL_S, duration / STORE_SHARE))
        self._next_store = started + interval

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._items or self._error is not None:
                        self._busy = False
                        self._cond.notify_all()
                        return
                    report, staged, urgent = self._items[0]
                    wait_s = self._throttled_for(staged)
                    if wait_s <= 0:
                        break
                    # Woken early by a send or drain; the head may have changed meanwhile
                    # (overtaken), so it is read again.
                    self._clock.wait(self._cond, wait_s)
                self._storing = staged
                if staged is not None:
                    started = self._clock.now()
                    self._pace(started, None)
            try:
                if staged is not None:
                    self._store(staged)
            except BaseException as exc:  # noqa: BLE001 - raised in the training thread instead
                with self._cond:
                    self._error = exc
                    self._storing = None
                    dropped = [item for _, item, _ in self._items if item is not None and item is not staged]
                    self._items.clear()
                    self._staged = 0
                    self._urgent = 0
                    self._busy = False
                    self._cond.notify_all()
                for item in dropped:
                    self._discard(item)
                return
            with self._cond:
                if staged is not None:
                    self._pace(started, self._clock.now() - started)
                self._events.put(report)
                self._items.popleft()
                self._storing = None
                self._staged -= staged is not None
                self._urgent -= urgent
                self._cond.notify_all()

    def _raise_if_failed(self, staged: Staged | None) -> None:
        if self._error is not None:
            if staged is not None:
                self._discard(staged)
            raise self._error
