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
            checkpoint_<n>/       checkpoint made at report n (zero-padded)
        driver.lock               the live driver's pid, host and heartbeat (see lock.py)

Every file that must survive a crash whole is written to a temporary file and renamed over
the old one. ``results.jsonl`` is only appended to; a last line cut by a crash is skipped
when read.

The path may also be a URI (``s3://bucket/prefix/<experiment>``, ``gs://...``): the folder
is then a local copy, pulled from the URI when opened and, for a writer, uploaded behind
the writes (:mod:`raytuner._storage.remote`). Everything else reads and writes the local
folder as for any experiment.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

# AUTO_KEYS, flatten and is_finite are not used here: the dashboard still imports them from
# this module (the rest of raytuner imports them from raytuner._formats).
from raytuner._formats import AUTO_KEYS, checkpoint_iteration, dumps, flatten, is_finite, json_default  # noqa: F401
from raytuner._storage import DEFAULT_ROOT
from raytuner._storage.history import RESULTS_FILE, History, read_history, repair_tail
from raytuner._storage.lock import LOCK_FILE, DriverLock, LockOwner, live_owner
from raytuner.errors import ConfigError, ExperimentError

EXPERIMENT_FILE = "experiment.json"
LOG_FILE = "log.txt"
#: A trial's log stops growing here (a note says so): a trial that prints per batch for
#: days must not fill the driver's disk.
LOG_MAX_BYTES = 8 * 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")


def check_name(name: str, argument: str = "name") -> str:
    """Experiment names become folder names: keep them to one safe path component."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        msg = (
            f"`{argument}={name!r}` is not a valid experiment name. Use letters, digits and "
            "'._+=-' only (no '/' or '..'), starting with a letter or digit, e.g. 'mnist_asha'."
        )
        raise ConfigError(msg)
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file, then a rename.

    The temporary name is fixed (``.<name>.tmp``): each file has one writer, the
    controller, and this is on its per-trial path, where ``mkstemp`` costs more.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 1) -> None:
    """``indent=None`` for files written per trial: it lets ``json`` use its C encoder."""
    atomic_write_bytes(path, (json.dumps(obj, default=json_default, indent=indent, allow_nan=True) + "\n").encode())


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root``, then the folders, to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder
    finally:
        os.close(fd)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another device, or a file system without hard links
        shutil.copy2(source, target)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON ({exc}); the file is damaged. Nothing was changed."
        raise ExperimentError(msg) from exc


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a results.jsonl; a last line cut short by a crash is skipped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number >= len(lines) - 2:  # the unterminated tail of an interrupted append
                return
            raise ExperimentError(f"{path}: line {number + 1} is not valid JSON; the file is damaged.") from None


class ExperimentStorage:
    """Reads and writes one experiment's folder.

    Args:
        path: The experiment's folder, or its URI in cloud storage.
        writable: For a URI: stage the experiment in a fresh local folder of this writer's
            own and upload changes behind; without it, read through the shared local cache.
    """

    def __init__(self, path: str | os.PathLike[str], *, writable: bool = False):
        from raytuner._storage import remote

        self.uri: str | None = None
        self._uploader: remote.Uploader | None = None
        self._unpushed: set[str] = set()  # trials with a checkpoint not yet in the bucket
        if remote.is_uri(path):
            self.uri = str(path).rstrip("/")
            if writable:
                self.path = remote.stage_dir(self.uri)
                remote.pull(self.uri, self.path)  # what a resume continues from
                self._uploader = remote.Uploader(self.uri, self.path)
                self._uploader.mark_sent()
            else:
                self.path = remote.cache_dir("read", self.uri)
                remote.pull(self.uri, self.path)
        else:
            self.path = Path(remote.local_path(path)).expanduser().resolve()
        self.trials_path = self.path / "trials"
        self._trial_paths: dict[str, Path] = {}  # asked for several times per trial
        self._appended: set[str] = set()  # trials whose results.jsonl this writer has checked for a torn tail

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def location(self) -> str:
        """Where the experiment lives: its URI, or its folder."""
        return self.uri or str(self.path)

    def exists(self) -> bool:
        return (self.path / EXPERIMENT_FILE).is_file()

    def create(self) -> None:
        self.trials_path.mkdir(parents=True, exist_ok=True)
        self._uploading()

    def _uploading(self) -> None:
        if self._uploader is not None:
            self._uploader.start()

    def sync(self) -> None:
        """Upload every change now (a URI only; a local folder is always up to date)."""
        if self._uploader is not None:
            self._uploader.sync()

    def close(self) -> None:
        """Upload what is left and stop uploading. The local folder stays as it is."""
        if self._uploader is not None:
            self._unpushed.clear()  # the last pass puts everything
            self._uploader.close()

    # -- the driver lock (one live driver per experiment) ----------------------------------
    def acquire_driver_lock(self) -> DriverLock:
        """Hold this experiment for the calling driver until ``release()``; raises
        :class:`ExperimentError` naming the live driver that holds it already."""
        self.path.mkdir(parents=True, exist_ok=True)
        return DriverLock(self.path).acquire()

    def live_driver(self) -> LockOwner | None:
        """The driver running this experiment now, or None (none, or it died). Reads only."""
        return live_owner(self.path)

    def holds_files(self) -> bool:
        """Whether the folder holds anything besides a driver lock (an experiment's files);
        for a URI, whether anything was under it when it was opened."""
        return self.path.is_dir() and any(p.name != LOCK_FILE and not p.name.startswith(".") for p in self.path.iterdir())

    # -- experiment ----------------------------------------------------------------------
    def write_experiment(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.path / EXPERIMENT_FILE, meta)
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
        meta = read_json(path)
        if not isinstance(meta, dict) or "name" not in meta:
            raise ExperimentError(f"{path} does not describe a raytuner experiment.")
        return meta

    def save_state(self, name: str, obj: Any) -> None:
        from ray import cloudpickle  # by value: functions in `stop=`, lambdas in spaces

        atomic_write_bytes(self.path / f"{name}.pkl", cloudpickle.dumps(obj))

    def load_state(self, name: str) -> Any:
        """Unpickle saved searcher/scheduler state. Only call this on folders you trust:
        unpickling can run code."""
        path = self.path / f"{name}.pkl"
        return pickle.loads(path.read_bytes()) if path.is_file() else None

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
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / "config.json", config, indent=None)

    def write_trial(self, trial_id: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.trial_path(trial_id) / "trial.json", record, indent=None)
        self._push_checkpoint(trial_id)

    def _push_checkpoint(self, trial_id: str) -> None:
        """Cloud storage: a new checkpoint goes up with its report's line, before returning.

        Called once the report's row is written (the controller writes a checkpoint, then
        the rows of the same reports, then trial.json): the bucket then never holds a
        checkpoint without its report, nor a trial.json naming a checkpoint it lacks.
        """
        if trial_id in self._unpushed:
            self._unpushed.discard(trial_id)
            self._uploader.push(self.trial_path(trial_id))

    def read_trial_config(self, trial_id: str) -> dict[str, Any]:
        return read_json(self.trial_path(trial_id) / "config.json")

    def read_trial(self, trial_id: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        path = self.trial_path(trial_id)
        error = path / "error.txt"
        return (
            read_json(path / "trial.json"),
            read_json(path / "config.json"),
            error.read_text() if error.is_file() else None,
        )

    def append_results(self, trial_id: str, rows: list[dict[str, Any]]) -> None:
        """Append report rows or attempt markers (see :mod:`raytuner._storage.history`). The
        first append of this writer cuts a torn last line that a crash may have left."""
        path = self.trial_path(trial_id) / RESULTS_FILE
        if trial_id not in self._appended:
            self._appended.add(trial_id)
            repair_tail(path, trial_id)
        text = "".join(dumps(row) + "\n" for row in rows)
        with open(path, "a") as handle:
            handle.write(text)
        self._push_checkpoint(trial_id)

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
        with open(self.trial_path(trial_id) / "error.txt", "a") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")

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
        with open(path, "ab") as handle:
            handle.write(data)

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

    def delete_checkpoints(self, trial_id: str, names: Iterable[str]) -> None:
        """Remove checkpoint folders the lifecycle no longer keeps."""
        trial_path = self.trial_path(trial_id)
        for name in names:
            if checkpoint_iteration(name) is not None:  # never anything but a checkpoint folder
                shutil.rmtree(trial_path / name, ignore_errors=True)
                if "/" in name:  # a clone's copy: its clone_<n> folder goes with it
                    try:
                        (trial_path / name).parent.rmdir()
                    except OSError:
                        pass

    def checkpoint_folders(self, trial_id: str) -> list[str]:
        """The names of a trial's checkpoint folders on disk, committed or not, in order
        (its own, then the copies that PBT exploits cloned: ``clone_<n>/checkpoint_<k>``)."""
        path = self.trial_path(trial_id)
        names = [p.relative_to(path).as_posix() for pattern in ("checkpoint_*", "clone_*/checkpoint_*")
                 for p in sorted(path.glob(pattern))]
        return [name for name in names if (path / name).is_dir() and checkpoint_iteration(name) is not None]

    def clone_checkpoint(self, source_trial: str, source: str, trial_id: str, name: str) -> None:
        """Copy checkpoint ``source`` of ``source_trial`` to ``name`` in ``trial_id``'s folder
        (a PBT exploit: the clone restarts from its own copy, which its donor's pruning
        never touches). Files are hard-linked where the file system allows (checkpoint files
        are never changed in place: a folder is replaced whole), else copied; the copy is
        made beside its place, flushed, then renamed into it."""
        self._uploading()
        target = self.trial_path(trial_id) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            shutil.copytree(self.trial_path(source_trial) / source, tmp, dirs_exist_ok=True, copy_function=_link_or_copy)
            fsync_tree(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
            fsync_dir(target.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if self._uploader is not None:
            self._unpushed.add(trial_id)

    def write_checkpoint(self, trial_id: str, name: str, data: bytes) -> None:
        """Store a packed checkpoint in the trial's folder ``name`` (the lifecycle names it:
        :func:`raytuner._formats.checkpoint_name`), whole: unpacked beside it, flushed to disk,
        then renamed into place. It counts once the row naming it is appended."""
        from raytuner._worker.checkpoint import unpack_to

        self._uploading()
        trial_path = self.trial_path(trial_id)
        final = trial_path / name
        tmp = Path(tempfile.mkdtemp(dir=trial_path, prefix=f".{name}."))
        try:
            unpack_to(data, tmp)
            fsync_tree(tmp)  # a power loss must not keep the row that commits it and lose the files
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(trial_path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if self._uploader is not None:
            self._unpushed.add(trial_id)
