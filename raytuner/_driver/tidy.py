"""Checkpoint folders that no record names, removed: by a resume before its first trial,
and at the end of a run that lost or killed workers and was not interrupted.

A lost worker (its node died, or its process) may leave a checkpoint it put in place whose
report never reached the driver, and the hidden folders of a store it was making
(``.checkpoint-*``: staged, or gathering a relay). No reader shows them, and the next
attempt of the trial replaces a folder of the same name whole; they would only take the
storage's space for good.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial
from raytuner.errors import StorageError

logger = logging.getLogger("raytuner")


def tidy(storage: ExperimentStorage, trials: Mapping[str, Trial], exploits: Mapping[str, Any] | None = None,
         *, why: str = "when the last run ended") -> None:
    """Remove the checkpoint folders no record names: those being stored ``why``, those no
    kept row commits (written just before a crash, or by a lost attempt), and those under a
    trial id with no files of its own.

    Called only where no worker may still store one: by a resume once its run's id is in
    experiment.json (a worker of the dead driver checks that id right before it puts a
    checkpoint in place, :func:`raytuner._storage.trial_files.taken_over`, so none lands
    after the folders are listed here), or once every trial of a run has ended. A PBT
    exploit not launched yet keeps the copy it made (``exploits``: trial id -> its plan).
    """
    exploits = exploits or {}
    storage.relist_checkpoints()  # a bucket's listing is from the scan: one may have landed since
    for trial in trials.values():
        partial = storage.remove_partial_checkpoints(trial.trial_id)
        if partial:
            logger.info("Trial %s: removed %s, checkpoints that were being stored %s.",
                        trial.trial_id, ", ".join(partial), why)
        copy = exploits.get(trial.trial_id, {}).get("folder")
        stray = sorted(set(storage.checkpoint_folders(trial.trial_id)) - set(trial.checkpoints) - {copy})
        if stray:
            logger.info("Trial %s: removing %s, which no kept report commits (written just before a crash, or "
                        "by an attempt that was lost).", trial.trial_id, ", ".join(stray))
            storage.delete_checkpoints(trial.trial_id, stray)
    for trial_id in storage.checkpointed_trials():
        if trial_id in trials:
            continue
        names = storage.checkpoint_folders(trial_id)
        partial = storage.remove_partial_checkpoints(trial_id)
        if names or partial:
            logger.info("Removing %s in %s: checkpoints of a trial whose own files were never written.",
                        ", ".join(names + partial), storage.trial_path(trial_id))
            storage.delete_checkpoints(trial_id, names)


def tidy_after_lost_workers(storage: ExperimentStorage, trials: Mapping[str, Trial]) -> None:
    """At the end of a run that lost workers or killed them (a time budget's end, an
    ``end_experiment``, an abort), once they are dead: the checkpoint folders they left (put
    in place, or half stored, with no report naming them) go now, not at some later resume.
    A storage that refuses costs only the space: said, and the run ends as it would."""
    try:
        tidy(storage, trials, why="when their worker was lost")
    except (StorageError, OSError) as exc:
        logger.warning("Could not remove checkpoint folders that no report names (%s); a resume removes them.", exc)
