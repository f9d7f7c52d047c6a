"""A trial's own log: everything its worker process writes to stdout and stderr, shipped
with the worker's answers.

How: while a trial runs, file descriptors 1 and 2 of the worker process point at one
capture file, opened for appending, and ``sys.stdout``/``sys.stderr`` are unbuffered text
streams over those descriptors (``buffer``, ``fileno()``, ``reconfigure`` and the rest, as
in plain Python). So the trainable, its threads, C extensions, native logs (TensorFlow's,
XLA's) and child processes all land in one file, in the order the writes were made, stdout
and stderr interleaved. A worker runs one trial at a time, so taking the process's
descriptors catches all of it; while the trial runs that includes whatever Ray itself
prints in this process. Between trials the descriptors and the streams are Ray's again.

The worker reads what is new in the file with each answer (:meth:`TrialLog.take`) and the
text travels back in the answer (:class:`raytuner._worker.protocol.Event`), from any node,
to be appended to ``trials/<id>/log.txt`` by the driver. Keras' progress bar sees no tty,
as before, and prints one line per epoch.

Why a file and not a pipe drained by a thread: a write never waits for a reader (a trial
that prints megabytes cannot fill a pipe and stall), no thread runs beside the trial, and
what a dying process wrote last outlives it. A segfault's traceback (Ray's workers run
with ``faulthandler`` on, writing to descriptor 2) is in the file after the process is
gone; when the worker was on the driver's node, the driver appends what was not shipped
yet (:func:`recover`). The file's first bytes say how far the worker has read. Past the
per-run limit the file is removed and kept empty, so the disk holds at most about a
second's output beyond it.

C's own stdout buffer (``printf`` in an extension) is flushed when the trial ends, so its
text lands in this trial's log and not the next one's; it is block-buffered, as fd 1 is
no terminal, so it may appear after Python output written later.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from raytuner._storage.trial_files import LOG_MAX_BYTES
from raytuner._worker.scratch import user_folder

#: The capture file starts with how far the worker has read it, in ASCII digits.
_HEADER = 20
#: A capture file whose process is gone is removed, when the next trial on that node
#: starts, once it is this old: the driver on that node takes what it needs within about
#: a second of the worker's death.
STALE_S = 60.0

_STDIO = (1, 2)
_SHARED = "raytuner-stdio"  # $TMPDIR/raytuner-stdio-<uid>: where the driver on the node looks
_dir: Path | None = None
_fflush: Callable[[Any], int] | None = None


class TrialLog:
    """The worker's side of one trial run's log: :meth:`start` and :meth:`stop` in the
    trial's thread, :meth:`take` and :meth:`pending` from the actor's, at any time.

    Args:
        trial_dir: The trial's folder as the driver names it (``TrialSpec.storage_dir``);
            it names the capture file, so the driver on this node can find it.
        max_bytes: What one run may print; the rest is dropped, said once in the log.
    """

    def __init__(self, trial_dir: str, max_bytes: int = LOG_MAX_BYTES):
        self._key = _key(trial_dir)
        self._max = max_bytes
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._fd: int | None = None  # the capture file, open while the run's text is unread
        self._offset = _HEADER  # the next byte to read
        self._cut = False
        self._unsent = b""  # read at stop, not yet taken
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._saved: tuple[list[int | None], tuple[Any, Any]] | None = None

    # -- the trial's thread ------------------------------------------------------------------
    def start(self) -> None:
        """Point descriptors 1 and 2 and ``sys.stdout``/``sys.stderr`` at the capture."""
        _flush_streams(sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)  # earlier output stays out
        _flush_c_stdio()
        folder = _capture_dir()
        _sweep(folder)
        path = folder / f"{self._key}.{os.getpid()}.log"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        saved: list[int | None] = []
        try:
            os.pwrite(fd, _header(_HEADER), 0)
            writer = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                for target in _STDIO:
                    saved.append(_dup_or_none(target))
                    os.dup2(writer, target)
            finally:
                os.close(writer)
        except BaseException:
            _restore(saved)
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _text_stream(1, "<stdout>"), _text_stream(2, "<stderr>")
        with self._lock:
            self._path, self._fd = path, fd
            self._saved = (saved, streams)

    def stop(self) -> None:
        """Give descriptors and streams back as they were, and read the rest of the file.

        Never raises: the trial's end must reach the driver whatever the trainable did to
        its descriptors.
        """
        if self._saved is None:
            return
        saved, streams = self._saved
        self._saved = None
        _flush_streams(sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        _flush_c_stdio()
        sys.stdout, sys.stderr = streams
        _restore(saved)
        with self._lock:
            # Everything this process wrote is in the file now; children that outlive the
            # trial write on into a file no one reads.
            try:
                self._unsent += self._read_new()
            except OSError:  # the trainable closed the capture file itself: its text is lost, not its end
                pass
            self._close()

    # -- the actor's thread ----------------------------------------------------------------------
    def take(self) -> str:
        """What the trial wrote since the last call."""
        with self._lock:
            data, self._unsent = self._unsent + self._read_new(), b""
            if data and self._fd is not None:
                os.pwrite(self._fd, _header(self._offset), 0)  # for recover(), if the worker dies
            return self._decoder.decode(data, final=self._fd is None)

    def pending(self) -> bool:
        with self._lock:
            if self._unsent:
                return True
            if self._fd is None:
                return False
            if self._cut:
                self._empty()
                return False
            return os.fstat(self._fd).st_size > self._offset

    # -- inside -------------------------------------------------------------------------------
    def _read_new(self) -> bytes:
        if self._fd is None:
            return b""
        if self._cut:
            self._empty()
            return b""
        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return b""
        room = self._max - (self._offset - _HEADER)
        data = os.pread(self._fd, min(size - self._offset, room), self._offset)
        self._offset += len(data)
        if size > self._offset and len(data) == room:
            self._cut = True
            self._empty()
            data += (f"\n[raytuner: this trial printed more than {self._max} bytes in one run; "
                     "the rest was dropped]\n").encode()
        return data

    def _empty(self) -> None:
        """Past the limit: nothing more is kept, on disk either (the trial still writes)."""
        assert self._fd is not None and self._path is not None
        self._path.unlink(missing_ok=True)  # and nothing for recover() to find
        os.ftruncate(self._fd, 0)

    def _close(self) -> None:
        if self._fd is None:
            return
        assert self._path is not None
        fd, self._fd = self._fd, None
        self._path.unlink(missing_ok=True)
        try:
            os.close(fd)
        except OSError:  # the trainable closed it
            pass


def recover(trial_dir: str, max_bytes: int = LOG_MAX_BYTES) -> str:
    """What a trial's worker on this node wrote and had not shipped when it died (its last
    lines, a segfault's traceback), once: the files are removed. Empty when the worker ran
    on another node. For the driver, when a trial's worker is lost."""
    folder = user_folder(_SHARED)
    if folder is None:
        return ""
    texts = []
    for path in sorted(folder.glob(f"{_key(trial_dir)}.*.log")):
        try:
            with open(path, "rb") as handle:
                head = handle.read(_HEADER)
                handle.seek(int(head) if head.strip().isdigit() else _HEADER)
                data = handle.read(max_bytes)
            path.unlink()
        except OSError:
            continue
        texts.append(data.decode("utf-8", "replace"))
    return "".join(texts)


def _key(trial_dir: str) -> str:
    return hashlib.sha256(trial_dir.encode()).hexdigest()[:24]


def _header(offset: int) -> bytes:
    return b"%0*d\n" % (_HEADER - 1, offset)


def _text_stream(fd: int, name: str) -> io.TextIOWrapper:
    """A stream over ``fd`` that writes through at once, so its text and what C code and
    children write to the same descriptors stay in order."""
    raw = io.FileIO(fd, "w", closefd=False)
    raw.name = name  # type: ignore[misc]  # as sys.stdout.name is in plain Python
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", line_buffering=True,
                            write_through=True)


def _flush_streams(*streams: Any) -> None:
    for stream in streams:
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream the trainable closed or replaced with anything
            pass


def _flush_c_stdio() -> None:
    global _fflush
    if _fflush is None:
        import ctypes

        try:
            _fflush = ctypes.CDLL(None).fflush
        except (OSError, AttributeError):  # no C library to ask: nothing of C's to flush either
            _fflush = lambda _: 0  # noqa: E731
    _fflush(None)  # every open FILE*, stdout's included


def _dup_or_none(fd: int) -> int | None:
    try:
        return os.dup(fd)
    except OSError:  # not open in this process
        return None


def _restore(saved: list[int | None]) -> None:
    for target, fd in zip(_STDIO, saved):
        try:
            if fd is None:
                os.close(target)
            else:
                os.dup2(fd, target)
                os.close(fd)
        except OSError:
            pass  # the trainable closed it; nothing to give back


def _capture_dir() -> Path:
    """This process's folder of capture files: the user's shared one on this node, where
    the driver looks, if it is private; a folder someone else made, or one open to others,
    is not used: the files then go in a fresh private folder, and a crashed worker's last
    output cannot be recovered."""
    global _dir
    if _dir is None:
        _dir = user_folder(_SHARED) or Path(tempfile.mkdtemp(prefix="raytuner-private-stdio-"))
    return _dir


def _sweep(folder: Path) -> None:
    """Remove capture files left by processes that are gone: a worker killed while its
    trial ran (an experiment that ended), or one that crashed on a node without the driver."""
    now = time.time()
    for path in folder.glob("*.log"):
        try:
            pid = int(path.name.split(".")[1])
            if now - path.stat().st_mtime > STALE_S and not _alive(pid):
                path.unlink()
        except (OSError, ValueError, IndexError):
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
