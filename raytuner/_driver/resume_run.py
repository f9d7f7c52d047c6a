"""What :meth:`raytuner.Tuner.resume` does once its arguments are checked: restore the
experiment from its folder, answer one with nothing left to run from the folder alone
(without starting Ray), or take the driver's lock and run it on through
:func:`raytuner._driver.run.run_experiment`. Nothing is written before the trainable is
imported and the lock is held.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from raytuner._callbacks import Callback
from raytuner._control_values import number_text
from raytuner._driver import autoscale
from raytuner._driver.ray_init import ensure_ray
from raytuner._driver.resume import ResumePlan, import_trainable, restore
from raytuner._driver.run import run_experiment
from raytuner._driver.run_clock import RunClock
from raytuner._driver.tidy import tidy
from raytuner._formats import is_finite
from raytuner._results import Results, read
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import TrialStatus
from raytuner.tracking._recorded import recalled


def resume_experiment(storage: ExperimentStorage, trainable: Callable[..., Any] | None, *, num_trials: int | None,
                      time_budget_s: float | None, max_concurrent: int | None, verbose: int | None,
                      callbacks: Sequence[Callback], address: str | None, tensorboard: bool,
                      retry_failed: bool = False) -> Results:
    """Resume the experiment held in ``storage`` (see :meth:`raytuner.Tuner.resume`, which
    checked the arguments); its results."""
    meta = storage.read_experiment()  # raises before anything is written
    settings, searcher, scheduler, restored = restore(storage, meta, trainable=trainable, num_trials=num_trials,
                                                      time_budget_s=time_budget_s, max_concurrent=max_concurrent)
    if verbose is not None:
        settings.verbose = verbose
    speak = verbose is None or verbose > 0  # what resume did is said even if the first run was silent
    plan = ResumePlan.of(restored.trials, searcher.num_trials or settings.num_trials, retry_failed=retry_failed)
    if plan.nothing_to_do and meta.get("status") in ("COMPLETED", "FAILED", "TIMED_OUT"):
        # Answered from the folder: starting Ray (seconds) to run nothing helps no one, and
        # the record stays as its run ended it (a run that ran nothing did not complete it).
        if speak:
            print(f"[raytuner] {storage.name}: {plan.describe()}", flush=True)
            unused = [f"{name}={value:g}" for name, value in (("time_budget_s", time_budget_s),
                                                              ("max_concurrent", max_concurrent)) if value is not None]
            if unused:
                print(f"[raytuner] {', '.join(unused)} changed nothing: no trial is left to run (a trial a time "
                      "budget stopped is finished, STOPPED, and is not continued).", flush=True)
        tidy(storage, restored.trials, restored.exploits)  # its driver wound up: none of its workers is left to store
        return read(storage)
    spent = _budget_spent(meta, settings.time_budget_s)
    if spent is not None:
        # Answered from the folder too: a run would end at its first turn, having run nothing.
        if speak:
            print(f"[raytuner] {storage.name}: {spent} Left to run: {plan.describe()}", flush=True)
        return read(storage)
    with storage.acquire_driver_lock():  # before Ray starts: a live driver is named at once
        if trainable is None:  # before anything is written: a resume that cannot run changes nothing
            trainable = import_trainable(meta, storage.location)
        # The cluster's shape too: a cluster with no node for one trial is refused before any write.
        ensure_ray(address)
        autoscale.max_concurrency(settings.resources)
        for trial_id in restored.commanded:  # before this run's id is in experiment.json (control.replay)
            storage.write_trial(trial_id, restored.trials[trial_id].to_record())
        # This run's id, before any folder goes: a worker of the dead driver stores no
        # checkpoint from now on (trial_files.taken_over), so none lands after tidy() looks.
        meta["run_id"] = storage.run_id
        if is_finite(meta.get("run_time_s")):
            meta["run_time_at"] = time.time()  # its run time holds as it is: the time since the last run does not count
        storage.write_experiment(meta)
        storage.sync()
        tidy(storage, restored.trials, restored.exploits)
        if speak:
            print(f"[raytuner] resuming {storage.name}: {plan.describe()}", flush=True)
            held = _held_limits(meta, num_trials=num_trials, time_budget_s=time_budget_s,
                                max_concurrent=max_concurrent)
            if held:
                print(f"[raytuner] limits an earlier run set still hold: {held}", flush=True)
        for trial in restored.trials.values():
            if not trial.status.is_finished() and trial.status != TrialStatus.PAUSED:
                trial.note = None  # "interrupted (Ctrl-C)" no longer says where it stands
        callbacks = recalled(meta.get("callbacks") or [], callbacks, tensorboard, speak)
        meta["resumed"] = meta.get("resumed", 0) + 1
        return run_experiment(storage, settings, meta, trainable=trainable, searcher=searcher,
                              scheduler=scheduler, callbacks=callbacks, tensorboard=tensorboard,
                              address=address, max_concurrent=max_concurrent, restored=restored,
                              retry=tuple(plan.retry))


def _budget_spent(meta: dict[str, Any], budget: float | None) -> str | None:
    """Why a time budget the experiment's runs have used up leaves this resume nothing to
    run (the budget counts their time: :mod:`raytuner._driver.run_clock`), with what to
    pass; None if time is left."""
    ran = RunClock(meta).before  # 0 for an experiment that has kept none
    if budget is None or ran < budget:
        return None
    return (f"its time budget is used up, so nothing was run: its runs have taken {ran:.1f} s of "
            f"time_budget_s={number_text(budget)} (the budget counts the time of every run, not the time between "
            f"them). Pass time_budget_s= (or --time-budget) above {ran:.1f} to run on.")


def _held_limits(meta: dict[str, Any], **given: Any) -> str:
    """The limits a control command or an earlier resume set that this resume keeps (none
    of them given again), with the argument that changes each; empty if none."""
    from raytuner._driver.control import stored_limits
    from raytuner._storage.control import LIMIT_OPTIONS

    held = {name: value for name, value in stored_limits(meta).items() if given.get(name) is None}
    return "; ".join(f"{name}={number_text(value)} (pass {name}= or {LIMIT_OPTIONS[name]} to change it)"
                     for name, value in held.items())
