"""Experiment storage: plain files under one folder, no server.

::

    <root>/<experiment>/
        experiment.json           spec (with the searcher's and scheduler's configs and the
                                  scheduler's milestones) and status (atomic rewrite)
        state.pkl                 searcher and scheduler state snapshot, for resume (pickle)
        tuner.pkl                 what resume cannot rebuild from experiment.json: the
                                  settings (``stop=``) and user-defined components (pickle)
        trials/<trial_id>/
            config.json           the trial's configuration
            trial.json            status, last metrics, best value, checkpoint (atomic rewrite)
            results.jsonl         one line per report, appended
            error.txt             traceback(s) of failures, appended
            log.txt               what the trial printed (stdout and stderr), appended, bounded
            checkpoint_<n>/       checkpoint made at report n (zero-padded), put there by the
                                  trial's worker (:mod:`raytuner._storage.trial_files`)
        driver.lock               the live driver's pid, host and heartbeat (see lock.py)
        driver.lock.json          in a bucket: the same record, kept there by the live driver

Every file that must survive a crash whole is written to a temporary file and renamed over
the old one. ``results.jsonl`` is only appended to; a last line cut by a crash is skipped
when read.

The path may also be a URI (``s3://bucket/prefix/<experiment>``, ``gs://...``): the folder
is then a local copy, pulled from the URI when opened and, for a writer, uploaded behind
the writes (:mod:`raytuner._storage.remote`). Everything else reads and writes the local
folder as for any experiment, except checkpoints: workers upload those to the URI
themselves, so a writer's copy holds none; it lists and deletes them in the bucket; and the
driver lock: each writer's copy is its own, so the live driver also keeps its record in the
bucket (``driver.lock.json``), where every other driver and every reader looks for it.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from raytuner._formats import checkpoint_iteration, dumps
from raytuner._storage import DEFAULT_ROOT, remote, trial_files
from raytuner._storage.checkpoint_folders import CheckpointFolders
from raytuner._storage.files import append, atomic_write_bytes, atomic_write_json, read_json
from raytuner._storage.history import RESULTS_FILE, Damage, History, read_history, repair_tail
from raytuner._storage.lock import (BUCKET_LOCK_FILE, FLOCK_FILE, LOCK_FILE, BucketRecord, DriverLock, LockOwner,
                                    bucket_owner_live, live_owner)
from raytuner._storage.records import experiment_fault, read_record, usable_fields
from raytuner._storage.trial_files import LOG_MAX_BYTES
from raytuner._storage.uploader import Uploader
from raytuner.errors import ExperimentError, StorageError

logger = logging.getLogger("raytuner")

EXPERIMENT_FILE = "experiment.json"
LOG_FILE = "log.txt"
#: Appended results files are flushed to disk at most this often (and at the end of a run).
FSYNC_INTERVAL_S = 1.0
#: A driver's local copy of a bucket's experiment younger than this is never taken for one
#: its driver left (a driver that is starting holds no lock yet).
STAGE_GRACE_S = 600.0


class ExperimentStorage(CheckpointFolders):
    """Reads and writes one experiment's folder.

    Args:
        path: The experiment's folder, or its URI in cloud storage.
        writable: For a URI: stage the experiment in a fresh local folder of this writer's
            own and upload changes behind; without it, read through the shared local cache.
    """

    def __init__(self, path: str | os.PathLike[str], *, writable: bool = False):
        self.uri: remote.URI | None = None
        self._uploader: Uploader | None = None
        self._uploaded = True  # every change is in the bucket: the staging copy may go
        self._remote_checkpoints: dict[str, set[str]] | None = None  # a writer's, by trial: see checkpoint_folders
        self._lock: DriverLock | None = None  # the driver's, once taken
        if remote.is_uri(path):
            self.uri = remote.URI(str(path).rstrip("/"))
            if writable:
                self.path = remote.stage_dir(self.uri)
                remote.pull(self.uri, self.path, keep=_not_a_checkpoint)  # what a resume continues from
                self._uploader = Uploader(self.uri, self.path)
                self._uploader.mark_sent()
            else:
                # A reader fetches the records, not the checkpoints (they are for whoever
                # restores one, by their URIs); their folders are known from the listing.
                self.path = remote.cache_dir("read", self.uri)
                checkpoints: dict[str, set[str]] = {}

                def not_a_checkpoint(rel: str) -> bool:
                    where = remote.checkpoint_of(rel)
                    if where is not None:
                        checkpoints.setdefault(where[0], set()).add(where[1])
                    return where is None

                remote.pull(self.uri, self.path, keep=not_a_checkpoint)
                self._remote_checkpoints = checkpoints
        else:
            self.path = Path(remote.local_path(path)).expanduser().resolve()
        self.trials_path = self.path / "trials"
        self._trial_paths: dict[str, Path] = {}  # asked for several times per trial
        self._appended: set[str] = set()  # trials whose results.jsonl this writer has checked for a torn tail
        self._unsynced: set[Path] = set()  # results files appended to since they were last flushed to disk
        self._synced_at = 0.0
        #: The run of the driver holding this folder (set by :meth:`acquire_driver_lock`).
        self.run_id: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def location(self) -> str:
        """Where the experiment lives: its URI, or its folder."""
        return self.uri or str(self.path)

    def shown(self, *parts: str) -> Path:
        """A path in the experiment as users see it: under its URI for cloud storage (a
        :class:`~raytuner._storage.remote.URI`, a ``str``), else under its folder."""
        base: Any = self.uri if self.uri is not None else self.path
        for part in parts:
            base = base / part
        return base

    def trial_shown(self, trial_id: str) -> Path:
        return self.shown("trials", trial_id) if self.uri is not None else self.trial_path(trial_id)

    def exists(self) -> bool:
        return (self.path / EXPERIMENT_FILE).is_file()

    def create(self) -> None:
        with self._writing(self.trials_path):
            self.trials_path.mkdir(parents=True, exist_ok=True)
        self._uploading()

    @contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        """Turn the OS's refusal of a write into a :class:`StorageError` that names the file,
        the cause and how to continue, instead of a raw traceback."""
        try:
            yield
        except OSError as exc:
            raise self.storage_error(exc, path) from None

    def storage_error(self, exc: OSError, path: Path) -> StorageError:
        return trial_files.storage_error(exc, path, self.location, started=(self.path / EXPERIMENT_FILE).is_file())

    def flush_to_disk(self, *, every_s: float | None = FSYNC_INTERVAL_S) -> None:
        """Flush the results files appended to since the last flush to disk, at most once
        every ``every_s`` seconds (None: now). A process crash loses nothing a write
        returned anyway; this bounds what a machine crash (a power loss) can take."""
        if not self._unsynced or (every_s is not None and time.monotonic() - self._synced_at < every_s):
            return
        for path in sorted(self._unsynced):
            with self._writing(path):
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # the trial's folder was removed by hand: nothing to flush
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._unsynced.clear()
        self._synced_at = time.monotonic()

    def _uploading(self) -> None:
        if self._uploader is not None:
            self._uploaded = False
            self._uploader.start()

    def sync(self) -> None:
        """Upload every change now (a URI only; a local folder is always up to date). Once it
        has gone up, the staging copy holds nothing the bucket lacks (:meth:`discard_stage`):
        also after :meth:`close`, for a write made then (the FAILED of a run whose trials all
        failed)."""
        if self._uploader is not None:
            self._uploader.sync()
            self._uploaded = True  # the driver writes on one thread: nothing changed meanwhile

    def close(self) -> None:
        """Flush results to disk, upload what is left and stop uploading. The local folder
        stays as it is."""
        self.flush_to_disk(every_s=None)
        if self._uploader is not None:
            self._uploaded = False  # until the last upload has gone through (the trials' rows too)
            self._uploader.close()
            self._uploaded = True

    def discard_stage(self) -> None:
        """Cloud storage: remove this writer's local staging copy once everything is in the
        bucket (after :meth:`close` and the driver lock's release). A copy whose last upload
        failed is kept, and said where: it holds what the bucket lacks."""
        if self._uploader is None:
            return
        stage = self.path.parent  # the writer's own folder (remote.stage_dir)
        if self._uploaded:
            shutil.rmtree(stage, ignore_errors=True)
            self._discard_dead_stages()
        elif self.stood_down is not None:
            logger.warning("%s: this driver stopped writing to the bucket (%s); what it did after that is in its "
                           "local copy at %s only. Do not copy that into the bucket: resume from the bucket.",
                           self.uri, self.stood_down, self.path)
        elif self.path.is_dir():
            logger.warning("%s: not everything reached the bucket; the local copy stays at %s. Copy it there "
                           "(e.g. `aws s3 sync %s %s`) before resuming.", self.uri, self.path, self.path, self.uri)

    def _discard_dead_stages(self) -> None:
        """After a run that put everything in the bucket: remove the local copies that earlier
        drivers of this experiment left on this machine (a SIGKILL, the OOM killer; or one
        whose last upload failed): this run went on from the bucket, so what such a copy holds
        beyond it is of a run that no longer counts, and copying it in now would undo this
        one's. A copy whose driver lives, or made in the last :data:`STAGE_GRACE_S` (a driver
        starting, before it holds its lock), stays."""
        removed = []
        for entry in self.path.parent.parent.glob(".w*"):
            copy = entry / self.path.name
            try:
                young = time.time() - entry.stat().st_mtime < STAGE_GRACE_S
            except OSError:
                continue
            if young or not copy.is_dir() or live_owner(copy) is not None:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(copy))
        if removed:
            logger.info("%s: removed %d local cop%s that earlier drivers of it left (%s); this run went on from the "
                        "bucket.", self.uri, len(removed), "y" if len(removed) == 1 else "ies", ", ".join(removed))

    # -- the driver lock (one live driver per experiment) ----------------------------------
    def acquire_driver_lock(self) -> DriverLock:
        """Hold this experiment for the calling driver until ``release()``; raises
        :class:`ExperimentError` naming the live driver that holds it already."""
        with self._writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            if self.uri is None:
                lock = DriverLock(self.path).acquire()
            else:  # the staging copy is this writer's own: the lock that counts is in the bucket
                try:
                    lock = DriverLock(self.path, bucket=self._bucket_record(), name=self.uri).acquire()
                except ExperimentError:
                    if self._uploaded:  # nothing written yet: the refused driver leaves no copy behind
                        self.discard_stage()
                    raise
                if self._uploader is not None:
                    self._uploader.fence = lock.check_standing
        self._lock = lock
        self.run_id = lock.run_id
        return lock

    def check_standing(self) -> None:
        """Raise the :class:`StorageError` that stops a run whose driver may write nothing
        more to the experiment (its lease on the bucket ran out, or another driver took the
        experiment over: :meth:`DriverLock.check_standing`)."""
        if self._lock is not None:
            self._lock.check_standing()

    @property
    def stood_down(self) -> str | None:
        """Why this writer's driver may write nothing more to the experiment, or None."""
        return self._lock.stood_down if self._lock is not None else None

    def live_driver(self) -> LockOwner | None:
        """The driver running this experiment now, or None (none, or it died). Reads only.
        In a bucket, from the record its driver keeps there (as the bucket says now; the
        copy pulled with the rest if the bucket cannot be read)."""
        if self.uri is not None:
            try:
                owner = self._bucket_record().read()
            except Exception:  # noqa: BLE001 - out of reach: the copy pulled with the rest, or our own lock
                return live_owner(self.path)
            return owner if owner is not None and bucket_owner_live(owner) else None
        return live_owner(self.path)

    def refuse_if_live(self) -> None:
        """Raise the :class:`ExperimentError` a driver's start meets if a live driver holds the
        experiment now (in a bucket: its record there). Reads only: for a resume to ask
        before it cleans anything up."""
        holder = self.live_driver()
        if holder is not None:
            raise ExperimentError(DriverLock(self.path, name=self.uri)._refusal(holder))

    def _bucket_record(self) -> BucketRecord:
        assert self.uri is not None
        fs, root = remote.filesystem(self.uri)
        return BucketRecord(fs, f"{root}/{BUCKET_LOCK_FILE}", str(self.uri / BUCKET_LOCK_FILE))

    def holds_files(self) -> bool:
        """Whether the folder holds an experiment's files (for a URI: whether anything was
        under it when it was opened). A driver lock alone is none, nor what a start killed
        before it wrote experiment.json leaves (``tuner.pkl``, an empty ``trials``): running
        the script again takes such a folder over."""
        if not self.path.is_dir():
            return False
        names = {p.name for p in self.path.iterdir()
                 if p.name not in (LOCK_FILE, BUCKET_LOCK_FILE) and not p.name.startswith(".")}
        if EXPERIMENT_FILE in names or names - {"trials", "tuner.pkl"}:
            return True
        return "trials" in names and any(self.trials_path.iterdir())

    def discard_unstarted(self) -> bool:
        """A start that failed before it wrote experiment.json (Ray could not start, a Ctrl-C
        came then): remove what it made (``tuner.pkl``, an empty ``trials``), so that it leaves
        no folder readers cannot read (``raytuner ls`` skipped it, ``raytuner.load`` refused
        it). Call it holding the driver lock; True if the folder is left with nothing but
        that lock (:meth:`DriverLock.release_and_remove` then removes it)."""
        if self.uri is not None or self.holds_files():
            return False
        (self.path / "tuner.pkl").unlink(missing_ok=True)
        try:
            self.trials_path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return {p.name for p in self.path.iterdir()} <= {LOCK_FILE, FLOCK_FILE}

    # -- experiment ----------------------------------------------------------------------
    def write_experiment(self, meta: dict[str, Any]) -> None:
        path = self.path / EXPERIMENT_FILE
        with self._writing(path):
            atomic_write_json(path, meta, durable=True)  # rare, and the experiment's one record
        self._uploading()

    def read_experiment(self) -> dict[str, Any]:
        path = self.path / EXPERIMENT_FILE
        if not path.is_file():
            if self.uri is not None:
                msg = f"No experiment at {self.uri}: it holds no {EXPERIMENT_FILE}."
            elif not self.path.exists():
                msg = f"No experiment at {self.path}: the folder does not exist."
            else:
                msg = f"{self.path} is not a raytuner experiment: it has no {EXPERIMENT_FILE}."
            raise ExperimentError(msg + f" Pass the folder of an experiment, e.g. {DEFAULT_ROOT}/<name>.")
        meta, damage = read_record(path, experiment_fault)
        if damage is not None:
            raise ExperimentError(f"{damage.describe()}: the file is damaged, so this experiment cannot be run "
                                  "on (nothing was changed). Repair that field, or read what is left with "
                                  "raytuner.load().")
        return meta

    def read_experiment_record(self) -> tuple[dict[str, Any], Damage | None]:
        """experiment.json for a reader: a damaged one (not JSON, a field of the wrong type)
        gives the fields still usable and where the damage is, instead of failing.
        :class:`ExperimentError` only when there is no experiment here at all."""
        path = self.path / EXPERIMENT_FILE
        if not path.is_file():
            self.read_experiment()  # says what is there instead
        meta, damage = read_record(path, experiment_fault)
        if damage is None:
            return meta, None
        usable = usable_fields(meta) if isinstance(meta, dict) else {}
        return {**usable, "name": self.name if not isinstance(usable.get("name"), str) else usable["name"]}, damage

    def save_state(self, name: str, obj: Any) -> None:
        from ray import cloudpickle  # by value: functions in `stop=`, lambdas in spaces

        path = self.path / f"{name}.pkl"
        data = cloudpickle.dumps(obj)
        with self._writing(path):
            atomic_write_bytes(path, data)

    def load_state(self, name: str) -> Any:
        """Unpickle saved searcher/scheduler state. Only call this on folders you trust:
        unpickling can run code. A file that does not unpickle raises
        :class:`ExperimentError` naming it, the cause and the way on."""
        path = self.path / f"{name}.pkl"
        if not path.is_file():
            return None
        try:
            return pickle.loads(path.read_bytes())
        except (ImportError, AttributeError) as exc:  # a class of the user's, not importable here
            raise ExperimentError(
                f"{path} could not be read: it needs {type(exc).__name__}: {exc}. Resume where the module that "
                "defines the experiment's own searcher, scheduler or stop= function can be imported (the script's "
                "folder, or its package installed). Nothing was changed."
            ) from None
        except Exception as exc:  # noqa: BLE001 - truncated or garbled: pickle raises many types
            way = ("Restore it from a copy, or delete it to resume without it: the searcher and scheduler then start "
                   "afresh, told of each trial's end, and a model-based searcher's proposals for the trials already "
                   "run will not be their configs (a warning names them; they keep the configs they ran with)"
                   if name == "state" else "Restore it from a copy: it holds the Tuner's settings")
            raise ExperimentError(f"{path} is damaged ({type(exc).__name__}: {exc}), so this experiment cannot be "
                                  f"resumed (nothing was changed). {way}.") from None

    # -- trials --------------------------------------------------------------------------
    def trial_path(self, trial_id: str) -> Path:
        path = self._trial_paths.get(trial_id)
        if path is None:
            path = self._trial_paths[trial_id] = self.trials_path / trial_id
        return path

    def trial_ids(self, *, started_only: bool = True) -> list[str]:
        """Trials with a trial.json; with ``started_only=False`` also those that only have a
        config (created just before the driver stopped)."""
        if not self.trials_path.is_dir():
            return []
        marker = "trial.json" if started_only else "config.json"
        return sorted(p.name for p in self.trials_path.iterdir() if (p / marker).is_file())

    def write_config(self, trial_id: str, config: dict[str, Any]) -> None:
        path = self.trial_path(trial_id)
        with self._writing(path / "config.json"):
            path.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path / "config.json", config, indent=None)

    def write_trial(self, trial_id: str, record: dict[str, Any]) -> None:
        path = self.trial_path(trial_id) / "trial.json"
        with self._writing(path):
            atomic_write_json(path, record, indent=None)

    def read_trial_config(self, trial_id: str) -> dict[str, Any]:
        return read_json(self.trial_path(trial_id) / "config.json")

    def read_trial(self, trial_id: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        path = self.trial_path(trial_id)
        return read_json(path / "trial.json"), read_json(path / "config.json"), self.read_error(trial_id)

    def read_error(self, trial_id: str) -> str | None:
        """The trial's recorded failures (error.txt), or None."""
        try:
            return (self.trial_path(trial_id) / "error.txt").read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return None

    def append_results(self, trial_id: str, rows: list[dict[str, Any]]) -> None:
        """Append report rows or attempt markers (see :mod:`raytuner._storage.history`). The
        first append of this writer cuts a torn last line that a crash may have left."""
        path = self.trial_path(trial_id) / RESULTS_FILE
        with self._writing(path):
            if trial_id not in self._appended:
                repair_tail(path, trial_id)
                self._appended.add(trial_id)
            append(path, "".join(dumps(row) + "\n" for row in rows).encode())
        self._unsynced.add(path)

    def read_history(self, trial_id: str) -> History:
        """The trial's results.jsonl folded into one trajectory, with what was superseded."""
        return read_history(self.trial_path(trial_id) / RESULTS_FILE)

    def read_results(self, trial_id: str) -> list[dict[str, Any]]:
        """The trial's kept report rows; raises :class:`ExperimentError` if the file is
        damaged before its tail (a torn tail is skipped)."""
        history = self.read_history(trial_id)
        history.raise_if_damaged()
        return history.rows

    def append_error(self, trial_id: str, text: str) -> None:
        path = self.trial_path(trial_id) / "error.txt"
        with self._writing(path):
            append(path, (text if text.endswith("\n") else text + "\n").encode())

    def append_log(self, trial_id: str, text: str, max_bytes: int = LOG_MAX_BYTES) -> None:
        """Append what the trial printed; past ``max_bytes`` the rest is dropped, once noted."""
        path = self.trial_path(trial_id) / LOG_FILE
        data = text.encode("utf-8", "replace")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= max_bytes:
            return
        if size + len(data) > max_bytes:
            data = data[: max_bytes - size] + (
                f"\n[raytuner: this log reached {max_bytes} bytes; the trial's further output was dropped]\n"
            ).encode()
        with self._writing(path):
            append(path, data)

    def log_path(self, trial_id: str) -> Path:
        return self.trial_path(trial_id) / LOG_FILE

    def read_log(self, trial_id: str, offset: int = 0, limit: int | None = None) -> tuple[str, int]:
        """The trial's log from byte ``offset`` (at most ``limit`` bytes), and where it ends."""
        try:
            with open(self.log_path(trial_id), "rb") as handle:
                handle.seek(offset)
                data = handle.read() if limit is None else handle.read(limit)
        except FileNotFoundError:
            return "", 0
        return data.decode("utf-8", "replace"), offset + len(data)


def _not_a_checkpoint(rel: str) -> bool:
    """Files a writer pulls from a bucket: all but checkpoints, a trial's own or a PBT clone's
    copy (workers read those themselves), and the live driver's record, which is the
    bucket's own (a writer reads it there: :meth:`ExperimentStorage.acquire_driver_lock`)."""
    if rel == BUCKET_LOCK_FILE:
        return False
    parts = rel.split("/")
    if len(parts) < 4 or parts[0] != trial_files.TRIALS:
        return True
    own = checkpoint_iteration(parts[2]) is not None
    cloned = len(parts) > 4 and parts[2].startswith("clone_") and checkpoint_iteration(parts[3]) is not None
    return not (own or cloned)
