"""A trial run's checkpoints on its worker: where they go, and the two halves of storing one.

Where is decided once per run, by whether the worker sees the experiment's storage
(:func:`raytuner._storage.trial_files.unseen`): a folder it sees, a bucket, or neither (the
relay through the driver's node). Storing a reported checkpoint is split in two:

- :meth:`TrialCheckpoints.stage`, on the training thread inside ``report``: a copy of the
  trainable's folder (a folder raytuner handed out is taken as it is), so the trainable may
  reuse its folder as soon as ``report`` returns;
- :meth:`TrialCheckpoints.store`, on the :class:`~raytuner._worker.outbox.Outbox`'s thread
  while training goes on: flushed to disk and renamed into place, uploaded, or relayed.
  Only then does the report that names it leave the worker.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from raytuner._formats import checkpoint_name
from raytuner._storage import trial_files
from raytuner._storage.trial_files import CheckpointRef
from raytuner._worker.protocol import Signal, TrialSpec
from raytuner.errors import ExperimentError, StorageError, TrialStopped


class Orphaned(TrialStopped):
    """A trial run whose driver is gone: another driver run holds its experiment. It stores
    nothing more and ends as stopped (no one hears of it: its driver is dead)."""

    def __init__(self, trial_id: str, location: str) -> None:
        super().__init__(Signal.STOP.value)
        self.args = (f"trial {trial_id}'s driver is gone: another run holds {location}; its checkpoint was not stored",)


@dataclass(frozen=True)
class Staged:
    """A checkpoint copied out of the trainable's hands, not yet in place: ``folder`` holds
    it; ``name`` is what the report will call it."""

    folder: Path
    name: str


class TrialCheckpoints:
    """The checkpoints of one trial run (see the module docstring).

    Args:
        spec: The trial, with where its experiment's storage is.
        scratch: The run's local scratch folder, made on first use.
    """

    def __init__(self, spec: TrialSpec, scratch: Callable[[], Path]):
        self._spec = spec
        self._where = spec.storage
        self._scratch = scratch
        self._unseen: tuple[str | None] | None = None  # (why this worker does not reach the storage,), once asked
        self._handed_out: set[Path] = set()  # folders of new_folder() not reported yet

    def sees_storage(self) -> bool:
        """Whether this worker reaches the storage itself; False: through the driver's node.

        A bucket is for every worker to reach (with the cluster's credentials): one that
        cannot (no credentials, no such bucket) is an error that says so, unless its node is
        told to relay. One out of reach for a passing cause (a connection refused, a
        timeout) is asked again for a while, then raises :class:`StorageError`: the run
        stops, INTERRUPTED and resumable, and the trial is not failed for it.
        """
        if self._unseen is None:
            self._unseen = (trial_files.unseen(self._where),)
        why = self._unseen[0]
        if why is not None and self._where.is_uri and not trial_files.told_to_relay():
            import ray

            node = ray.get_runtime_context().get_node_id()
            raise ExperimentError(
                f"Trial {self._spec.trial_id}'s worker (node {node[:12]}) cannot reach the experiment's storage "
                f"{self._where.location}: {why}. Workers upload checkpoints to the bucket themselves: give every "
                f"node of the cluster credentials for it (an instance role, ~/.aws, or the AWS_* variables in the "
                f"environment Ray's nodes start with), or set {trial_files.UNSHARED_ENV}=1 on nodes that must "
                "relay through the driver's node."
            )
        return why is None

    def sees_folder(self) -> bool:
        """Whether the storage is a folder this worker sees (the driver's node, or shared)."""
        return not self._where.is_uri and self.sees_storage()

    def new_folder(self) -> Path:
        """A folder for the next checkpoint that :meth:`stage` takes as it is: in the trial's
        folder where the worker sees it (stored by a rename), else in the scratch folder."""
        path = (trial_files.new_folder(self._where, self._spec.trial_id) if self.sees_folder()
                else Path(tempfile.mkdtemp(dir=self._scratch(), prefix="checkpoint-")))
        self._handed_out.add(path)
        return path

    def stage(self, checkpoint: Any, iteration: int) -> Staged:
        """Take the reported folder out of the trainable's hands (see the module docstring)."""
        src = trial_files.check_folder(checkpoint)
        name = checkpoint_name(iteration)
        move = src in self._handed_out
        self._handed_out.discard(src)
        if self.sees_folder():
            with self._refused(name):
                return Staged(trial_files.stage(src, Path(self._target(name)), move=move), name)
        if move:
            return Staged(src, name)
        staged = Path(tempfile.mkdtemp(dir=self._scratch(), prefix=f"{name}-"))
        os.rmdir(staged)
        shutil.copytree(src, staged)
        return Staged(staged, name)

    def store(self, staged: Staged) -> None:
        """Put a staged checkpoint in place in the storage; complete when this returns.

        Raises :class:`Orphaned`, storing nothing, if another driver run holds the
        experiment now (:func:`~raytuner._storage.trial_files.taken_over`, asked right
        before the checkpoint goes in place): this run's driver was killed, and its worker,
        which Ray ends a moment later, must not write into the trial folders of the run
        that resumed the experiment."""
        check = functools.partial(trial_files.refuse_if_taken_over, self._where)
        try:
            if self.sees_folder():
                with self._refused(staged.name):
                    trial_files.settle(staged.folder, Path(self._target(staged.name)), check)
                return
            try:
                if self.sees_storage():
                    with self._denied(staged.name):
                        trial_files.upload(staged.folder, self._target(staged.name), check)
                else:
                    from raytuner._storage import relay

                    if not relay.push(staged.folder, self._where, self._spec.trial_id, staged.name):
                        raise trial_files.TakenOver(self._where.location)
            finally:
                shutil.rmtree(staged.folder, ignore_errors=True)
        except trial_files.TakenOver:
            raise Orphaned(self._spec.trial_id, self._where.location) from None

    def restore(self, ref: CheckpointRef) -> Path:
        """A private copy of the stored checkpoint the trial restarts from."""
        target = self._scratch() / "restored"
        if self.sees_storage():
            return trial_files.get(self._where.checkpoint(ref), target)
        from raytuner._storage import relay

        return relay.pull(self._where, ref, target)

    def discard_unreported(self) -> None:
        """Remove folders handed out for checkpoints that were never reported."""
        for path in self._handed_out:
            shutil.rmtree(path, ignore_errors=True)
        self._handed_out.clear()

    @contextmanager
    def _refused(self, name: str) -> Iterator[None]:
        """The experiment's folder refusing a checkpoint (a full disk, a permission, a
        read-only file system) stops the run as the driver's own writes do, by a
        :class:`StorageError` that the driver raises in turn, rather than failing the trial."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in trial_files.STORAGE_FIXES:
                raise
            raise trial_files.storage_error(exc, self._target(name), self._where.location) from None

    @contextmanager
    def _denied(self, name: str) -> Iterator[None]:
        """A bucket that refuses a worker's upload (its credentials may read, not write) stops
        the run as a full disk does, by a :class:`StorageError`, rather than failing the
        trial. (A bucket out of reach is tried again for a while, then is one too:
        :func:`raytuner._storage.remote.retrying`.)"""
        try:
            yield
        except PermissionError as exc:
            from raytuner._display import cli_command

            raise StorageError(
                f"Cannot write {self._target(name)}: access denied ({exc}). The run stopped; what was written before "
                f"is kept and the experiment shows as INTERRUPTED. To go on, give every node's credentials write "
                f"access to the bucket, then continue it with: {cli_command('resume', self._where.location)}",
                self._target(name),
            ) from None

    def _target(self, name: str) -> str:
        return self._where.checkpoint(CheckpointRef(self._spec.trial_id, name))
