"""What the dashboard reads: regular files and real folders inside its root, nothing else.

Whoever can write into ROOT can plant a link (``log.txt -> /etc/passwd``, an experiment
folder that points to another user's home) or a FIFO, whose ``open`` never returns. So
every read goes through :class:`Confined`:

- no link is followed below ROOT: each folder on the way is ``lstat``-ed, and the file is
  opened with ``O_NOFOLLOW``;
- the file is opened without blocking (``O_NONBLOCK``) and read only if ``fstat`` says it
  is a regular file;
- the opened file's real path (``/proc/self/fd``, else ``realpath``) must lie inside ROOT:
  this also catches a folder swapped for a link between the checks and the open.

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
_PROC_FD = Path("/proc/self/fd")


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

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def inside(self, real: str | os.PathLike[str]) -> bool:
        real = Path(real)
        return real == self.root or self.root in real.parents

    # -- folders ---------------------------------------------------------------------------
    def _walk(self, folder: Path) -> bool:
        """Whether ``folder`` (under ROOT) is a real folder with no link on the way; False
        when a part of it is missing; Refused for a link or something else on the way."""
        try:
            parts = Path(folder).relative_to(self.root).parts
        except ValueError:
            raise Refused(f"{folder} is outside {self.root}.") from None
        here = self.root
        for part in parts:
            here = here / part
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

    def is_file(self, path: Path) -> bool:
        return self.mtime(path) >= 0 and self.is_folder(path.parent)

    # -- files -----------------------------------------------------------------------------
    def _open(self, path: Path) -> int | None:
        if not self._walk(path.parent):
            return None
        try:
            fd = os.open(path, _FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused(f"{self.rel(path)} is a link; the dashboard does not follow links.") from None
            raise Refused(f"{self.rel(path)} cannot be read ({exc.strerror}).") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Refused(f"{self.rel(path)} is not a regular file.")
            proc = _PROC_FD / str(fd)
            real = os.readlink(proc) if proc.parent.is_dir() else os.path.realpath(path)
            if not self.inside(real):
                raise Refused(f"{self.rel(path)} leads outside {self.root}.")
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
