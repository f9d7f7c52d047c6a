"""A trial's files as both the driver and the trial workers reach them: the seam's shared half.

A trial worker puts each checkpoint into the experiment's storage itself, before the report
that carries it leaves the worker, and reads the checkpoint a trial restarts from out of the
storage; the driver only records the folder's name (the report row naming it commits it) and
deletes the checkpoints the lifecycle no longer keeps. Both sides build paths here.

How a checkpoint reaches the storage depends on where the worker stands:

- a URI (``s3://...``): uploaded from the worker through fsspec, straight into the bucket;
- a folder the worker sees as the driver does (the driver's node, or a shared file system):
  copied (or moved, for a folder raytuner handed out) into a hidden folder beside the trial's
  others, flushed to disk, then renamed into place;
- otherwise, relayed in chunks through the driver's node (:mod:`raytuner._storage.relay`).

A worker tells that it sees the experiment's storage by the run id in its ``experiment.json``
(:func:`sees`): a folder at the same path on another node that is not shared, or is left from
another run, is not mistaken for it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from raytuner._formats import is_clone_folder
from raytuner._storage import remote
from raytuner.errors import ReportError, StorageError

EXPERIMENT_FILE = "experiment.json"
TRIALS = "trials"
#: A trial's log stops growing here (a note says so): a trial that prints per batch for
#: days must not fill the driver's disk.
LOG_MAX_BYTES = 8 * 1024 * 1024
#: Hidden folders of checkpoints being put in place (a crash may leave them: resume removes them).
PARTIAL_PREFIX = ".checkpoint"
#: Set (to anything but "" or "0") on a node whose trial workers must treat the experiment's
#: storage as out of reach and relay checkpoints through the driver's node, even where they
#: see its folder: for a node whose view of a shared file system is not to be trusted.
UNSHARED_ENV = "RAYTUNER_STORAGE_UNSHARED"
#: What the storage may refuse a write for, and the fix of each: the driver's writes and the
#: workers' checkpoints stop the run the same way (a :class:`StorageError`).
STORAGE_FIXES = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space or raise your disk quota",
    errno.EACCES: "make the folder writable for this user",
    errno.EPERM: "make the folder writable for this user",
    errno.EROFS: "remount the file system read-write, or copy the experiment to a writable place and resume the copy",
}


@dataclass(frozen=True)
class ExperimentLocation:
    """Where a worker finds the experiment it runs a trial of.

    Attributes:
        location: The experiment's folder as the driver sees it (absolute), or its URI.
        run_id: The driver run's id, as its experiment.json records it.
        driver_node_id: The Ray node of the driver, which always sees the storage.
    """

    location: str
    run_id: str
    driver_node_id: str

    @property
    def is_uri(self) -> bool:
        return remote.is_uri(self.location)

    def trial(self, trial_id: str) -> str:
        return trial_location(self.location, trial_id)

    def checkpoint(self, ref: CheckpointRef) -> str:
        return f"{self.trial(ref.trial_id)}/{ref.name}"


def storage_error(exc: OSError, path: str | os.PathLike[str], location: str, *, started: bool = True) -> StorageError:
    """The error that stops a run whose storage refused a write: it names the file, the
    cause and how to go on (``started``: the experiment exists, so it can be resumed)."""
    from raytuner._display import cli_command

    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    fix = STORAGE_FIXES.get(exc.errno or 0, "fix the cause")
    where = exc.filename or path
    if started:
        then = (f"The run stopped; what was written before is kept and the experiment shows as INTERRUPTED. "
                f"To go on, {fix}, then continue it with: {cli_command('resume', location)}")
    else:
        then = (f"The experiment could not start in {location} (the Tuner's storage_path, and its name). To go on, "
                f"{fix}, or pass storage_path= a folder this process can write in, then run it again.")
    return StorageError(f"Cannot write {where}: {exc.strerror or exc} ({code}). {then}", str(where), exc.errno)


@dataclass(frozen=True)
class CheckpointRef:
    """A stored checkpoint: the trial whose folder holds it, and its folder's name."""

    trial_id: str
    name: str


def trial_location(location: str, trial_id: str) -> str:
    """The folder (or URI) of a trial, in the experiment at ``location``."""
    return f"{location.rstrip('/')}/{TRIALS}/{trial_id}"


_seen: set[tuple[str, str]] = set()


def unseen(where: ExperimentLocation) -> str | None:
    """Why this process does not reach the experiment's storage, or None when it does: its
    experiment.json, read from here, names the same run. A yes is remembered for the run;
    a no is asked again next time. A bucket that fails for a passing cause (a connection
    refused, a timeout, a 5xx: :func:`remote.transient`) is asked again for a while
    (:func:`remote.retrying`), then raises :class:`StorageError`: the run stops, resumable,
    where a wrong setup (no credentials, no such bucket) is an answer at once."""
    if told_to_relay():
        return f"{UNSHARED_ENV} is set on this node"
    key = (where.location, where.run_id)
    if key in _seen:
        return None
    try:
        if where.is_uri:  # a bucket out of reach for a while is tried again, then stops the run
            run_id = remote.retrying(lambda: _recorded_run(where), uri=f"{where.location}/{EXPERIMENT_FILE}",
                                     what="read", location=where.location)
        else:
            run_id = _recorded_run(where)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - missing, unreadable, no credentials: not this run's storage
        return f"its {EXPERIMENT_FILE} cannot be read here ({type(exc).__name__}: {exc})"
    if run_id != where.run_id:
        return f"its {EXPERIMENT_FILE} here is another run's"
    _seen.add(key)
    return None


def _recorded_run(where: ExperimentLocation) -> object:
    """The run id the experiment's experiment.json names now, read afresh from here."""
    if where.is_uri:
        fs, path = remote.filesystem(where.location)
        data = fs.cat_file(f"{path}/{EXPERIMENT_FILE}")
    else:
        data = Path(where.location, EXPERIMENT_FILE).read_bytes()
    return json.loads(data).get("run_id")


def taken_over(where: ExperimentLocation) -> bool:
    """Whether another driver run holds the experiment now (its experiment.json, read afresh,
    names another run): this process's driver is gone, and what it stores now would land in
    the other run's trial folders. A read that fails says nothing (False): the store goes
    on, and fails there if the storage is gone."""
    try:
        return _recorded_run(where) != where.run_id
    except Exception:  # noqa: BLE001 - a missing or torn file, a bucket's hiccup: not another run's id
        return False


class TakenOver(Exception):
    """Another driver run holds the experiment (:func:`taken_over`): nothing is stored into it."""


def refuse_if_taken_over(where: ExperimentLocation) -> None:
    """The ``check`` of :func:`put` and :func:`settle` for a store of run ``where.run_id``:
    raises :class:`TakenOver` if another run holds the experiment now."""
    if taken_over(where):
        raise TakenOver(where.location)


def told_to_relay() -> bool:
    """Whether this node is told to relay checkpoints through the driver's node (:data:`UNSHARED_ENV`)."""
    return os.environ.get(UNSHARED_ENV, "") not in ("", "0")


def sees(where: ExperimentLocation) -> bool:
    """Whether this process reaches the experiment's storage (see :func:`unseen`)."""
    return unseen(where) is None


def check_folder(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder a trainable passed to ``report``, or a ReportError naming it."""
    folder = Path(path)
    if not folder.is_dir():
        msg = (
            f"`checkpoint={str(path)!r}` is not a directory. Pass the path of a directory "
            "that holds the checkpoint files (for example one made with tempfile.TemporaryDirectory())."
        )
        raise ReportError(msg)
    return folder


def new_folder(where: ExperimentLocation, trial_id: str) -> Path:
    """A fresh hidden folder inside the trial's folder, for a checkpoint that :func:`put` will
    then move into place without a copy (the caller must see a folder location)."""
    trial = Path(where.trial(trial_id))
    trial.mkdir(parents=True, exist_ok=True)
    path = trial / f"{PARTIAL_PREFIX}-new-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def put(src: Path, target: str, *, move: bool = False, check: Callable[[], None] | None = None) -> None:
    """Store the folder ``src`` as the checkpoint at ``target`` (a folder or a URI), whole.

    Complete (and, in a folder, flushed to disk: files, then folders) when this returns, so
    the row that names it may be appended; an older checkpoint there (left by a lost
    attempt) is replaced. ``move``: ``src`` is the caller's to give up (gone afterwards).
    ``check`` runs right before the checkpoint goes in place (:func:`settle`), or before
    the upload; if it raises, nothing is stored.
    """
    if remote.is_uri(target):
        upload(src, target, check)
        if move:
            shutil.rmtree(src, ignore_errors=True)
    else:
        place(src, Path(target), move=move, check=check)


def place(src: Path, final: Path, *, move: bool = False, check: Callable[[], None] | None = None) -> None:
    """Put ``src`` at ``final`` (a folder of a local or shared file system) whole: a copy or a
    move into a hidden folder beside it (:func:`stage`), flushed, then renamed into place
    (:func:`settle`, which runs ``check`` before the rename)."""
    settle(stage(src, final, move=move), final, check)


def stage(src: Path, final: Path, *, move: bool = False) -> Path:
    """Copy (or move) ``src`` into a new hidden folder beside ``final``, where :func:`settle`
    then puts it in place: the slow part, done while the caller may not reuse ``src``."""
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    staged = parent / f"{PARTIAL_PREFIX}_{final.name}.tmp-{uuid.uuid4().hex[:12]}"
    if move:
        try:
            os.rename(src, staged)
            return staged
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another file system: copy, then drop the original
                raise
    try:
        copy_tree(src, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if move:
        shutil.rmtree(src, ignore_errors=True)
    return staged


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the folder ``src`` to ``dst`` (new), as ``shutil.copytree`` does, but raising the
    first file's ``OSError`` as it is: copytree gathers them into a ``shutil.Error`` that
    has lost their errno, which tells a full disk (the run stops) from other failures."""
    for root, dirs, files in os.walk(src):
        here = dst / os.path.relpath(root, src)
        here.mkdir(parents=True, exist_ok=root != str(src))
        for name in files:
            shutil.copy2(os.path.join(root, name), here / name)


def settle(staged: Path, final: Path, check: Callable[[], None] | None = None) -> None:
    """Put a staged checkpoint in place at ``final`` (replacing one there), flushed to disk:
    files and folders first, so that a power loss cannot keep the row that will name it and
    lose its files, then the rename. ``check`` runs between the two, as late as it can; if it
    raises, nothing is put in place."""
    try:
        fsync_tree(staged)
        if check is not None:
            check()
        if final.exists():
            shutil.rmtree(final)
        os.rename(staged, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def upload(src: Path, uri: str, check: Callable[[], None] | None = None) -> None:
    """Put the files of folder ``src`` under ``uri``, replacing whatever was there (a lost
    attempt's partial upload must not leave files in the new checkpoint). A passing failure
    of the bucket is tried again (:func:`remote.retrying`), then is a :class:`StorageError`.
    ``check`` runs before each try; if it raises, nothing more is stored."""
    fs, path = remote.filesystem(uri)
    local, keys = [], []
    for rel in files_of(src):
        local.append(str(src / rel))
        keys.append(f"{path}/{rel}")

    def whole() -> None:  # made again whole after a passing failure: what was put goes first
        if check is not None:
            check()
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        if local:
            fs.put(local, keys)

    remote.retrying(whole, uri=uri, what="upload to", location=remote.experiment_of(uri))


def get(source: str, target: Path) -> Path:
    """Copy the checkpoint stored at ``source`` (a folder or a URI) into ``target`` (a new
    local folder), for a trial to restart from: the trainable may change its copy freely."""
    if not remote.is_uri(source):
        shutil.copytree(source, target)
        return target
    fs, path = remote.filesystem(source)

    def fetch() -> None:
        found = fs.find(path)
        if not found:
            raise FileNotFoundError(f"No checkpoint at {source}: the bucket holds no files under it.")
        shutil.rmtree(target, ignore_errors=True)  # a try cut short
        target.mkdir(parents=True)
        local = [str(target / key[len(path):].lstrip("/")) for key in found]
        for file in local:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
        fs.get(found, local)

    remote.retrying(fetch, uri=source, what="read", location=remote.experiment_of(source))
    return target


def files_of(folder: Path) -> list[str]:
    """The files under ``folder``, as paths relative to it with "/" separators."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(root, folder)
        for name in sorted(files):
            found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return found


def partial_folders(trial_path: Path) -> list[Path]:
    """Hidden folders of checkpoints that were being put in place (left by a crash): in the
    trial's folder, and in its ``clone_<n>`` folders, where PBT exploits' copies are made."""
    try:
        places = [trial_path, *(p for p in trial_path.iterdir() if is_clone_folder(p.name) and p.is_dir())]
        return sorted(p for place in places for p in place.iterdir() if p.name.startswith(PARTIAL_PREFIX) and p.is_dir())
    except FileNotFoundError:
        return []


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
