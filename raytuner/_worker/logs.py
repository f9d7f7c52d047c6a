"""A trial's own log: what it prints, kept in the worker and shipped with its answers.

How: while a trial runs, ``sys.stdout`` and ``sys.stderr`` of the worker process are a
:class:`TrialLog`. A worker runs one trial at a time, so a process-wide swap catches the
trainable, every thread it starts (data loaders, a framework's own threads) and Keras'
progress bar (it writes to ``sys.stdout``, and sees no tty, so prints one line per epoch
instead of redrawing one). A per-thread redirection would miss the trainable's threads;
redirecting file descriptors 1 and 2 would also take Ray's own worker output, need a
reader thread per worker, and slow every report. What is left out: output of C code and
child processes written straight to the descriptors; it stays in Ray's worker logs.

Nothing captured reaches the worker's real streams, so Ray does not forward it to the
driver's terminal: the sweep's view stays clean. The text goes back to the driver with
each answer of the worker (:class:`raytuner._worker.protocol.Event`), from any node, and
is appended to ``trials/<id>/log.txt`` there.
"""

from __future__ import annotations

import io
import sys
import threading

from raytuner._storage.experiment import LOG_MAX_BYTES


class TrialLog(io.TextIOBase):
    """A text stream that buffers what it is given until :meth:`take`, up to ``max_bytes``
    per run (then one note says the rest was dropped)."""

    def __init__(self, max_bytes: int = LOG_MAX_BYTES):
        super().__init__()
        self._lock = threading.Lock()  # the trial's threads write concurrently
        self._chunks: list[str] = []
        self._size = 0
        self._max = max_bytes
        self._cut = False
        self._saved: tuple[object, object] | None = None

    # -- the stream side -------------------------------------------------------------------
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            if self._cut:
                return len(text)
            # Characters, not bytes: an estimate that errs on the small side for non-ASCII
            # text, and the driver's file has its own limit in bytes.
            if self._size + len(text) > self._max:
                kept = text[: max(0, self._max - self._size)]
                self._chunks.append(kept + f"\n[raytuner: this trial printed more than {self._max} characters "
                                           "in one run; the rest was dropped]\n")
                self._cut = True
            else:
                self._chunks.append(text)
            self._size += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    # -- the worker side -------------------------------------------------------------------
    def take(self) -> str:
        """Everything written since the last call."""
        with self._lock:
            text = "".join(self._chunks)
            self._chunks.clear()
        return text

    def pending(self) -> bool:
        with self._lock:
            return bool(self._chunks)

    def start(self) -> None:
        """Become the process's stdout and stderr (the worker runs this one trial)."""
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = sys.stderr = self

    def stop(self) -> None:
        """Give the streams back, unless something else took them meanwhile."""
        if self._saved is None:
            return
        if sys.stdout is self:
            sys.stdout = self._saved[0]
        if sys.stderr is self:
            sys.stderr = self._saved[1]
        self._saved = None
