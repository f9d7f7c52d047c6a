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

An experiment in a bucket (a URI) is staged by each writer in a private local folder, so
the lock there holds nothing against a driver elsewhere. Its driver also keeps the record
in the bucket, as ``driver.lock.json`` beside ``experiment.json`` (:class:`BucketRecord`):
read before it is taken (a live holder is refused, named), written with the lock, rewritten
by the heartbeat, removed on release. Readers judge it the same way
(:func:`bucket_owner_live`): dead once its heartbeat is older than ``STALE_AFTER_S``, and at
once on the same machine when its pid is gone (or names another process now: a recycled
pid started after the record). A bucket has no ``flock``: two drivers that start in the
same instant are told apart by writing, then reading the record back a moment later
(``_SETTLE_S``); the one whose record is not there stands down.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import logging
import os
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytuner.errors import ExperimentError

logger = logging.getLogger("raytuner")

LOCK_FILE = "driver.lock"
#: The live driver's record in a bucket, beside experiment.json (a ``.json`` file: listings
#: of a bucket's root pull it with the experiments' JSON files).
BUCKET_LOCK_FILE = "driver.lock.json"
#: Held with an exclusive flock by the live driver for its whole run (see the module docstring).
FLOCK_FILE = ".driver.flock"
_FLOCK_TRIES = 4
_FLOCK_RETRY_S = 0.005
_RECORD_WAIT_S = 2.0
HEARTBEAT_S = 5.0
#: A holder on another host whose heartbeat is older than this is taken for dead.
STALE_AFTER_S = 60.0
#: A bucket's record is read back this long after it was written, to find a racer's.
_SETTLE_S = 0.3
#: A process started this long after the record that names its pid is another process.
_START_SLACK_S = 2.0


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
    #: The holder's machine's boot id (Linux), which tells two machines of one host name
    #: apart, and a machine from itself before a reboot. Empty where unknown.
    boot: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockOwner:
        return cls(int(data["pid"]), str(data["host"]), float(data["started"]), float(data["heartbeat"]),
                   str(data.get("token", "")), str(data.get("run_id", "")), str(data.get("boot", "")))

    def describe(self) -> str:
        since = datetime.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {self.pid} on host {self.host!r}, running since {since}"

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return True
        return now - self.heartbeat > STALE_AFTER_S


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False  # a damaged record's; and kill(0) or kill(-1) would ask about groups
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, but alive
        return True
    return True


_BOOT_ID: str | None = None


def _boot_id() -> str:
    """This machine's boot id, or "" where there is none to read."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            _BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def on_this_machine(owner: LockOwner) -> bool:
    """Whether the record's holder ran on this machine, since its last boot."""
    return owner.host == socket.gethostname() and (not owner.boot or not _boot_id() or owner.boot == _boot_id())


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None where that cannot be told."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def bucket_owner_live(owner: LockOwner, now: float | None = None) -> bool:
    """Whether the driver a bucket's record names is alive: its heartbeat is younger than
    ``STALE_AFTER_S`` and, on this machine, its pid names a process that started before it
    took the lock (a recycled pid does not fool this). A damaged record is dead."""
    now = time.time() if now is None else now
    if now - owner.heartbeat > STALE_AFTER_S:
        return False
    if on_this_machine(owner):
        if not _pid_alive(owner.pid):
            return False
        started = _process_start(owner.pid)
        if started is not None and started > owner.started + _START_SLACK_S:
            return False
    return True


def _read_plain(path: Path) -> LockOwner | None:
    """:func:`read_owner` of a record that only mirrors a bucket's (a reader's copy), read
    only if it is a plain file: a FIFO or a link planted there holds no driver."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse(data)


def _parse(data: bytes | str) -> LockOwner:
    try:
        return LockOwner.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError):
        return LockOwner(-1, "?", 0.0, 0.0, "")


class BucketRecord:
    """The driver's record of an experiment in a bucket (``driver.lock.json``), read and
    written straight with the experiment's fsspec file system."""

    def __init__(self, fs: Any, key: str, uri: str):
        self.fs, self.key, self.uri = fs, key, uri

    def read(self) -> LockOwner | None:
        """The record, None if there is none; a damaged one is a dead owner. A failure to
        reach the bucket raises."""
        try:
            return _parse(self.fs.cat_file(self.key))
        except FileNotFoundError:
            return None

    def write(self, owner: LockOwner) -> None:
        self.fs.pipe_file(self.key, _dumps(owner).encode())  # a PUT replaces it whole

    def remove(self) -> None:
        try:
            self.fs.rm_file(self.key)
        except FileNotFoundError:
            pass


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
        # A reader's copy of a bucket's experiment (its cache) holds the bucket's record.
        mirrored = _read_plain(folder / BUCKET_LOCK_FILE)
        return mirrored if mirrored is not None and bucket_owner_live(mirrored) else None
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
    manager) gives it back. With ``bucket`` (an experiment in a bucket, ``folder`` being
    this writer's staging copy), the lock is held in the bucket too (see the module
    docstring); ``name`` is what messages call the experiment.
    """

    def __init__(self, folder: Path, *, heartbeat_s: float = HEARTBEAT_S, bucket: BucketRecord | None = None,
                 name: str | None = None):
        self.path = Path(folder) / LOCK_FILE
        self._name = name or self.path.parent.name
        self._bucket = bucket
        self._bucket_held = False  # our record is in the bucket (until another driver took it over)
        self._bucket_failing = False
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
            now = time.time()
            run_id = uuid.uuid4().hex
            owner = LockOwner(os.getpid(), socket.gethostname(), now, now, uuid.uuid4().hex, run_id, _boot_id())
            if self._bucket is not None:
                self._claim_bucket(owner)
        except BaseException:
            os.close(fd)  # drops the flock, if it was taken
            raise
        self.run_id = run_id
        self._owner = owner
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
        if self._bucket_held and self._owner is not None:
            self._bucket_held = False
            self._release_bucket(self._owner.token)
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

    def _claim_bucket(self, owner: LockOwner) -> None:
        """Write our record into the bucket, or raise :class:`ExperimentError` naming the live
        driver whose record is there (see the module docstring)."""
        assert self._bucket is not None
        try:
            holder = self._bucket.read()
            if holder is not None and bucket_owner_live(holder):
                raise ExperimentError(self._refusal(holder))
            self._bucket.write(owner)
            self._bucket_held = True
            time.sleep(_SETTLE_S)  # a driver that started in the same instant has written its own by now
            holder = self._bucket.read()
        except ExperimentError:
            raise
        except Exception as exc:  # noqa: BLE001 - the bucket out of reach, in any of its clients' words
            if self._bucket_held:  # ours may be there: it must not stand in a retry's way
                self._bucket_held = False
                self._release_bucket(owner.token)
            raise ExperimentError(f"Cannot take {self._name!r}: its driver record {self._bucket.uri} could not be "
                                  f"read or written ({type(exc).__name__}: {exc}). Nothing was changed; try again "
                                  "once the bucket can be reached.") from None
        if holder is None or holder.token != owner.token:  # another driver's record replaced ours: it goes on
            self._bucket_held = False
            raise ExperimentError(self._refusal(holder) if holder is not None else (
                f"Experiment {self._name!r} is being started by another driver at the same instant (its record in "
                f"the bucket, {self._bucket.uri}, was replaced, then removed). Wait for it to finish, or stop it and "
                "resume then."))

    def _beat_bucket(self) -> None:
        """Rewrite our record in the bucket, unless another driver took it over (we looked
        dead to it: a bucket out of reach for ``STALE_AFTER_S``); a failure is retried at
        the next beat."""
        assert self._bucket is not None and self._owner is not None
        try:
            holder = self._bucket.read()
            if holder is not None and holder.token != self._owner.token:
                self._bucket_held = False
                logger.error("%s: another driver took this experiment over (%s): this driver's heartbeats did not "
                             "reach the bucket for %.0f s. Two drivers now run it; stop this one.",
                             self._name, holder.describe(), STALE_AFTER_S)
                return
            self._bucket.write(self._owner)
        except Exception as exc:  # noqa: BLE001 - a network blip: the next beat writes it again
            if not self._bucket_failing:
                logger.warning("%s: the driver's heartbeat could not be written to %s (%s: %s); retrying every "
                               "%g s. Another driver may take the experiment over after %.0f s without it.",
                               self._name, self._bucket.uri, type(exc).__name__, exc, self._heartbeat_s,
                               STALE_AFTER_S)
            self._bucket_failing = True
        else:
            self._bucket_failing = False

    def _release_bucket(self, token: str) -> None:
        """Remove our record (``token``'s) from the bucket, if it is still ours."""
        assert self._bucket is not None
        try:
            holder = self._bucket.read()
            if holder is not None and holder.token == token:
                self._bucket.remove()
        except Exception as exc:  # noqa: BLE001 - the bucket out of reach, in any of its clients' words
            logger.warning("%s: the driver's record %s could not be removed (%s: %s). It holds nothing once this "
                           "process ends, or %.0f s after its last heartbeat.", self._name, self._bucket.uri,
                           type(exc).__name__, exc, STALE_AFTER_S)

    def _refusal(self, holder: LockOwner | None) -> str:
        if holder is None:
            return (f"Experiment {self._name!r} is being run by another driver on this host (it is "
                    "starting and has not written its record yet). Two drivers would run the same trials twice; "
                    "wait for it to finish, or stop it and resume then.")
        if holder.pid == os.getpid() and holder.host == socket.gethostname():
            where = "this very process (a Tuner started from a callback or another thread?)"
        else:
            where = holder.describe()
        age = time.time() - holder.heartbeat
        return (
            f"Experiment {self._name!r} is being run by another driver: {where}; its last "
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
        local = True
        while not self._stop.wait(self._heartbeat_s):
            assert self._owner is not None
            self._owner = dataclasses.replace(self._owner, heartbeat=time.time())
            if local and not self._still_ours():
                local = False  # taken over from another host (we looked dead there): nothing of ours to keep fresh
            if local:
                try:
                    self._write(self._owner)
                except OSError:
                    pass  # the folder went away (renamed, deleted): nothing to hold
            if self._bucket_held:
                self._beat_bucket()
            elif not local:
                return


def _dumps(owner: LockOwner) -> str:
    return json.dumps({"pid": owner.pid, "host": owner.host, "started": owner.started,
                       "heartbeat": owner.heartbeat, "token": owner.token, "run_id": owner.run_id,
                       "boot": owner.boot}) + "\n"
