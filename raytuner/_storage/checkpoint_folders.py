"""An experiment's checkpoint folders in storage, as :class:`~raytuner._storage.experiment.ExperimentStorage`
lists, copies (PBT clones), deletes and tidies them: in its folder, or in its bucket, where
the workers put them (:mod:`raytuner._storage.trial_files`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from raytuner._formats import checkpoint_iteration
from raytuner._storage import faults, remote, trial_files
from raytuner._storage.files import link_or_copy

if TYPE_CHECKING:
    from raytuner._storage.remote import URI
    from raytuner._storage.uploader import Uploader


class CheckpointFolders:
    # What the methods use of the ExperimentStorage they are part of.
    uri: URI | None
    trials_path: Path
    _uploader: Uploader | None
    _remote_checkpoints: dict[str, set[str]] | None

    if TYPE_CHECKING:
        def trial_path(self, trial_id: str) -> Path: ...

        def _writing(self, path: Path) -> Iterator[None]: ...

    def delete_checkpoints(self, trial_id: str, names: Iterable[str]) -> None:
        """Remove checkpoint folders the lifecycle no longer keeps.

        In a bucket, the trial's changed files (the row that commits a newer checkpoint) are
        uploaded first, so that the bucket never loses a checkpoint before it holds the row
        that replaces it.
        """
        names = [name for name in names if checkpoint_iteration(name) is not None]  # never anything else
        trial_path = self.trial_path(trial_id)
        for name in names:
            with self._writing(trial_path / name):
                if faults.at_write(trial_path / name):
                    faults.die()
            shutil.rmtree(trial_path / name, ignore_errors=True)
            if "/" in name:  # a clone's copy: its clone_<n> folder goes with it
                _remove_empty((trial_path / name).parent)
        if self._uploader is not None and names:
            self._uploader.push(trial_path)
            remote.remove([f"{trial_files.trial_location(self.uri, trial_id)}/{name}" for name in names])
            if self._remote_checkpoints is not None:
                self._remote_checkpoints.get(trial_id, set()).difference_update(names)

    def checkpoint_folders(self, trial_id: str) -> list[str]:
        """The names of a trial's checkpoint folders in storage, committed or not, in order
        (its own, then the copies that PBT exploits cloned: ``clone_<n>/checkpoint_<k>``;
        in a bucket: as listed when first asked, less those deleted since)."""
        if self.uri is not None:  # the local copy holds none: the workers put them in the bucket
            if self._remote_checkpoints is None:
                self._remote_checkpoints = remote.checkpoint_folders(self.uri)
            return sorted(self._remote_checkpoints.get(trial_id, ()), key=lambda name: ("/" in name, name))
        path = self.trial_path(trial_id)
        names = [p.relative_to(path).as_posix() for pattern in ("checkpoint_*", "clone_*/checkpoint_*")
                 for p in sorted(path.glob(pattern))]
        return [name for name in names if (path / name).is_dir() and checkpoint_iteration(name) is not None]

    def relist_checkpoints(self) -> None:
        """In a bucket: list the checkpoint folders afresh at the next look (the listing is
        kept from the first; a worker may have stored one since)."""
        self._remote_checkpoints = None

    def checkpointed_trials(self) -> list[str]:
        """The trials whose folders in storage hold any checkpoint folder, or may (locally: every trial folder)."""
        if self.uri is not None:
            if self._remote_checkpoints is None:
                self._remote_checkpoints = remote.checkpoint_folders(self.uri)
            return sorted(self._remote_checkpoints)
        return sorted(p.name for p in self.trials_path.iterdir() if p.is_dir()) if self.trials_path.is_dir() else []

    def has_checkpoint(self, trial_id: str, name: str) -> bool:
        """Whether checkpoint folder ``name`` of ``trial_id`` is in storage now (one deleted
        by hand is no checkpoint); in a bucket, whether it holds any file there."""
        if self.uri is not None:
            return remote.holds_files(f"{trial_files.trial_location(self.uri, trial_id)}/{name}")
        return (self.trial_path(trial_id) / name).is_dir()

    def clone_checkpoint(self, source_trial: str, source: str, trial_id: str, name: str) -> bool:
        """Copy checkpoint ``source`` of ``source_trial`` to ``name`` in ``trial_id``'s folder
        (a PBT exploit: the clone restarts from its own copy, which its donor's pruning
        never touches). False, copying nothing, if ``source`` is gone (deleted by hand): the
        lifecycle then finds no copy when it launches the clone, and the clone keeps its own
        checkpoint and config (:meth:`raytuner._driver.exploits.Exploits.drop_gone`).

        In a folder, files are hard-linked where the file system allows (checkpoint files
        are never changed in place: a folder is replaced whole), else copied; the copy is
        made in a hidden folder beside its place, flushed, then renamed into it (a crash
        leaves the hidden folder, which :meth:`remove_partial_checkpoints` removes). In a
        bucket (where the workers put checkpoints) it is copied straight to its place, as a
        worker uploads one: whatever was there goes first, and nothing names the copy
        before it is whole (the exploit is saved as pending, or its attempt marker written,
        only after), so a copy cut short is one no record names, which a resume removes
        (:mod:`raytuner._driver.resume`). The trial's own files are uploaded first, so that
        the bucket knows the trial whose folder holds the copy.
        """
        if self.uri is not None:
            if self._uploader is not None:
                self._uploader.push(self.trial_path(trial_id))
            copied = remote.copy_folder(f"{trial_files.trial_location(self.uri, source_trial)}/{source}",
                                        f"{trial_files.trial_location(self.uri, trial_id)}/{name}")
            if copied and self._remote_checkpoints is not None:
                self._remote_checkpoints.setdefault(trial_id, set()).add(name)
            return copied
        origin, target = self.trial_path(source_trial) / source, self.trial_path(trial_id) / name
        if not origin.is_dir():
            return False
        with self._writing(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f"{trial_files.PARTIAL_PREFIX}_{target.name}.clone"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                shutil.copytree(origin, tmp, copy_function=link_or_copy)
                if faults.at_write(target):
                    faults.die()  # the crash harness: the copy made, not in place
                trial_files.settle(tmp, target)
            except BaseException as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(exc, (FileNotFoundError, shutil.Error)) and not origin.is_dir():
                    _remove_empty(target.parent)  # deleted while it was copied: as if before
                    return False
                raise
        return True

    def remove_partial_checkpoints(self, trial_id: str) -> list[str]:
        """Remove the hidden folders of checkpoints that were being put in place when a run
        ended (a crash), and a clone's folder that held only such a copy; their paths in
        the trial's folder."""
        trial_path = self.trial_path(trial_id)
        found = trial_files.partial_folders(trial_path)
        for path in found:
            shutil.rmtree(path, ignore_errors=True)
            if path.parent != trial_path:
                _remove_empty(path.parent)  # unless it holds a copy that was put in place
        return [path.relative_to(trial_path).as_posix() for path in found]


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` (a clone's) if it is empty."""
    try:
        folder.rmdir()
    except OSError:
        pass
