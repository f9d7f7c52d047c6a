"""A trial run's reports on their way to the driver: in order, each once its checkpoint is stored.

A report that carries a checkpoint may leave the worker only once the checkpoint is in
place in storage (the row that names it commits it). Storing takes time (flushing a large
folder to disk, an upload), so it is done here, on a thread of the outbox's own, while the
training loop goes on: ``report`` returns as soon as the checkpoint is staged. Reports
behind one that waits for its checkpoint wait too, so the driver sees them in the order
they were made; with nothing ahead, a report goes out at once, without a thread.

At most :data:`MAX_STAGED` checkpoints wait to be stored; a report with one more blocks
until one is done, so staged copies cannot pile up on disk. A report that awaits a
decision is sent the same way; its training loop waits for the decision anyway.

If storing fails, the reports from that one on are not sent (none of them may name a
checkpoint that is not there) and the error is raised in the training thread, at its next
report or at the end of the trial (:meth:`Outbox.drain`).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Callable

from raytuner._worker.checkpoints import Staged
from raytuner._worker.protocol import Report

#: Checkpoints staged and waiting to be stored, at most.
MAX_STAGED = 2


class Outbox:
    """Sends a trial run's reports into ``events`` (the worker's queue of news for the driver).

    Args:
        events: Where reports go for the driver (the actor's next answer).
        store: Puts a staged checkpoint in place; raises if it cannot.
        discard: Removes a staged checkpoint that will not be stored.
    """

    def __init__(self, events: queue.SimpleQueue, store: Callable[[Staged], None], discard: Callable[[Staged], None]):
        self._events = events
        self._store = store
        self._discard = discard
        self._cond = threading.Condition()
        self._items: deque[tuple[Report, Staged | None]] = deque()  # the head stays until it is sent
        self._staged = 0
        self._busy = False  # the thread runs
        self._error: BaseException | None = None

    def send(self, report: Report, staged: Staged | None = None) -> None:
        """Send ``report`` once everything before it is sent and ``staged`` (the checkpoint it
        names) is stored. Raises the error of a checkpoint that could not be stored."""
        with self._cond:
            self._raise_if_failed(staged)
            if staged is None and not self._items:
                self._events.put(report)
                return
            while staged is not None and self._staged >= MAX_STAGED and self._error is None:
                self._cond.wait()
            self._raise_if_failed(staged)
            self._items.append((report, staged))
            self._staged += staged is not None
            if not self._busy:
                self._busy = True
                threading.Thread(target=self._run, name="raytuner-outbox", daemon=True).start()

    def drain(self) -> None:
        """Wait until every report is sent; raise the error of a checkpoint that could not be stored."""
        with self._cond:
            while self._items and self._error is None:
                self._cond.wait()
            self._raise_if_failed(None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._items or self._error is not None:
                    self._busy = False
                    self._cond.notify_all()
                    return
                report, staged = self._items[0]
            try:
                if staged is not None:
                    self._store(staged)
            except BaseException as exc:  # noqa: BLE001 - raised in the training thread instead
                with self._cond:
                    self._error = exc
                    dropped = [item for _, item in self._items if item is not None and item is not staged]
                    self._items.clear()
                    self._staged = 0
                    self._busy = False
                    self._cond.notify_all()
                for item in dropped:
                    self._discard(item)
                return
            with self._cond:
                self._events.put(report)
                self._items.popleft()
                self._staged -= staged is not None
                self._cond.notify_all()

    def _raise_if_failed(self, staged: Staged | None) -> None:
        if self._error is not None:
            if staged is not None:
                self._discard(staged)
            raise self._error
