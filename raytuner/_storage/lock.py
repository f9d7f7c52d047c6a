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

An experiment in a bucket keeps its driver's record there too, as a lease:
:mod:`raytuner._storage.bucket_lease`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from raytuner._storage.bucket_lease import LEASE_S, BucketLease, BucketRecord
from raytuner._storage.lock_owner import (
    STALE_AFTER_S,
    LockOwner,
    _boot_id,
    _dumps,
    _read_plain,
    bucket_owner_live,
    on_this_machine,
    read_owner,
)
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
__all__ = ["BUCKET_LOCK_FILE", "FLOCK_FILE", "HEARTBEAT_S", "LEASE_S", "LOCK_FILE", "STALE_AFTER_S", "BucketRecord",
           "DriverLock", "LockOwner", "bucket_owner_live", "live_owner", "on_this_machine", "read_owner",
           "refuse_if_live"]



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


class DriverLock(BucketLease):
    """The lock of one experiment folder, held by this process while a driver runs.

    Use :meth:`ExperimentStorage.acquire_driver_lock`; :meth:`release` (or the context
    manager) gives it back. With ``bucket`` (an experiment in a bucket, ``folder`` being
    this writer's staging copy), the lock is held in the bucket too (see the module
    docstring); ``name`` is what messages call the experiment.
    """

    def __init__(self, folder: Path, *, heartbeat_s: float | None = None, bucket: BucketRecord | None = None,
                 name: str | None = None):
        self.path = Path(folder) / LOCK_FILE
        self._name = name or self.path.parent.name
        self._bucket = bucket
        self._bucket_held = False  # our record is in the bucket (until another driver took it over)
        self._bucket_failing = False
        self._beat_reached = 0.0  # monotonic time before the last write of our record that reached the bucket
        self._stood_down: str | None = None  # why this driver may write nothing more to the bucket
        self._flock_path = Path(folder) / FLOCK_FILE
        self._heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
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
            if not self._still_the_file(fd):
                raise ExperimentError(f"{self._name}: a driver whose start failed removed this folder as this one "
                                      "took it. Start again.")
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
        if self._owner is not None and (self._bucket_held or self._may_still_remove()):
            self._bucket_held = False
            self._release_bucket(self._owner.token)
        if self._owner is not None and self._still_ours():
            self.path.unlink(missing_ok=True)
        self._owner = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release_and_remove(self) -> None:
        """Release the lock of a folder that holds nothing else, and remove the folder: a start
        that failed before anything was recorded. The flock file goes while it is held; a
        driver that opened it before and takes the flock after sees it gone
        (:meth:`_still_the_file`) and stops."""
        if self._fd is not None:
            self._flock_path.unlink(missing_ok=True)
        self.release()
        try:
            self._flock_path.parent.rmdir()
        except OSError:
            pass  # something is in it: a file of the user's, or another driver's start

    def __enter__(self) -> DriverLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals -------------------------------------------------------------------------
    def _still_the_file(self, fd: int) -> bool:
        """Whether the flock file this lock holds is still the one at its path (a failed
        start removes it while holding it: :meth:`release_and_remove`)."""
        try:
            here = os.stat(self._flock_path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)

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
                holder = read_owner(self.path)
                if holder is None:
                    local = False  # the folder went away (renamed, deleted): nothing to hold
                elif holder.pid > 0:  # another driver's record: it took over from another host (we looked dead)
                    local = False
                    self._stand_down(f"another driver took it over ({holder.describe()}): this driver's heartbeats "
                                     f"had not reached {self.path} for {STALE_AFTER_S:.0f} s")
                # else a damaged record (a broken disk, a hand edit): ours is written whole again
            if local:
                try:
                    self._write(self._owner)
                except OSError:
                    pass  # the folder went away (renamed, deleted): nothing to hold
            if self._bucket_held:
                self._beat_bucket()
            elif not local:
                return
