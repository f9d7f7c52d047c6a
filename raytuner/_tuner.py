"""The Tuner: the user's entry point. Validates everything, then runs the controller."""

from __future__ import annotations

import datetime
import numbers
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from raytuner._best import SCOPES
from raytuner._callbacks import Callback
from raytuner._control_values import clean_command
from raytuner._driver import resources as _resources
from raytuner._driver.settings import ExperimentSettings
from raytuner._driver.resume import trainable_file, trainable_name
from raytuner._driver.resume_run import resume_experiment
from raytuner._driver.run import run_experiment
from raytuner._driver.stop import StopCriteria, StopFn
from raytuner._objectives import Objectives, normalize
from raytuner._results import Results
from raytuner._storage import DEFAULT_ROOT, remote
from raytuner._storage.components import setup_components
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.files import check_name
from raytuner._storage.lock import DriverLock
from raytuner._tuner_checks import (
    check_callbacks, check_checkpoint_interval, check_flag, check_picklable, check_resource_attr,
    check_storage_path, check_total_trials, check_trainable_call, check_unused, check_verbose, default_mode, mark_used,
    positive_int, probe_copy,
)
from raytuner.errors import ConfigError, ExperimentError, invalid
from raytuner.schedulers import FIFOScheduler, Scheduler
from raytuner.search import GridSearcher, RandomSearcher, Searcher, has_grid, space_to_json, validate_space
from raytuner.search._checks import check_seed


class Tuner:
    """Tune ``trainable`` over ``space`` on Ray.

    Args:
        trainable: ``fn(config)`` that trains and calls :func:`raytuner.report` (or uses
            :class:`raytuner.keras.ReportCallback`). Sent to workers with cloudpickle.
        space: The search space: a dict of domains (:func:`raytuner.loguniform`, ...),
            constants and nested dicts. Omit it if the searcher has its own. A trial gets
            its config as its config.json records it, in every run: tuples as lists, numpy
            scalars as numbers, paths as strings.
        metric: The reported metric to optimise; required by every scheduler but FIFO and
            by every searcher that learns (TPE). A list of metrics
            (``["val_loss", "params"]``) makes a multi-objective experiment: its result is
            the Pareto front (:meth:`Results.pareto_front`), every report must hold each of
            them, and only searchers and schedulers that take several objectives are
            accepted (see the README's "Several objectives").
        mode: "min" or "max"; with several metrics one mode per metric (a list), or one
            string for all of them. Default "min", with a warning for a metric whose name
            says it is to be maximised (``val_accuracy``, ``auc``, ``f1``...).
        num_trials: Trials to run (with a grid: repetitions of the whole grid, as in Ray Tune).
        max_concurrent: Trials at once; default: as many as the cluster can hold.
        searcher: Default :class:`search.TPESearcher` (:class:`search.GridSearcher` when
            the space has a ``grid``; :class:`search.RandomSearcher` when no ``metric`` is
            given, as there is nothing to learn from, and with PBT, which changes configs).
            A searcher serves one experiment: one that already ran (a Tuner's ``fit()``
            started with it) is refused, as it holds that experiment's trials; one given to
            a Tuner that was refused or never run is left as it was.
        scheduler: Default :class:`schedulers.FIFOScheduler`. One experiment each, as the
            searcher.
        resources: Per trial: ``{"cpu": 1, "gpu": 0.25, "memory": bytes, "<custom>": n}``;
            a custom name that is a near miss of a known one (``cpus``) is refused.
        stop: Per-trial stopping criteria: a dict of finite thresholds (``{"iteration": 20}``,
            ``{"val_accuracy": 0.99}``) or ``fn(trial_id, result) -> bool``. A report without
            a key is not checked against it (a metric may come every few epochs), but a
            trial that ends on its own without ever reporting a key (other than
            ``iteration`` and ``time_total_s``, which raytuner adds) fails with a
            :class:`raytuner.ReportError` naming it, which ends the experiment: a typo
            stops nothing. See :class:`raytuner._driver.stop.StopCriteria` (with several
            objectives, each threshold names one metric and is read in that metric's own mode).
        time_budget_s: Stop the experiment once its runs have taken this many seconds in
            all, at most 10 years (running trials end as STOPPED; results are kept). A resume
            goes on with what is left, as Ray Tune's does after a restore: the time between
            runs does not count (experiment.json's ``run_time_s``). It, ``num_trials`` and ``max_concurrent``
            are held to the bounds of ``raytuner control`` (:mod:`raytuner._control_values`).
        name: The experiment's folder name under ``storage_path``; default
            ``<script>_<date-time>`` for a trainable defined in a script run as ``python
            script.py`` (``keras_digits_20261205-143000``), else ``<trainable>_<date-time>``;
            ``_2``, ``_3``, ... is added if that folder is already taken.
        storage_path: Root folder of experiments; default ``~/raytuner_results``. A URI
            (``"s3://bucket/prefix"``, ``"gs://..."``, any fsspec file system) keeps the
            experiment in cloud storage: written locally and uploaded behind (a report
            within seconds, a checkpoint before its pause or end is recorded); checked here,
            before anything runs. Needs ``pip install 'raytuner[cloud]'``.
        resource_attr: A report key that holds the trial's resource (e.g. "epoch"); default:
            the scheduler's, else the number of reports.
        max_failures: Retries per trial (from its latest checkpoint) before it is FAILED.
        fail_fast: End the experiment at the first failed trial.
        callbacks: :class:`raytuner.Callback` objects (loggers).
        tensorboard: Log to ``<experiment>/tensorboard`` (scalars and HParams) when the
            tensorboard package is installed and no ``TensorBoardCallback`` was passed.
        verbose: 0 silent, 1 progress and summary, 2 also a line per finished trial.
        address: Ray cluster to join ("auto", "ray://host:10001"); default RAY_ADDRESS, else a
            local Ray started for you.
        seed: Seed of the default searcher; refused with ``searcher=`` (seed that one).
        best_scope: What "best" means for this experiment, in Results, the CLI, the report
            and the dashboard alike: "last" ranks trials by their last report (as Ray
            Tune does), "all" by the best report each made. NaN and infinite values never
            count, nor FAILED trials while another trial has a value.
        checkpoints_to_keep: Checkpoints kept per trial (newest first); None keeps all.
            A worker also starts at most one store of a trial's checkpoints per
            ``checkpoint_interval_s`` (one reported sooner after the last store started
            waits, with the reports behind it) and drops a reported checkpoint that this
            many newer ones overtake before its storing starts (the driver would delete it
            once they are stored): its row names no checkpoint, and a crash meanwhile
            restarts the trial from the newest checkpoint already stored, about an interval
            and one store behind at most. A trial checkpointing less often waits for
            nothing. The last checkpoint and one a scheduler decision waits on are stored at
            once. With None, nothing waits or is dropped, and at most two wait to be stored
            (training waits for a third).
        checkpoint_interval_s: With ``checkpoints_to_keep`` set, the least seconds between
            the starts of two stores of a trial's checkpoints; 0: a checkpoint is stored as
            soon as the one before it is (one overtaken meanwhile is still dropped).
            Default: adapted to what storing costs, so that it takes at most a fifth of a
            trial's time: 5 times the last store's duration, at least 1 s and at most 60 s
            (a store of under 0.2 s: once a second at most; an upload of 2 s: every 10 s;
            12 s or more: once a minute). A longer interval writes less and costs more
            training after a crash.
        gpu_memory_fraction: Cap each GPU trial's JAX/TensorFlow memory at this fraction of
            the card; default: allocate on demand.
        keep_workers_s: After ``fit``, idle workers stay warm this long for the next
            experiment of the same resource shape in this process (they hold their
            resources meanwhile; :func:`raytuner.release_workers` frees them at once).
            0 releases them when ``fit`` returns. A warm worker that imported a module
            whose file changed since it started (a helper module edited and reloaded, a
            package reinstalled) is replaced by a fresh one rather than run the old code.

    Example:
        >>> import raytuner as rt
        >>> def train(config):
        ...     for step in range(5):
        ...         rt.report({"loss": (config["x"] - 2) ** 2 / (step + 1)})
        >>> results = rt.Tuner(train, space={"x": rt.uniform(0, 4)}, metric="loss",
        ...                    num_trials=8, verbose=0).fit()  # doctest: +SKIP
        >>> results.best.config  # doctest: +SKIP
    """

    def __init__(
        self,
        trainable: Callable[[dict[str, Any]], Any],
        *,
        space: Mapping[str, Any] | None = None,
        metric: str | Sequence[str] | None = None,
        mode: str | Sequence[str] | None = None,
        num_trials: int = 1,
        max_concurrent: int | None = None,
        searcher: Searcher | None = None,
        scheduler: Scheduler | None = None,
        resources: Mapping[str, float] | None = None,
        stop: Mapping[str, float] | StopFn | None = None,
        time_budget_s: float | None = None,
        name: str | None = None,
        storage_path: str | os.PathLike[str] | None = None,
        resource_attr: str | None = None,
        max_failures: int = 0,
        fail_fast: bool = False,
        callbacks: Sequence[Callback] | None = (),
        tensorboard: bool = True,
        verbose: int = 1,
        address: str | None = None,
        seed: int | None = None,
        checkpoints_to_keep: int | None = 1,
        checkpoint_interval_s: float | None = None,
        best_scope: str = "last",
        gpu_memory_fraction: float | None = None,
        keep_workers_s: float = 30.0,
    ) -> None:
        if not callable(trainable):
            raise ConfigError(f"`trainable` must be a function fn(config); got {type(trainable).__name__} {trainable!r:.80}.")
        check_trainable_call("Tuner", trainable)
        if mode is None:
            mode = default_mode(metric)
        metric, mode = normalize(metric, mode)
        objectives = Objectives.of(metric, mode)
        stop_criteria = StopCriteria(stop, metric, mode)
        positive_int("num_trials", num_trials)
        positive_int("max_concurrent", max_concurrent, allow_none=True)
        positive_int("checkpoints_to_keep", checkpoints_to_keep, allow_none=True)
        check_checkpoint_interval(checkpoint_interval_s, checkpoints_to_keep)
        if isinstance(max_failures, bool) or not isinstance(max_failures, numbers.Integral) or max_failures < 0:
            raise invalid("Tuner", "max_failures", max_failures, "an int >= 0", "Pass 0 to fail a trial at its first error.")
        if time_budget_s is not None and (isinstance(time_budget_s, bool)
                                          or not isinstance(time_budget_s, numbers.Real)):
            raise invalid("Tuner", "time_budget_s", time_budget_s, "a number of seconds > 0, or None", "Pass e.g. time_budget_s=3600.")
        # The bounds a control command or a resume holds the limits to (raytuner control, the dashboard)
        # (as Python numbers: a numpy number or a Fraction is one to the Tuner)
        budget = time_budget_s if time_budget_s is None or isinstance(time_budget_s, (int, float)) else \
            float(time_budget_s)
        clean_command("set_limits", {"num_trials": int(num_trials), "time_budget_s": budget, "max_concurrent": (
            None if max_concurrent is None else int(max_concurrent))}, owner="Tuner")
        check_flag("Tuner", "fail_fast", fail_fast,
                    "Pass fail_fast=True to end the experiment at the first failed trial, or False.")
        check_flag("Tuner", "tensorboard", tensorboard, "Pass tensorboard=False not to log to TensorBoard.")
        if best_scope not in SCOPES:
            raise invalid("Tuner", "best_scope", best_scope, "'last' or 'all'",
                          "Pass 'last' to rank trials by their last report (as Ray Tune does) or 'all' by their best one.")
        self._best_scope = best_scope
        check_verbose("Tuner", verbose)
        if gpu_memory_fraction is not None and not (isinstance(gpu_memory_fraction, numbers.Real) and 0 < gpu_memory_fraction <= 1):
            raise invalid("Tuner", "gpu_memory_fraction", gpu_memory_fraction, "a number in (0, 1], or None",
                          "Pass e.g. 0.25 to cap each trial at a quarter of the card, or None to grow on demand.")
        if isinstance(keep_workers_s, bool) or not isinstance(keep_workers_s, numbers.Real) or keep_workers_s < 0:
            raise invalid("Tuner", "keep_workers_s", keep_workers_s, "a number of seconds >= 0", "Pass 0 to stop workers at once.")
        callbacks = check_callbacks("Tuner", callbacks)
        check_storage_path(storage_path)

        if space is not None:
            validate_space(space)
        given_scheduler = scheduler  # as `given` below
        scheduler = FIFOScheduler() if scheduler is None else scheduler
        if not isinstance(scheduler, Scheduler):
            raise ConfigError(f"`scheduler` must be a schedulers.Scheduler (e.g. ASHAScheduler(...)); got {type(scheduler).__name__}.")
        check_seed("Tuner", seed)
        given = searcher  # the user's, or None for the default, which only this Tuner holds
        check_unused("searcher", searcher, trainable_name(trainable))
        check_unused("scheduler", scheduler, trainable_name(trainable))
        if seed is not None and searcher is not None:
            kind = type(searcher).__name__
            raise ConfigError(
                f"`seed={seed!r}` seeds the default searcher, but `searcher=` is given ({kind}), so it would be "
                f"ignored. Seed the searcher itself, e.g. searcher={kind}(seed={seed!r}), and leave the Tuner's "
                "`seed` out.")
        if searcher is None:
            if space is None:
                raise ConfigError("No search space: pass `space=` (e.g. space={'lr': rt.loguniform(1e-4, 1e-1)}) or a searcher with its own.")
            # TPE needs a metric to learn from; without one there is nothing but random search,
            # and under PBT the searcher only draws the first population.
            if has_grid(space):
                searcher = GridSearcher(seed=seed)
            elif metric is None or scheduler.changes_configs:
                searcher = RandomSearcher(seed=seed)
            else:
                from raytuner.search import TPESearcher  # scipy: imported only when it is used

                searcher = TPESearcher(seed=seed)
        elif not isinstance(searcher, Searcher):
            raise ConfigError(f"`searcher` must be a search.Searcher (e.g. HyperOptSearcher()); got {type(searcher).__name__}.")
        elif space is not None and searcher.space is not None:
            raise ConfigError(
                f"Two search spaces: `space=` was given to the Tuner and {type(searcher).__name__} has its own. "
                "Give the space in one place."
            )
        if metric is None:
            if scheduler.needs_metric:
                raise ConfigError(f"{type(scheduler).__name__} needs a metric to compare trials: pass `metric=` to the Tuner.")
            if searcher.needs_metric:
                raise ConfigError(f"{type(searcher).__name__} learns from a metric: pass `metric=` to the Tuner.")
        scheduler_attr = getattr(scheduler, "resource_attr", None)
        if resource_attr is not None and scheduler_attr is not None and resource_attr != scheduler_attr:
            raise ConfigError(
                f"`resource_attr={resource_attr!r}` differs from {type(scheduler).__name__}'s "
                f"resource_attr={scheduler_attr!r}. Give it in one place."
            )
        check_resource_attr(resource_attr if resource_attr is not None else scheduler_attr, metric,
                            "Tuner" if resource_attr is not None else type(scheduler).__name__)
        # Set up on copies here, and for real when fit() starts, so that a Tuner refused or
        # never run leaves the user's searcher and scheduler as they were, free for another
        # Tuner. These raise before Ray starts: on a bad space, or a single-objective searcher
        # or scheduler given several objectives.
        probe = searcher if given is None else probe_copy(searcher)
        probe_scheduler = scheduler if given_scheduler is None else probe_copy(scheduler)
        setup_components(probe, space, num_trials, objectives, probe_scheduler)
        check_total_trials(probe, int(num_trials))
        probe_scheduler.check_experiment(space if space is not None else probe.space, probe, int(num_trials))
        # What fit() sets up still: the searcher and the scheduler that were copies here.
        self._setup = (space, int(num_trials), objectives, probe is not searcher, probe_scheduler is not scheduler)

        self._name = check_name(name) if name is not None else None
        self._trainable = trainable
        check_picklable(trainable)
        self._space = space if space is not None else searcher.space
        self._searcher = searcher
        self._scheduler = scheduler
        self._resources = _resources.normalize(resources)
        root = storage_path if storage_path is not None else DEFAULT_ROOT
        if remote.is_uri(root):
            remote.check(root)  # a missing bucket or credentials fail here, not after the first trial
            self._storage_root: str | Path = root.rstrip("/")
        else:
            self._storage_root = Path(remote.local_path(root)).expanduser()
            blocked = next((p for p in (self._storage_root, *self._storage_root.parents)
                            if p.exists() or p.is_symlink()), None)
            if blocked is not None and not blocked.is_dir():
                raise invalid("Tuner", "storage_path", str(root), "a folder (or where one can be made)",
                              f"{blocked} is a file, not a folder. Pass the folder experiments go in, e.g. "
                              f"storage_path={str(self._storage_root.parent)!r}.")
        self._settings = dict(
            metric=metric, mode=mode, num_trials=int(num_trials),
            stop=stop_criteria, time_budget_s=time_budget_s,
            resource_attr=resource_attr if resource_attr is not None else scheduler_attr,
            max_failures=int(max_failures), fail_fast=bool(fail_fast), checkpoints_to_keep=checkpoints_to_keep,
            checkpoint_interval_s=None if checkpoint_interval_s is None else float(checkpoint_interval_s),
            gpu_memory_fraction=gpu_memory_fraction, verbose=verbose, keep_workers_s=float(keep_workers_s),
        )
        self._max_concurrent = max_concurrent
        self._stop_repr = repr(stop) if stop is not None else None
        self._callbacks = list(callbacks)
        self._tensorboard = tensorboard
        self._address = address
        self._ran = False

    def fit(self) -> Results:
        """Run the experiment to its end and return its :class:`Results`.

        Starts a local Ray if none is running (or joins ``address``). A first Ctrl-C stops
        the running trials and returns what was computed; everything is already on disk.

        The experiment's folder is held by this driver while it runs (a second driver on it
        is refused: :class:`raytuner.ExperimentError`). If every trial fails, everything is
        saved, the experiment ends as FAILED and :class:`raytuner.errors.TrialsFailedError`
        is raised; when only some fail, ``fit`` returns and prints a summary of the errors.
        """
        if self._ran:
            raise ConfigError("This Tuner has already run; create a new Tuner for another experiment.")
        self._set_up()
        self._ran = True
        storage, lock = self._new_storage()  # held before Ray starts: a second driver is refused at once
        mark_used(self._searcher, storage.location)
        mark_used(self._scheduler, storage.location)
        try:
            try:
                return self._run(storage)
            except BaseException:
                if storage.discard_unstarted():  # it failed before recording anything: nothing is left
                    lock.release_and_remove()
                raise
            finally:
                lock.release()
        finally:
            storage.discard_stage()  # cloud storage: everything is in the bucket

    def _set_up(self) -> None:
        """The searcher and scheduler set up for this experiment, as a copy was when the
        Tuner was built; refused if another Tuner ran them since."""
        check_unused("searcher", self._searcher, trainable_name(self._trainable))
        check_unused("scheduler", self._scheduler, trainable_name(self._trainable))
        space, num_trials, objectives, searcher_left, scheduler_left = self._setup
        if searcher_left:
            with warnings.catch_warnings():  # said already, when its copy was set up
                warnings.simplefilter("ignore")
                setup_components(self._searcher, space, num_trials, objectives)
        if scheduler_left:
            self._scheduler.set_objectives(list(objectives.metrics) or 1)
        self._setup = (space, num_trials, objectives, False, False)

    def _run(self, storage: ExperimentStorage) -> Results:
        # max_concurrent is fixed once Ray is up: by default, what the cluster can hold.
        settings = ExperimentSettings(name=storage.name, resources=self._resources, max_concurrent=None,
                                      **self._settings)
        meta = {
            "name": storage.name,
            "metric": settings.metric,
            "mode": settings.mode,
            "num_trials": self._searcher.num_trials or settings.num_trials,  # trials in all (a grid's too)
            "max_concurrent": None,
            "resources": self._resources,
            "space": space_to_json(self._space) if self._space is not None else None,
            "searcher": type(self._searcher).__name__,
            "scheduler": repr(self._scheduler),
            "trainable": trainable_name(self._trainable),
            "trainable_file": trainable_file(self._trainable),
            "argv": [str(arg) for arg in sys.argv],  # what `raytuner resume` imports the script with
            "stop": self._stop_repr,
            "time_budget_s": settings.time_budget_s,
            "resource_attr": settings.resource_attr,
            "max_resource": self._scheduler.max_resource,
            "max_failures": settings.max_failures,
            "best_scope": self._best_scope,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        return run_experiment(storage, settings, meta, trainable=self._trainable, searcher=self._searcher,
                              scheduler=self._scheduler, callbacks=self._callbacks, tensorboard=self._tensorboard,
                              address=self._address, max_concurrent=self._max_concurrent)

    @staticmethod
    def resume(
        path: str | os.PathLike[str],
        trainable: Callable[..., Any] | None = None,
        *,
        num_trials: int | None = None,
        time_budget_s: float | None = None,
        max_concurrent: int | None = None,
        verbose: int | None = None,
        callbacks: Sequence[Callback] | None = (),
        address: str | None = None,
        tensorboard: bool = True,
        retry_failed: bool = False,
    ) -> Results:
        """Continue a stopped experiment (driver crash, Ctrl-C, time budget): runs it to its
        end now and returns its :class:`Results` (there is no ``.fit()`` to call after it).

        Also ``raytuner resume PATH``. Finished trials are kept; after a crash or a Ctrl-C,
        trials that were running restart from their latest checkpoint and paused trials wait
        for the scheduler, whose state is restored with the searcher's, so no config runs
        twice except those that were in flight. A time budget's end is a finish for the
        trials it met: those running or paused then are STOPPED, and a resume with a larger
        budget runs the trials that never started. Pass a larger ``num_trials`` to extend a
        finished experiment.

        Args:
            path: The experiment's folder, or its URI (``s3://bucket/prefix/<name>``).
            trainable: The same function as before; default: imported from the module (or
                script) recorded when the experiment started.
            num_trials, time_budget_s, max_concurrent, verbose, callbacks, address,
                tensorboard: As for the Tuner; everything else comes from the experiment.
                ``time_budget_s`` is the whole experiment's, its earlier runs included: one
                they used up leaves nothing to run, and the resume says so.
                Limits a control command set in an earlier run (``raytuner control``, the
                dashboard) hold again; the limits given here win, and are kept the same way.
            retry_failed: Run the FAILED trials again, each from its latest checkpoint (as
                ``raytuner control --retry-trial`` does during a run; Ray Tune's
                ``resume_errored``): for a cause outside the trial that is fixed now (a full
                disk, a missing mount, a module a node lacked). Each gets ``max_failures``
                retries again; the searcher and scheduler heard its end already and are not
                told of it again, so it runs to its own end.

        Before it starts, it prints what it keeps, restarts and leaves. An experiment with
        nothing left to run is answered from its folder, without starting Ray. A driver
        still running the experiment is refused (:class:`ExperimentError` naming it); one
        that died is detected and does not block.

        Resuming unpickles state saved in the folder: only resume experiments you trust.
        """
        if trainable is not None and not callable(trainable):
            raise invalid("Tuner.resume", "trainable", trainable, "the function the experiment ran, or None",
                          "Pass the function itself (not its name), or leave `trainable` out to import the one "
                          "the experiment recorded.")
        if trainable is not None:
            check_trainable_call("Tuner.resume", trainable)
        if verbose is not None:
            check_verbose("Tuner.resume", verbose)
        # Before anything is read: a resume with nothing to run checks them too.
        callbacks = check_callbacks("Tuner.resume", callbacks)
        check_flag("Tuner.resume", "tensorboard", tensorboard, "Pass tensorboard=False not to log to TensorBoard.")
        check_flag("Tuner.resume", "retry_failed", retry_failed, "Pass retry_failed=True to run the FAILED trials "
                   "again from their checkpoints.")
        limits = {"num_trials": num_trials, "time_budget_s": time_budget_s, "max_concurrent": max_concurrent}
        if any(value is not None for value in limits.values()):
            clean_command("set_limits", limits, owner="Tuner.resume")  # checked again, typed, when it is read
        storage = ExperimentStorage(path, writable=True)  # a URI: pulled into a fresh local folder
        try:
            return resume_experiment(storage, trainable, num_trials=num_trials, time_budget_s=time_budget_s,
                                     max_concurrent=max_concurrent, verbose=verbose, callbacks=callbacks,
                                     address=address, tensorboard=tensorboard, retry_failed=retry_failed)
        finally:
            storage.discard_stage()

    def _new_storage(self) -> tuple[ExperimentStorage, DriverLock]:
        """The new experiment's folder, created and held by this driver."""
        if self._name is not None:
            storage = ExperimentStorage(remote.join(self._storage_root, self._name), writable=True)
            lock = storage.acquire_driver_lock()  # names the driver if one is running it
            if storage.holds_files():
                lock.release()
                storage.discard_stage()
                raise ConfigError(
                    f"`name={self._name!r}`: {storage.location} already holds an experiment. Choose another name, "
                    f"load it with raytuner.load(), or continue it with raytuner.Tuner.resume({storage.location!r})."
                )
        else:
            base = str(remote.join(self._storage_root, f"{_default_name(self._trainable)}_"
                                   f"{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"))
            storage = ExperimentStorage(base, writable=True)
            suffix = 1
            while True:
                if not storage.holds_files():  # a URI: nothing under it when it was pulled
                    try:
                        lock = storage.acquire_driver_lock()
                    except ExperimentError:  # another driver took this name the same second
                        lock = None
                    if lock is not None and not storage.holds_files():
                        break
                    if lock is not None:
                        lock.release()
                storage.discard_stage()
                suffix += 1
                storage = ExperimentStorage(f"{base}_{suffix}", writable=True)
        storage.create()
        return storage, lock


def _default_name(trainable: Callable[..., Any]) -> str:
    """A script's experiments are named after the script (``keras_digits_<time>``), so that
    two examples that both call their function ``train`` can be told apart; otherwise
    after the trainable."""
    module = sys.modules.get(getattr(trainable, "__module__", ""))
    script = getattr(module, "__file__", None) if getattr(trainable, "__module__", None) == "__main__" else None
    base = Path(script).stem if script else getattr(trainable, "__name__", "experiment")
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", base).strip("_.") or "experiment"
