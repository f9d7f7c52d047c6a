"""raytuner's own warnings inside a trial, relayed to the driver's terminal.

What raytuner's code warns about inside a trial (the Keras callback's "pass
``initial_epoch=rt.keras.restore(model)``", a pause without a checkpoint, Keras logs left
out of a report) concerns the user at the terminal, not only the trial's log, where nobody
looks until something is wrong. While a trial runs, :class:`TrialNotes` takes every record
of WARNING or above logged under the ``raytuner`` logger, keeps it for the worker's next
answer (:class:`raytuner._worker.protocol.Event`'s ``notes``) and lets it reach the
trial's log as it would have without it; the driver shows the first of each kind
(:meth:`raytuner._driver.progress.Progress.trial_warned`).
"""

from __future__ import annotations

import logging
import threading

#: The logger whose records are relayed (raytuner's modules log under it).
LOGGER = "raytuner"
#: At most this many notes wait for an answer; a trial warning in a loop adds no more.
MAX_PENDING = 20


class TrialNotes(logging.Handler):
    """Keeps raytuner's warnings of one trial as (kind, text) for the driver; the kind is
    the record's unformatted message, the same for every trial that warns alike."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._pending: list[tuple[str, str]] = []
        self._lock_notes = threading.Lock()
        self._logger = logging.getLogger(LOGGER)

    def start(self) -> None:
        self._logger.addHandler(self)

    def stop(self) -> None:
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the caller's; say it as Python would
            self.handleError(record)
            return
        with self._lock_notes:
            if len(self._pending) < MAX_PENDING:
                self._pending.append((str(record.msg), text))
        if not _handled_elsewhere(record, self):
            # Alone, this handler would hide the record from the trial's log: Python writes
            # a record no handler takes to stderr (logging.lastResort), which is captured there.
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)

    def take(self) -> list[tuple[str, str]]:
        """The notes since the last call."""
        with self._lock_notes:
            notes, self._pending = self._pending, []
        return notes


def _handled_elsewhere(record: logging.LogRecord, this: logging.Handler) -> bool:
    """Whether a handler other than ``this`` takes ``record`` (Logger.callHandlers' walk)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not this and record.levelno >= h.level for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False
