"""The driver's record of an experiment in a bucket, and its lease there.

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

The record is a lease. A driver none of whose heartbeats has reached the bucket for
``LEASE_S`` (half of ``STALE_AFTER_S``) writes nothing more there: its uploads check
:meth:`DriverLock.check_standing` first, and the run stops, INTERRUPTED. So when another
driver takes the record for dead (``STALE_AFTER_S`` after its last heartbeat) and takes the
experiment over, the first one has stopped writing to it some 30 s before, whatever the
outage between them; the margin covers an upload in flight and two machines' clocks. A
driver whose heartbeat finds another driver's record there stops the same way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from raytuner._storage.lock_owner import STALE_AFTER_S, LockOwner, _dumps, _parse, bucket_owner_live
from raytuner.errors import ExperimentError, StorageError

logger = logging.getLogger("raytuner")

#: A driver none of whose heartbeats reached its bucket for this long writes nothing more
#: there (see the module docstring); the workers' retries give up within it too
#: (:data:`raytuner._storage.remote.RETRY_S`).
LEASE_S = STALE_AFTER_S / 2
#: A bucket's record is read back this long after it was written, to find a racer's.
_SETTLE_S = 0.3
#: A driver that stood down removes its record at its release only this long before any
#: other driver may take it for dead.
_REMOVE_MARGIN_S = 10.0


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


class BucketLease:
    """The bucket's side of :class:`~raytuner._storage.lock.DriverLock` (its base): the
    record taken, kept fresh, given up, and the lease that stops a driver whose heartbeats
    no longer reach the bucket."""

    _bucket: BucketRecord | None
    _bucket_held: bool
    _bucket_failing: bool
    _beat_reached: float
    _stood_down: str | None
    _heartbeat_s: float
    _name: str
    _owner: LockOwner | None
    _refusal: Any  # (holder) -> the message that refuses a second driver, DriverLock's

    def _claim_bucket(self, owner: LockOwner) -> None:
        """Write our record into the bucket, or raise :class:`ExperimentError` naming the live
        driver whose record is there (see the module docstring)."""
        assert self._bucket is not None
        try:
            holder = self._bucket.read()
            if holder is not None and bucket_owner_live(holder):
                raise ExperimentError(self._refusal(holder))
            sent = time.monotonic()
            self._bucket.write(owner)
            self._bucket_held = True
            self._beat_reached = sent
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
        if not self._in_lease():
            return
        try:
            sent = time.monotonic()
            holder = self._bucket.read()
            if holder is not None and holder.token != self._owner.token:
                self._stand_down(f"another driver took it over ({holder.describe()}): this driver's heartbeats had "
                                 f"not reached the bucket for {STALE_AFTER_S:.0f} s")
                return
            if not self._in_lease():  # the read took that long: writing now could undo a takeover
                return
            self._bucket.write(self._owner)
            self._beat_reached = sent
        except Exception as exc:  # noqa: BLE001 - a network blip: the next beat writes it again
            if not self._bucket_failing:
                logger.warning("%s: the driver's heartbeat could not be written to %s (%s: %s); retrying every "
                               "%g s. After %.0f s without one this driver stops writing to the bucket (another "
                               "driver may take the experiment over after %.0f s).", self._name, self._bucket.uri,
                               type(exc).__name__, exc, self._heartbeat_s, LEASE_S, STALE_AFTER_S)
            self._bucket_failing = True
        else:
            self._bucket_failing = False

    @property
    def stood_down(self) -> str | None:
        """Why this driver may write nothing more to its bucket, or None."""
        return self._stood_down

    def check_standing(self) -> None:
        """Raise the :class:`StorageError` that stops the run once this driver may write
        nothing more to its experiment: none of its heartbeats reached its bucket for
        ``LEASE_S``, or another driver took the experiment over (see the module docstring;
        in a folder on a shared file system, from another host). Nothing once released."""
        if self._bucket_held:
            self._in_lease()
        if self._stood_down is None:
            return
        from raytuner._display import cli_command

        if self._bucket is None:
            raise StorageError(
                f"{self._name}: this driver stopped writing to the experiment: {self._stood_down}. The run stopped "
                "and wrote nothing more; the experiment's records are the other driver's now.", self._name)
        raise StorageError(
            f"{self._name}: this driver stopped writing to the bucket: {self._stood_down}. The run stopped; "
            f"what reached the bucket before is kept, and the bucket's records stand. Do not copy this driver's "
            f"local copy into the bucket. Once the bucket can be reached and no other driver runs the "
            f"experiment, continue it with: {cli_command('resume', self._name)}", self._bucket.uri)

    def _in_lease(self) -> bool:
        """Whether a heartbeat of ours reached the bucket within ``LEASE_S``; once not, this
        driver stands down for good."""
        if self._stood_down is None and time.monotonic() - self._beat_reached > LEASE_S:
            self._stand_down(f"none of its heartbeats reached {self._bucket.uri if self._bucket else 'it'} for "
                             f"{LEASE_S:.0f} s, and another driver may take an experiment over once its driver "
                             f"is silent for {STALE_AFTER_S:.0f} s")
        return self._stood_down is None

    def _stand_down(self, why: str) -> None:
        if self._stood_down is None:
            self._stood_down = why
            self._bucket_held = False
            logger.error("%s: this driver stops writing to the %s: %s. Its run stops.", self._name,
                         "bucket" if self._bucket is not None else "experiment", why)

    def _may_still_remove(self) -> bool:
        """Whether a driver that stood down may still remove its record: no other driver may
        take the experiment over yet (``STALE_AFTER_S`` after our last heartbeat, less a
        margin), so a record there with our token is ours. A resume in this same process
        (a notebook) is then not refused for the rest of that minute."""
        return (self._stood_down is not None and self._bucket is not None
                and time.monotonic() - self._beat_reached < STALE_AFTER_S - _REMOVE_MARGIN_S)

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
