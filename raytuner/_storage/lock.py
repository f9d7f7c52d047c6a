"""One live driver per experiment: a lock file in the experiment's folder.

Two drivers on one experiment would run the same trials and append every report twice,
so a driver (``Tuner.fit``, ``Tuner.resume``, ``raytuner resume``) takes ``driver.lock``
before it touches anything and keeps it for its whole run. The file says who holds it
(pid, host, start time) and a heartbeat thread rewrites it every ``HEARTBEAT_S``, so that
another process can tell a live holder from a dead one:

- on the same host, a holder that no longer holds its ``flock`` (below) is dead (a SIGKILL,
  a crash); a record without one, from an older raytuner, is dead when its pid is gone;
- on another host (a shared file system), a holder whose heartbeat is older than
  ``STALE_AFTER_S`` is taken for dead (a lost machine). The bound is many heartbeats
  long, so a busy driver or a few seconds of clock skew between hosts never loses its
  lock; a suspended driver (Ctrl-Z) for longer than that can.

Taking the lock is one atomic step, so a reader never sees a lock without its content and
two racers never both win:

- every decision to take the lock (is there a live holder? then write ours) is made while
  holding an exclusive ``flock`` on ``.driver.flock`` beside it, and the holder keeps that
  ``flock`` for its whole run. The kernel releases it when the process dies, however it
  dies, so on one host a dead driver never blocks and a live one never loses its lock to a
  racer (a recycled pid does not fool it either);
- ``driver.lock`` itself is only ever written whole: a temporary file renamed into place.

On a shared file system whose ``flock`` does not reach other hosts, the record's heartbeat
still refuses a second driver on another host while the first one beats; two drivers
started on two hosts in the same instant are not told apart there.
Readers (``raytuner.load``, the CLI, the dashboard) never take the lock.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
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
#: Held with an exclusive flock by the live driver for its whole run (see the module docstring).
FLOCK_FILE = ".driver.flock"
_FLOCK_TRIES = 4
_FLOCK_RETRY_S = 0.005
_RECORD_WAIT_S = 2.0
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
    #: The run this driver is (experiment.json's ``run_id``): control commands are written
    #: for it. Empty in a record of an older raytuner.
    run_id: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockOwner:
        return cls(int(data["pid"]), str(data["host"]), float(data["started"]), float(data["heartbeat"]),
                   str(data.get("token", "")), str(data.get("run_id", "")))

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
    """The holder recorded in a lock file, or None if there is none. A damaged record (only a
    broken disk or a hand edit makes one: the file is always written whole) holds no live
    driver: it reads as an owner that is stale by its heartbeat."""
    try:
        return LockOwner.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return LockOwner(-1, "?", 0.0, 0.0, "")


def live_owner(folder: Path) -> LockOwner | None:
    """The driver holding the experiment in ``folder`` now, or None. Reads only.

    On this host the kernel knows: a holder keeps an exclusive ``flock`` on
    ``.driver.flock``, so if a shared one can be had for an instant nobody holds it (a pid
    that was recycled after its driver died does not fool this). Holders on other hosts are
    judged by their heartbeat.
    """
    owner = read_owner(folder / LOCK_FILE)
    if owner is None:
        return None
    if owner.host == socket.gethostname():
        held = _flock_held(folder / FLOCK_FILE)
        if held is not None:
            return owner if held else None
    return None if owner.is_stale() else owner


def refuse_if_live(folder: Path) -> None:
    """Raise the :class:`ExperimentError` a driver's start meets if a live driver holds the
    experiment in ``folder`` now. Reads only: for a resume to ask before it cleans the
    folder up, which would take a live run's checkpoints in flight for leftovers."""
    holder = live_owner(folder)
    if holder is not None:
        raise ExperimentError(DriverLock(folder)._refusal(holder))


def _flock_held(path: Path) -> bool | None:
    """Whether some process holds ``path``'s flock; None where that cannot be told."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # no such file: a lock taken by an older raytuner, judged by its record
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None  # a file system without flock
    finally:
        os.close(fd)  # closing drops the shared lock, if it was had
    return False


class DriverLock:
    """The lock of one experiment folder, held by this process while a driver runs.

    Use :meth:`ExperimentStorage.acquire_driver_lock`; :meth:`release` (or the context
    manager) gives it back.
    """

    def __init__(self, folder: Path, *, heartbeat_s: float = HEARTBEAT_S):
        self.path = Path(folder) / LOCK_FILE
        self._flock_path = Path(folder) / FLOCK_FILE
        self._heartbeat_s = heartbeat_s
        self._owner: LockOwner | None = None
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: This driver's run (uuid4 hex), new at each acquire; see :attr:`LockOwner.run_id`.
        self.run_id = ""

    def acquire(self) -> DriverLock:
        """Take the lock or raise :class:`ExperimentError` naming the live holder."""
        fd = os.open(self._flock_path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        try:
            if not self._flock(fd):
                raise ExperimentError(self._refusal(self._holder_on_this_host()))
            holder = read_owner(self.path)
            if holder is not None and holder.host != socket.gethostname() and not holder.is_stale():
                raise ExperimentError(self._refusal(holder))  # a live driver on another host
        except BaseException:
            os.close(fd)  # drops the flock, if it was taken
            raise
        now = time.time()
        self.run_id = uuid.uuid4().hex
        self._owner = LockOwner(os.getpid(), socket.gethostname(), now, now, uuid.uuid4().hex, self.run_id)
        self._fd = fd
        self._write(self._owner)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="raytuner-driver-lock", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat, remove the record if it is still ours, then drop the flock
        (in that order: whoever takes the lock next finds no record of ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._owner is not None and self._still_ours():
            self.path.unlink(missing_ok=True)
        self._owner = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DriverLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals -------------------------------------------------------------------------
    def _flock(self, fd: int) -> bool:
        """Take the exclusive flock; False if another process holds it.

        A few quick tries: a reader checking for a live driver (:func:`live_owner`) holds a
        shared flock for microseconds, and must not make a driver's start fail.
        """
        for attempt in range(_FLOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if attempt + 1 < _FLOCK_TRIES:
                    time.sleep(_FLOCK_RETRY_S)
            except OSError:
                # A file system without flock (some network and FUSE mounts): the record
                # and its heartbeat are all there is, as on another host.
                holder = read_owner(self.path)
                return holder is None or holder.is_stale()
        return False

    def _holder_on_this_host(self) -> LockOwner | None:
        """The record of the process that holds the flock. It may be writing it right now
        (it won a race a moment ago), so give it a moment to appear."""
        deadline = time.monotonic() + _RECORD_WAIT_S
        while True:
            holder = read_owner(self.path)
            if (holder is not None and not holder.is_stale()) or time.monotonic() >= deadline:
                return holder
            time.sleep(_FLOCK_RETRY_S)

    def _refusal(self, holder: LockOwner | None) -> str:
        if holder is None:
            return (f"Experiment {self.path.parent.name!r} is being run by another driver on this host (it is "
                    "starting and has not written its record yet). Two drivers would run the same trials twice; "
                    "wait for it to finish, or stop it and resume then.")
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

    def _write(self, owner: LockOwner) -> None:
        """The record, whole: a reader never sees an empty or half-written lock."""
        tmp = self.path.with_name(f".{LOCK_FILE}.{owner.token}.tmp")
        try:
            tmp.write_text(_dumps(owner))
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _still_ours(self) -> bool:
        holder = read_owner(self.path)
        return holder is not None and self._owner is not None and holder.token == self._owner.token

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            if not self._still_ours():
                return  # taken over from another host (we looked dead there): nothing of ours to keep fresh
            assert self._owner is not None
            self._owner = dataclasses.replace(self._owner, heartbeat=time.time())
            try:
                self._write(self._owner)
            except OSError:
                pass  # the folder went away (renamed, deleted): nothing to hold


def _dumps(owner: LockOwner) -> str:
    return json.dumps({"pid": owner.pid, "host": owner.host, "started": owner.started,
                       "heartbeat": owner.heartbeat, "token": owner.token, "run_id": owner.run_id}) + "\n"
