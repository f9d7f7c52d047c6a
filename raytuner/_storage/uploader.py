"""The driver's uploads of a cloud experiment: its local folder's changes copied to the URI
behind it, from a background thread (:mod:`raytuner._storage.remote` has the rest):

- a report's line in ``results.jsonl`` reaches the bucket within about
  :data:`SYNC_INTERVAL_S` plus one upload (the whole file is put again: object stores have
  no append, and each trial's file is small);
- ``experiment.json``, ``trial.json`` and the other JSON files are put whole, and a PUT
  replaces an object atomically, so readers never see half a file;
- a record (``trial.json``, ``experiment.json``) is never ahead of its trial's rows in the
  bucket: a pass reads the records first and puts them last, as read, after the files the
  driver wrote before them (see :meth:`Uploader._pass`);
- checkpoints never pass through the local copy: each trial's worker uploads its own into
  the bucket before it reports it (:mod:`raytuner._storage.trial_files`), so the bucket
  never holds a row or a ``trial.json`` naming a checkpoint it lacks; an old checkpoint is
  deleted there only once the trial's row that commits a newer one is uploaded;
- on close, a last pass puts everything that is left;
- nothing is put or deleted once the driver's lease on the bucket has run out or another
  driver took the experiment over (:attr:`Uploader.fence`, the driver lock's
  :meth:`~raytuner._storage.lock.DriverLock.check_standing`): it raises the
  :class:`~raytuner.errors.StorageError` that stops the run.

A driver that dies loses at most the changes of the last pass that did not finish.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable

from raytuner._storage import remote
from raytuner._storage.remote import filesystem, is_record, retrying, transient
from raytuner.errors import StorageError

logger = logging.getLogger("raytuner")

#: Seconds between two upload passes of a running experiment.
SYNC_INTERVAL_S = 1.0
_LOCAL_ONLY = frozenset({"driver.lock"})  # raytuner._storage.lock.LOCK_FILE


class Uploader:
    """Copies a local experiment folder's changes to ``uri`` (see the module docstring)."""

    def __init__(self, uri: str, local: Path, interval_s: float = SYNC_INTERVAL_S):
        self.uri = uri
        self.local = local
        self.interval_s = interval_s
        self._fs, self._root = filesystem(uri)
        self._sent: dict[str, tuple[int, int]] = {}  # relative path -> (size, mtime) as uploaded
        self._lock = threading.Lock()  # one pass at a time: the thread's, a checkpoint's, close's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        #: Called before each put or delete; raises (a StorageError) once this driver may no
        #: longer write to the bucket. Set by the driver lock's holder.
        self.fence: Callable[[], None] = lambda: None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="raytuner-upload", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
                if self._failing:
                    logger.warning("Uploads to %s work again.", self.uri)
                self._failing = False
            except StorageError:
                return  # this driver may write nothing more there; its loop stops the run and says why
            except Exception as exc:  # a network blip: the next pass puts the same files again
                if not self._failing:
                    logger.warning("Uploading to %s failed (%s: %s); retrying every %gs. The local copy is %s.",
                                   self.uri, type(exc).__name__, exc, self.interval_s, self.local)
                self._failing = True

    def sync(self) -> int:
        """One pass: put every new or changed file, delete what was deleted; return the count."""
        with self._lock:
            return self._pass(self.local)

    def push(self, folder: Path) -> None:
        """Put one folder's changes (a trial's, with its new checkpoint) now, before returning;
        a passing failure of the bucket is tried again (:func:`retrying`)."""
        with self._lock:
            retrying(lambda: self._pass(folder, deletions=False), uri=self.uri, what="upload to",
                     location=self.uri)

    def close(self) -> None:
        """Stop the thread and put what is left. A bucket out of reach is waited for, as a
        worker's store is (:func:`retrying`), so that a run stopped by an outage leaves the
        bucket whole to resume from once it passes; past that, a :class:`StorageError`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.fence()  # nothing to put, or not: a driver that stood down ends with its StorageError
        try:
            self.sync()
        except Exception as exc:
            if not transient(exc):
                raise
            logger.warning("The last upload to %s failed (%s: %s); trying again for up to %g s.",
                           self.uri, type(exc).__name__, exc, remote.RETRY_S)
            retrying(self.sync, uri=self.uri, what="upload to", location=self.uri)

    def _scan(self, top: Path) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        base = len(str(self.local)) + 1
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # a checkpoint being written
            for name in files:
                # Temporary files of atomic writes; and the driver lock, which says which
                # process on which machine holds the local copy: it means nothing elsewhere,
                # and left in the bucket after the end it would stand in a resume's way.
                if name.startswith(".") or name in _LOCAL_ONLY:
                    continue
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                found[path[base:].replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
        return found

    def _pass(self, top: Path, deletions: bool = True) -> int:
        found = self._scan(top)
        changed = {rel for rel, stamp in found.items() if self._sent.get(rel) != stamp}
        # A record (a trial.json, experiment.json) says where a trial or the experiment
        # stands, and the driver writes what it refers to (the trial's rows, errors, logs)
        # before it. So each changed record is read now and put last, as read; its trial's
        # other files are looked at again after that reading and put before it. A pass then
        # never puts a record ahead of its rows, whatever the driver writes meanwhile, and a
        # head lost after any pass leaves the bucket consistent.
        records: dict[str, bytes] = {}
        for rel in sorted(rel for rel in changed if is_record(rel)):
            try:
                records[rel] = (self.local / rel).read_bytes()
            except FileNotFoundError:
                changed.discard(rel)  # gone since the scan: the pass that sees it gone deletes it
        for folder in {rel.rpartition("/")[0] for rel in records if rel.endswith("/trial.json")}:
            again = self._scan(self.local / folder)
            found.update(again)
            changed.update(rel for rel, stamp in again.items() if self._sent.get(rel) != stamp)
        rest = sorted(rel for rel in changed if rel not in records)
        if rest:  # put concurrently
            self.fence()
            self._fs.put([str(self.local / rel) for rel in rest], [f"{self._root}/{rel}" for rel in rest])
            self._sent.update((rel, found[rel]) for rel in rest)
        if records:
            self.fence()
            self._fs.pipe({f"{self._root}/{rel}": data for rel, data in records.items()})
            self._sent.update((rel, found[rel]) for rel in records)
        gone = [rel for rel in self._sent if rel not in found] if deletions else []
        if gone:
            self.fence()
            self._fs.rm([f"{self._root}/{rel}" for rel in gone])
            for rel in gone:
                del self._sent[rel]
        return len(rest) + len(records) + len(gone)

    def mark_sent(self) -> None:
        """Count everything in the local folder as uploaded (it was just pulled from the URI)."""
        with self._lock:
            self._sent = self._scan(self.local)
