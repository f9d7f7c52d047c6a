"""One path that runs an experiment, new or resumed: ``Tuner.fit`` and ``Tuner.resume`` both
end in :func:`run_experiment`.

It starts (or joins) Ray, fixes how many trials run at once from what the cluster can hold,
adds the TensorBoard logger, asks an autoscaler for the trials' nodes, runs the controller
and sums the failures up. What differs between the two callers comes in as data: a new
experiment's description, or what a resume restored from the folder (:class:`Restored`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from raytuner._callbacks import Callback
from raytuner._driver import autoscale
from raytuner._driver import failures as _failures
from raytuner._driver.controller import Controller
from raytuner._driver.settings import ExperimentSettings
from raytuner._driver.ray_init import ensure_ray, flush_worker_logs, shutdown_before_exit
from raytuner._driver.resume import Restored
from raytuner._results import Results
from raytuner._storage import components
from raytuner._storage.experiment import ExperimentStorage
from raytuner._worker.scratch import sweep_this_node
from raytuner.schedulers import Scheduler
from raytuner.search import Searcher
from raytuner.tracking._recorded import recorded


def default_callbacks(callbacks: Sequence[Callback], tensorboard: bool) -> list[Callback]:
    """``callbacks``, with a :class:`TensorBoardCallback` logging into the experiment's
    ``tensorboard`` folder when ``tensorboard`` is set and none was passed."""
    callbacks = list(callbacks)
    if tensorboard:
        from raytuner.tracking import tensorboard as tb

        if not tb.available():
            logging.getLogger("raytuner").warning(tb.SKIPPED)  # else `tensorboard --logdir` finds nothing
        elif not any(isinstance(c, tb.TensorBoardCallback) for c in callbacks):
            callbacks.append(tb.TensorBoardCallback())
    return callbacks


def run_experiment(
    storage: ExperimentStorage,
    settings: ExperimentSettings,
    meta: dict[str, Any],
    *,
    trainable: Callable[..., Any],
    searcher: Searcher,
    scheduler: Scheduler,
    callbacks: Sequence[Callback] = (),
    tensorboard: bool = True,
    address: str | None = None,
    max_concurrent: int | None = None,
    restored: Restored | None = None,
    retry: Sequence[str] = (),
) -> Results:
    """Run the experiment held in ``storage`` to its end; its :class:`Results`.

    Args:
        storage: The experiment's folder, already held by this driver (its lock).
        settings: The experiment's settings; ``max_concurrent`` in them is what an earlier
            run used (None for a new experiment).
        meta: What experiment.json records; a new experiment's is completed here.
        trainable, searcher, scheduler: The searcher and scheduler set up (and restored).
        callbacks, tensorboard: The user's callbacks; whether to add the TensorBoard one.
        address: The Ray cluster to join; default RAY_ADDRESS, else a local Ray.
        max_concurrent: Trials at once, as asked now. Default: what an earlier run used,
            as far as the cluster can hold it; else as many as the cluster can hold.
        restored: The trials and bookkeeping of a resumed experiment; None for a new one.
        retry: FAILED trials of a resumed experiment to run again (``retry_failed``).
    """
    import ray

    # Who runs the experiment now (the driver lock's run): commands and workers tell this
    # run from an earlier one.
    meta["run_id"] = storage.run_id
    sweep_this_node()  # what workers killed by an earlier run on this node left in its temporary folder
    ensure_ray(address)
    slots = autoscale.max_concurrency(settings.resources)
    earlier = settings.max_concurrent
    settings.max_concurrent = max_concurrent or (min(earlier, slots) if earlier else slots)
    meta["max_concurrent"] = settings.max_concurrent  # the limit in force, as the views show it
    # What this run logs to: a resume (the CLI's passes none) rebuilds or names them.
    meta["callbacks"] = recorded(callbacks)
    if restored is None:
        # What resume rebuilds the searcher and scheduler from: their configs (in the
        # experiment.json), and a pickle of what cannot be described.
        meta.update(components.save(storage, settings, searcher, scheduler))
    controller = Controller(
        settings,
        trainable_ref=ray.put(trainable),
        searcher=searcher,
        scheduler=scheduler,
        storage=storage,
        callbacks=default_callbacks(callbacks, tensorboard),
        meta=meta,
        trials=restored.trials if restored is not None else None,
        next_id=restored.next_id if restored is not None else 0,
        exploits=restored.exploits if restored is not None else None,
        capacity=slots,
    )
    if restored is not None:
        controller.reconcile(restored.next_id, restored.closed, restored.since, restored.undecided,
                             restored.decided)
    controller.retry(retry)
    # On an autoscaling cluster: ask for the nodes these trials need (they may all be down).
    nodes = autoscale.request_nodes(settings.resources, min(settings.max_concurrent, settings.num_trials))
    try:
        try:
            results = controller.run()
        finally:
            if nodes is not None:
                nodes.release()
    except SystemExit:  # SIGTERM: wound up, resumable; the exit goes on
        shutdown_before_exit()
        raise
    flush_worker_logs()
    return _failures.finish(results, storage, verbose=settings.verbose)
