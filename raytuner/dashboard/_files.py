"""What the dashboard reads: regular files and real folders inside its root, nothing else.

Whoever can write into ROOT can plant a link (``log.txt -> /etc/passwd``, an experiment
folder that points to another user's home) or a FIFO, whose ``open`` never returns. So
every read goes through :class:`Confined`:

- no link is followed below ROOT: a file is opened with ``O_NOFOLLOW``, and the opened
  file's real path (``/proc/self/fd``) must be the very path asked for, so no folder on the
  way was a link either, even one swapped in a moment before the open (without ``/proc``:
  each folder on the way is ``lstat``-ed, and the real path must lie inside ROOT);
- the file is opened without blocking (``O_NONBLOCK``) and read only if ``fstat`` says it
  is a regular file; folders are listed without following links.

What is refused raises :class:`Refused` (the API answers 403); what is not there reads as
missing. ROOT itself may be a link: its real path is taken once, at start.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_PROC_FD = "/proc/self/fd/" if os.path.isdir("/proc/self/fd") else None


class Chunk(NamedTuple):
    data: bytes
    start: int  # where in the file the data begins
    size: int  # the file's size when read


class Refused(Exception):
    """A path the dashboard will not read: a link, not a regular file or folder, or outside
    ROOT. The message says which, relative to ROOT."""


class Damaged(Exception):
    """A file that is there but cannot be read as what it should be (the message says why)."""


class Confined:
    """Reads under one root, by real paths only (see the module's docstring)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(os.path.realpath(Path(root).expanduser()))
        # Paths as strings from here on: these checks run for every file read, thousands per
        # look at a large sweep, and pathlib's parsing would cost more than the system calls.
        self._root = str(self.root)
        self._prefix = self._root.rstrip(os.sep) + os.sep

    def rel(self, path: str | os.PathLike[str]) -> str:
        text = os.fspath(path)
        return text[len(self._prefix):] if text.startswith(self._prefix) else text

    def inside(self, real: str | os.PathLike[str]) -> bool:
        text = os.fspath(real)
        return text == self._root or text.startswith(self._prefix)

    # -- folders ---------------------------------------------------------------------------
    def _walk(self, folder: str | os.PathLike[str]) -> bool:
        """Whether ``folder`` (under ROOT) is a real folder with no link on the way; False
        when a part of it is missing; Refused for a link or something else on the way."""
        text = os.fspath(folder)
        if text == self._root:
            return True
        if not text.startswith(self._prefix):
            raise Refused(f"{text} is outside {self._root}.")
        here = self._root
        for part in text[len(self._prefix):].split(os.sep):
            if part in ("", ".", ".."):
                raise Refused(f"{text} is not a plain path under {self._root}.")
            here = f"{here.rstrip(os.sep)}{os.sep}{part}"
            try:
                mode = os.lstat(here).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return False
            if stat.S_ISLNK(mode):
                raise Refused(f"{self.rel(here)} is a link; the dashboard does not follow links.")
            if not stat.S_ISDIR(mode):
                raise Refused(f"{self.rel(here)} is not a folder.")
        return True

    def is_folder(self, folder: Path) -> bool:
        """A real folder inside ROOT (a link, or anything else, is not)."""
        try:
            return self._walk(folder)
        except Refused:
            return False

    def folders(self, folder: Path) -> list[os.DirEntry]:
        """The real folders (never links) directly in ``folder``; none if it is not one."""
        if not self.is_folder(folder):
            return []
        try:
            with os.scandir(folder) as entries:
                return [e for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def mtime(self, path: Path) -> int:
        """The modification time (ns) of a regular file, without following a link; -1 for
        anything else or nothing."""
        try:
            st = os.lstat(path)
        except OSError:
            return -1
        return st.st_mtime_ns if stat.S_ISREG(st.st_mode) else -1

    def is_file(self, path: str | os.PathLike[str]) -> bool:
        return self.mtime(path) >= 0 and self.is_folder(os.path.dirname(os.fspath(path)))

    # -- files -----------------------------------------------------------------------------
    def _open(self, path: str | os.PathLike[str]) -> int | None:
        text = os.fspath(path)
        if not text.startswith(self._prefix):
            raise Refused(f"{text} is outside {self._root}.")
        if _PROC_FD is None and not self._walk(os.path.dirname(text)):
            return None
        try:
            fd = os.open(text, _FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused(f"{self.rel(text)} is a link; the dashboard does not follow links.") from None
            raise Refused(f"{self.rel(text)} cannot be read ({exc.strerror}).") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Refused(f"{self.rel(text)} is not a regular file.")
            if _PROC_FD is not None:
                # The path asked for is ROOT's real path and plain names: the opened file's
                # real path differs only if a folder on the way is a link. (A file replaced by
                # a rename since it was opened reads as "... (deleted)".)
                real = os.readlink(f"{_PROC_FD}{fd}").removesuffix(" (deleted)")
                if real != text:
                    raise Refused(f"{self.rel(text)} lies under a link; the dashboard does not follow links.")
            elif not self.inside(os.path.realpath(text)):
                raise Refused(f"{self.rel(text)} leads outside {self._root}.")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, path: Path, offset: int = 0, limit: int | None = None, *, tail: int | None = None) -> Chunk | None:
        """Bytes of a file from ``offset`` (or its last ``tail`` bytes), at most ``limit`` of
        them; None when the file is not there."""
        fd = self._open(path)
        if fd is None:
            return None
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - tail) if tail is not None else min(offset, size)
            os.lseek(fd, start, os.SEEK_SET)
            left = size - start if limit is None else min(limit, size - start)
            chunks = []
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return Chunk(b"".join(chunks), start, size)
        except OSError as exc:
            raise Refused(f"{self.rel(path)} cannot be read ({exc.strerror}).") from None
        finally:
            os.close(fd)

    def missing(self, path: Path) -> bool:
        """Nothing at all is at ``path`` (not even a link)."""
        try:
            os.lstat(path)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return False

    def text(self, path: Path) -> str | None:
        found = self.read(path)
        return None if found is None else found.data.decode("utf-8", "replace")

    def json(self, path: Path) -> Any:
        """The file's JSON; None when it is not there; Damaged when it is not JSON."""
        text = self.text(path)
        if text is None:
            return None
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise Damaged(f"{self.rel(path)}: not valid JSON ({_short(exc)})") from None

    def jsonl(self, path: Path) -> tuple[list[dict[str, Any]], str | None]:
        """The rows of a JSON-lines file up to the first damaged one, and what is damaged
        (None when nothing is). A last line cut short by a crash is not damage."""
        text = self.text(path)
        if text is None:
            return [], None
        rows: list[dict[str, Any]] = []
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as exc:
                if number >= len(lines) - 1:  # the unterminated tail of an interrupted append
                    break
                return rows, f"{self.rel(path)}: line {number} is not valid JSON ({_short(exc)})"
            if not isinstance(row, dict):
                return rows, f"{self.rel(path)}: line {number} is not a JSON object"
            rows.append(row)
        return rows, None


def _short(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
