"""A trial run's scratch folder on its worker's node, and the removal of those whose worker died.

A trial run keeps a few things in a folder of its own on its worker's node: the private
copy of the checkpoint it restarts from, checkpoints staged for an upload or for the relay,
its trial folder where it cannot see the experiment's. The run removes the folder as it
ends. A worker that Ray kills while its trial runs cannot: the experiment's end stopped it
(a time budget, Ctrl-C, a control command), its driver died, the OOM killer took it. Each
such folder may hold a copy of a checkpoint of gigabytes, and before, it stayed in
``$TMPDIR`` until the node's next boot.

So the folders live in one folder per user and node, ``$TMPDIR/raytuner-scratch-<uid>``
(used only if it is the user's own and open to nobody else), and each holds a lock file
(:data:`OWNER`) that its worker process keeps locked with ``flock`` while the run lives.
The kernel drops such a lock when the process ends, however it ends (SIGKILL included), so
a folder whose lock another process can take belongs to no run: each new scratch folder
first removes those (:func:`sweep`), and so does each driver as it starts, on its own
node (:func:`sweep_this_node`). The lock file is locked before it gets its name, so a
folder is never seen with an unlocked one while its run lives; a folder without one (its
maker died before naming it) is left alone. A folder being removed is first renamed
``.trash-*`` (at once) and then deleted in a thread, so a trial waits for no one's
gigabytes; trash a killed sweep left is deleted by the next.

Where the per-user folder cannot be used (someone else's, open to others, or no ``flock``
on this platform), runs make their folders in ``$TMPDIR`` itself and nothing is swept.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: folders are not swept
    fcntl = None  # type: ignore[assignment]

#: The lock file of a scratch folder, locked by the process whose run owns the folder.
OWNER = ".owner"
_TRASH = ".trash-"
_ROOT = "raytuner-scratch"  # $TMPDIR/raytuner-scratch-<uid>


class Scratch:
    """One trial run's scratch folder, made on first use (most runs need none)."""

    def __init__(self, trial_id: str) -> None:
        self._trial_id = trial_id
        self._path: Path | None = None
        self._owner: int | None = None  # the locked descriptor of its OWNER file

    def path(self) -> Path:
        if self._path is None:
            self._path, self._owner = _make(self._trial_id)
        return self._path

    def remove(self) -> None:
        """Delete the folder (the run has ended) and give up its lock."""
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
        if self._owner is not None:
            os.close(self._owner)
        self._path = self._owner = None


def user_folder(name: str, *, make: bool = True) -> Path | None:
    """``$TMPDIR/<name>-<uid>``, made if missing (``make``); None if it is not this user's
    alone, or missing."""
    folder = Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True) if make else None
    except OSError:
        return None
    return folder if is_private(folder) else None


def sweep_this_node() -> list[str]:
    """:func:`sweep` for a driver as it starts: a node's folders are otherwise swept only
    when a trial there makes one, and most trials need none."""
    root = user_folder(_ROOT, make=False) if fcntl is not None else None
    return sweep(root) if root is not None else []


def is_private(folder: Path) -> bool:
    """A real folder (no link) of this user's that no one else may read or write."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def sweep(root: Path, *, background: bool = True) -> list[str]:
    """Remove the scratch folders in ``root`` whose run's process is gone; return their names.

    The folders go to trash at once; their files are deleted by a thread of this process
    (``background``), else before this returns.
    """
    gone: list[str] = []
    trash: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return gone
    for entry in entries:
        if entry.name.startswith(_TRASH):
            trash.append(Path(entry.path))  # a sweep before this one was killed while deleting it
            continue
        lock = _lock_if_unowned(entry) if entry.is_dir(follow_symlinks=False) else None
        if lock is None:
            continue
        try:
            # Renamed while the lock is ours: a sweeper in another process that opened the
            # lock file before takes the lock after us, and finds the folder gone.
            target = Path(tempfile.mkdtemp(dir=root, prefix=_TRASH))
            trash.append(target)
            os.replace(entry.path, target / "folder")
            gone.append(entry.name)
        except OSError:
            continue
        finally:
            os.close(lock)
    if trash and not background:
        _delete(trash)
    elif trash:
        threading.Thread(target=_delete, args=(trash,), name="raytuner-scratch-sweep", daemon=True).start()
    return gone


def _lock_if_unowned(entry: os.DirEntry[str]) -> int | None:
    """The folder's lock file, open and locked by us: its run's process is gone. None if the
    lock is held (the run lives), or there is none (its maker has not named it yet, or died
    before it did)."""
    try:
        fd = os.open(os.path.join(entry.path, OWNER), os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _delete(trash: list[Path]) -> None:
    for path in trash:
        shutil.rmtree(path, ignore_errors=True)


def _make(trial_id: str) -> tuple[Path, int | None]:
    root = user_folder(_ROOT) if fcntl is not None else None
    if root is None:
        return Path(tempfile.mkdtemp(prefix=f"raytuner-{trial_id}-")), None
    sweep(root)
    path = Path(tempfile.mkdtemp(dir=root, prefix=f"{trial_id}-"))
    unnamed = path / f"{OWNER}-new"
    fd = os.open(unnamed, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new, and in a folder only we know yet
    os.replace(unnamed, path / OWNER)
    return path, fd
