"""One live driver per experiment: a lock file in the experiment's folder.

Two drivers on one experiment would run the same trials and append every report twice,
so a driver (``Tuner.fit``, ``Tuner.resume``, ``raytuner resume``) takes ``driver.lock``
before it touches anything and keeps it for its whole run. The file says who holds it
(pid, host, start time) and a heartbeat thread rewrites it every ``HEARTBEAT_S``, so that
another process can tell a live holder from a dead one:

- on the same host, a holder whose pid is gone is dead (a SIGKILL, a crash);
- on another host (a shared file system), a holder whose heartbeat is older than
  ``STALE_AFTER_S`` is taken for dead (a lost machine). The bound is many heartbeats
  long, so a busy driver or a few seconds of clock skew between hosts never loses its
  lock; a suspended driver (Ctrl-Z) for longer than that can.

A stale lock is broken by renaming it aside, so that of two processes breaking it at
once only one succeeds; the new holder is then decided by an exclusive create.
Readers (``raytuner.load``, the CLI, the dashboard) never take the lock.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytuner.errors import ExperimentError

LOCK_FILE = "driver.lock"
HEARTBEAT_S = 5.0
#: A holder on another host whose heartbeat is older than this is taken for dead.
STALE_AFTER_S = 60.0


@dataclass(frozen=True)
class LockOwner:
    """Who holds an experiment, as written in its lock file."""

    pid: int
    host: str
    started: float  # when the holder took the lock (epoch seconds)
    heartbeat: float  # the holder's last sign of life (epoch seconds)
    token: str  # tells two holders with the same pid and host apart

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockOwner:
        return cls(int(data["pid"]), str(data["host"]), float(data["started"]), float(data["heartbeat"]),
                   str(data.get("token", "")))

    def describe(self) -> str:
        since = datetime.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {self.pid} on host {self.host!r}, running since {since}"

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return True
        return now - self.heartbeat > STALE_AFTER_S


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, but alive
        return True
    return True


def read_owner(path: Path) -> LockOwner | None:
    """The holder recorded in a lock file, or None if there is none (or it is unreadable:
    a file cut short by a crash while it was first written holds no live driver)."""
    try:
        return LockOwner.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return LockOwner(-1, "?", 0.0, 0.0, "")  # damaged: stale by its heartbeat


class DriverLock:
    """The lock of one experiment folder, held by this process while a driver runs.

    Use :meth:`ExperimentStorage.acquire_driver_lock`; :meth:`release` (or the context
    manager) gives it back.
    """

    def __init__(self, folder: Path, *, heartbeat_s: float = HEARTBEAT_S):
        self.path = Path(folder) / LOCK_FILE
        self._heartbeat_s = heartbeat_s
        self._owner: LockOwner | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> DriverLock:
        """Take the lock or raise :class:`ExperimentError` naming the live holder."""
        for _ in range(3):  # a stale lock broken, then a race for the new one: settled in a few turns
            now = time.time()
            owner = LockOwner(os.getpid(), socket.gethostname(), now, now, uuid.uuid4().hex)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_owner(self.path)
                if holder is None:
                    continue  # released meanwhile
                if not holder.is_stale():
                    raise ExperimentError(self._refusal(holder))
                self._break(holder)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(_dumps(owner))
            self._owner = owner
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="raytuner-driver-lock", daemon=True)
            self._thread.start()
            return self
        holder = read_owner(self.path)
        raise ExperimentError(self._refusal(holder) if holder else f"Could not take {self.path}; try again.")

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file, if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._owner is not None and self._still_ours():
            self.path.unlink(missing_ok=True)
        self._owner = None

    def __enter__(self) -> DriverLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals -------------------------------------------------------------------------
    def _refusal(self, holder: LockOwner) -> str:
        if holder.pid == os.getpid() and holder.host == socket.gethostname():
            where = "this very process (a Tuner started from a callback or another thread?)"
        else:
            where = holder.describe()
        age = time.time() - holder.heartbeat
        return (
            f"Experiment {self.path.parent.name!r} is being run by another driver: {where}; its last "
            f"heartbeat was {age:.0f} s ago. Two drivers would run the same trials twice. Wait for it to "
            f"finish, or stop it (Ctrl-C, or `kill {holder.pid}` on {holder.host}) and resume then. A driver "
            f"that died is detected on its own: at once on the same host, after {STALE_AFTER_S:.0f} s without "
            f"a heartbeat from another host. Reading it (raytuner.load, `raytuner show`) works meanwhile."
        )

    def _break(self, holder: LockOwner) -> None:
        """Move a stale lock aside, only if it is still the one judged stale."""
        aside = self.path.with_name(f".{LOCK_FILE}.stale.{uuid.uuid4().hex}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return  # another process broke it first
        moved = read_owner(aside)
        if moved is not None and moved.token != holder.token and not moved.is_stale():
            # A live lock was taken between our read and the rename: give it back if we can.
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _still_ours(self) -> bool:
        holder = read_owner(self.path)
        return holder is not None and self._owner is not None and holder.token == self._owner.token

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            if not self._still_ours():
                return  # broken by another process (we looked dead): nothing of ours to keep fresh
            assert self._owner is not None
            self._owner = LockOwner(self._owner.pid, self._owner.host, self._owner.started, time.time(),
                                    self._owner.token)
            tmp = self.path.with_name(f".{LOCK_FILE}.{self._owner.token}.tmp")
            try:
                tmp.write_text(_dumps(self._owner))
                os.replace(tmp, self.path)  # atomic: a reader never sees half a heartbeat
            except OSError:
                tmp.unlink(missing_ok=True)  # the folder went away (renamed, deleted): nothing to hold


def _dumps(owner: LockOwner) -> str:
    return json.dumps({"pid": owner.pid, "host": owner.host, "started": owner.started,
                       "heartbeat": owner.heartbeat, "token": owner.token}) + "\n"
