"""Checkpoints of a worker that cannot reach the experiment's storage, relayed through the
driver's node in chunks.

A worker on a node without the experiment's folder (no shared file system, no URI) hands its
checkpoint to small Ray tasks pinned to the driver's node, which always sees the storage:
:func:`push` sends the files :data:`CHUNK` bytes per task, at most :data:`WINDOW` in flight,
into a hidden folder there, then one more task puts that folder in place as any worker would
(:func:`raytuner._storage.trial_files.put`). :func:`pull` reads a checkpoint back the same way,
for a trial that restarts on such a node. Neither side holds more than a few chunks in memory,
and the driver's own process takes no part: its loop and its memory never see checkpoint bytes.

The tasks ask for no CPU, so they run beside the trials on a full node; Ray starts a process
for them on the driver's node the first time one is needed.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import uuid
from collections import deque
from pathlib import Path, PurePosixPath
from typing import Any

import ray

from raytuner._storage import remote
from raytuner._storage import trial_files
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation

#: Bytes per task: a few MiB, so that a checkpoint of any size costs bounded memory.
CHUNK = 4 * 1024 * 1024
#: Tasks in flight at once: the next chunk travels while the last one is written.
WINDOW = 2


def push(src: Path, where: ExperimentLocation, trial_id: str, name: str, *, chunk: int = CHUNK) -> bool:
    """Store the folder ``src`` as checkpoint ``name`` of the trial, through the driver's node;
    complete (and flushed, for a folder) when this returns, as :func:`trial_files.put`.

    False, storing nothing, if another driver run holds the experiment now
    (:func:`trial_files.taken_over`, asked on the driver's node right before the checkpoint
    goes in place): the driver that ran this trial was killed, and the tasks on its node
    outlive it."""
    token = uuid.uuid4().hex[:12]
    files = trial_files.files_of(src)
    folders = sorted(_empty_folders(src))  # the others come with their files
    write = _on_driver_node(_write, where)
    pending: deque[Any] = deque()
    try:
        for rel in files:
            with open(src / rel, "rb") as handle:
                offset = 0
                while True:
                    data = handle.read(chunk)
                    pending.append(write.remote(where, trial_id, token, rel, offset, data))
                    if len(pending) >= WINDOW:
                        ray.get(pending.popleft())
                    offset += len(data)
                    if len(data) < chunk:
                        break
        ray.get(list(pending))
        return bool(ray.get(_on_driver_node(_commit, where).remote(where, trial_id, name, token, folders)))
    except BaseException:
        _on_driver_node(_abort, where).remote(where, trial_id, token)  # not waited on: best effort
        raise


def pull(where: ExperimentLocation, ref: CheckpointRef, target: Path, *, chunk: int = CHUNK) -> Path:
    """Copy a stored checkpoint into ``target`` (a new local folder), through the driver's node."""
    files, folders = ray.get(_on_driver_node(_listing, where).remote(where, ref))
    target.mkdir(parents=True)
    for folder in folders:
        (target / _safe(folder)).mkdir(parents=True, exist_ok=True)
    read = _on_driver_node(_read, where)
    for rel, size in files:
        path = target / _safe(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pending: deque[Any] = deque()
            for offset in range(0, size, chunk):
                pending.append(read.remote(where, ref, rel, offset, chunk))
                if len(pending) >= WINDOW:
                    handle.write(ray.get(pending.popleft()))
            while pending:
                handle.write(ray.get(pending.popleft()))
    return target


def unseen_from_driver_node(where: ExperimentLocation) -> str | None:
    """Why the node relays go to does not reach the experiment's storage (None: it does).
    It always does where the driver's process runs on it; under Ray Client the driver runs
    off the cluster, and that node is the one ``ray://`` reached."""
    return ray.get(_on_driver_node(_unseen, where).remote(where))


def _on_driver_node(task: Any, where: ExperimentLocation) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    pinned = NodeAffinitySchedulingStrategy(where.driver_node_id, soft=False)
    return task.options(num_cpus=0, scheduling_strategy=pinned)


def _empty_folders(src: Path) -> set[str]:
    return {os.path.relpath(root, src).replace(os.sep, "/") for root, dirs, files in os.walk(src)
            if not dirs and not files and root != str(src)}


def _safe(rel: str) -> PurePosixPath:
    """A relative path from the other side, refused if it would leave the checkpoint's folder."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"refusing the checkpoint path {rel!r}: it leaves the checkpoint's folder")
    return path


def _staging(where: ExperimentLocation, trial_id: str, token: str) -> Path:
    """Where a relayed checkpoint gathers on the driver's node: beside the trial's checkpoints
    for a folder (it is then renamed into place), a local temporary folder for a URI."""
    if where.is_uri:
        return Path(tempfile.gettempdir()) / "raytuner-relay" / token
    return Path(where.trial(trial_id)) / f"{trial_files.PARTIAL_PREFIX}-relay-{token}"


# -- tasks on the driver's node -----------------------------------------------------------------
@ray.remote
def _write(where: ExperimentLocation, trial_id: str, token: str, rel: str, offset: int, data: bytes) -> None:
    path = _staging(where, trial_id, token) / _safe(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, offset)  # at its offset: a task retried by Ray writes the same bytes again
    finally:
        os.close(fd)


@ray.remote(max_retries=0)
def _commit(where: ExperimentLocation, trial_id: str, name: str, token: str, folders: list[str]) -> bool:
    staged = _staging(where, trial_id, token)
    staged.mkdir(parents=True, exist_ok=True)  # a checkpoint may hold no file at all
    for folder in folders:
        (staged / _safe(folder)).mkdir(parents=True, exist_ok=True)
    try:
        trial_files.put(staged, where.checkpoint(CheckpointRef(trial_id, name)), move=True,
                        check=functools.partial(trial_files.refuse_if_taken_over, where))
    except trial_files.TakenOver:
        shutil.rmtree(staged, ignore_errors=True)  # a folder's staging went with the check's refusal
        return False
    return True


@ray.remote
def _unseen(where: ExperimentLocation) -> str | None:
    return trial_files.unseen(where)


@ray.remote
def _abort(where: ExperimentLocation, trial_id: str, token: str) -> None:
    shutil.rmtree(_staging(where, trial_id, token), ignore_errors=True)


@ray.remote
def _listing(where: ExperimentLocation, ref: CheckpointRef) -> tuple[list[tuple[str, int]], list[str]]:
    """The checkpoint's files with their sizes, and its folders."""
    source = where.checkpoint(ref)
    if where.is_uri:
        fs, path = remote.filesystem(source)
        found = remote.retrying(lambda: fs.find(path, detail=True), uri=source, what="list", location=where.location)
        if not found:
            raise FileNotFoundError(f"No checkpoint at {source}: the bucket holds no files under it.")
        return [(key[len(path):].lstrip("/"), int(info["size"])) for key, info in sorted(found.items())], []
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"No checkpoint at {source}.")
    files = [(rel, (root / rel).stat().st_size) for rel in trial_files.files_of(root)]
    return files, sorted(_empty_folders(root))


@ray.remote
def _read(where: ExperimentLocation, ref: CheckpointRef, rel: str, offset: int, size: int) -> bytes:
    source = f"{where.checkpoint(ref)}/{_safe(rel)}"
    if where.is_uri:
        fs, path = remote.filesystem(source)
        return remote.retrying(lambda: fs.cat_file(path, start=offset, end=offset + size), uri=source, what="read",
                               location=where.location)
    with open(source, "rb") as handle:
        return os.pread(handle.fileno(), size, offset)
