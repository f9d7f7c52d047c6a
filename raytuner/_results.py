"""Results of an experiment: the best trial, every trial, a DataFrame, per-trial history."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from raytuner._best import SCOPES, FrontMember, best_trial, pareto_front, scope_of
from raytuner._formats import flatten
from raytuner._display import resume_call
from raytuner._objectives import MODES, Objectives
from raytuner._storage import lineage, trajectory
from raytuner._storage.history import RESULTS_FILE, Damage, read_history
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.records import config_fault, read_record, trial_fault
from raytuner._storage.remote import URI
from raytuner._trial import Trial, TrialResult, TrialStatus
from raytuner.errors import ConfigError, ExperimentError, invalid
from raytuner.search import Outcome, TrialEnd

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("raytuner")


class Results:
    """What :meth:`raytuner.Tuner.fit` and :func:`raytuner.load` return.

    Attributes:
        path: The experiment's folder; for an experiment in cloud storage its URI (a
            ``str``, ``s3://bucket/prefix/exp``, with ``.name`` and ``/`` as a path has).
        metric, mode: What "best" means: as the Tuner was given them (lists with several
            objectives, whose result is :meth:`pareto_front`).
        trials: Every trial, in id order.
        damaged: Where and how the experiment's experiment.json is damaged (then
            ``status`` is DAMAGED and ``meta`` holds only its usable fields), or None.
    """

    def __init__(self, path: Path | str, trials: Sequence[TrialResult], metric: str | list[str] | None,
                 mode: str | list[str], meta: Mapping[str, Any] | None = None, *, status: str | None = None,
                 damaged: str | None = None):
        self.path = path if isinstance(path, URI) else Path(path)
        self.trials = list(trials)
        self.metric = metric
        self.mode = mode
        self.objectives = Objectives.of(metric, mode)
        self.meta = dict(meta or {})
        self.damaged = damaged
        self._status = status
        self._by_id = {t.trial_id: t for t in self.trials}

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        return f"<Results {self.path.name!r}: {len(self.trials)} trials ({summary})>"

    def __len__(self) -> int:
        return len(self.trials)

    def __getattr__(self, name: str) -> Any:
        if name == "fit":  # rt.Tuner.resume(...).fit(): resume has already run the experiment
            raise AttributeError(
                "'Results' has no attribute 'fit': raytuner.Tuner.resume() runs the experiment at once and "
                "returns its Results, so there is nothing left to fit. Use the Results it returned."
            )
        raise AttributeError(f"'Results' object has no attribute {name!r}")

    def __getitem__(self, trial_id: str) -> TrialResult:
        return self._by_id[trial_id]

    @property
    def status(self) -> str:
        """Where the experiment stands: RUNNING, COMPLETED, TIMED_OUT, FAILED, INTERRUPTED
        (stopped by Ctrl-C, a full disk, or a driver that died without saying so), or
        DAMAGED (its experiment.json: see ``damaged``)."""
        if self.damaged:
            return TrialStatus.DAMAGED.value
        return self._status or str(self.meta.get("status", "?"))

    @property
    def best(self) -> TrialResult:
        """The trial with the best last reported value of the Tuner's metric.

        A multi-objective experiment has no one best trial: this raises ConfigError
        pointing to :meth:`pareto_front` (or ``get_best(metric=...)`` for one objective).
        """
        return self.get_best()

    def get_best(self, metric: str | None = None, mode: str | None = None, scope: str | None = None) -> TrialResult:
        """The best trial by ``metric`` (default: the Tuner's), by the one rule every view
        uses (:func:`raytuner._best.best_trial`).

        Args:
            metric: A reported metric; defaults to the Tuner's.
            mode: "min" or "max"; defaults to the Tuner's.
            scope: "last" compares each trial's last report (as Ray Tune does); "all"
                compares each trial's best report (of any metric: the Tuner's by each
                trial's recorded best value, another by its kept reports).
                Default: the experiment's ``best_scope`` (the Tuner's argument, "last"
                unless set), which the CLI, the report and the dashboard use too.

        NaN and infinite values are never chosen; a FAILED trial only when no other trial
        has a finite value.
        """
        if metric is None and self.objectives.multi:
            raise ConfigError(
                f"{self.path.name!r} has {self.objectives.k} objectives (metric={self.metric!r}), so no one trial "
                "is best: results.pareto_front() lists the trials no other beats in every objective. To rank by "
                f"one objective alone, pass it: results.get_best(metric={self.objectives.metrics[0]!r})."
            )
        if metric is not None and mode is None and self.objectives.multi:
            mode = self.objectives.mode_of(metric)
            if mode is None:
                raise invalid("Results.get_best", "mode", None, "'min' or 'max' for a metric that is not an objective",
                              f"Pass mode='min' or mode='max' to rank by {metric!r}.")
        metric = metric or self.metric
        mode = mode or self.mode
        scope = scope or self.scope
        if metric is None and self.damaged:
            raise ConfigError(f"No metric to rank trials by: {self.damaged}, so the experiment's metric is unknown. "
                              "Pass metric= (and mode=) to get_best(), or repair that file.")
        if metric is None:
            raise ConfigError("No metric to rank trials by: pass `metric=` to the Tuner or to get_best().")
        if mode not in ("min", "max"):
            raise invalid("Results.get_best", "mode", mode, "'min' or 'max'", "Pass mode='min' or mode='max'.")
        if scope not in SCOPES:
            raise invalid("Results.get_best", "scope", scope, "'last' or 'all'",
                          "Pass scope='last' (each trial's last report) or 'all' (any report).")
        best = best_trial(self.trials, metric, mode, scope, **self._ranking(metric, mode))
        if best is None:
            failed = sum(t.status == TrialStatus.FAILED for t in self.trials)
            if failed and failed == len(self.trials):
                why = f"every trial failed ({failed}); their tracebacks are in `.errors`"
            elif failed:
                why = f"{failed} of {len(self.trials)} trials failed (see `.errors`), the others never reported it"
            elif not any(t.iteration or t.metrics for t in self.trials):
                why = self._none_reported()
            else:
                why = f"{len(self.trials)} trials; check the metric's name and the trials' reports"
            raise ExperimentError(f"No trial of {self.path.name!r} reported a finite {metric!r}: {why}.")
        return best

    def _none_reported(self) -> str:
        """Why there is no best when no trial has reported anything: they have not yet (and
        whether a driver runs them), or they ended without a report."""
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        n = len(self.trials)
        statuses = ", ".join(f"{counts[s.value]} {s.value.lower()}" for s in TrialStatus if s.value in counts)
        waiting = (TrialStatus.PENDING, TrialStatus.RUNNING, TrialStatus.PAUSED)
        if any(t.status in waiting for t in self.trials):
            later = ("ask again once one has" if self.status == "RUNNING" else
                     f"its driver is not running ({self.status}): {resume_call(self.path, self.meta.get('trainable'))} "
                     "continues it")
            return f"none of its {n} trial{'s' if n != 1 else ''} has reported yet ({statuses}); {later}"
        return f"none of its {n} trial{'s' if n != 1 else ''} reported anything ({statuses})"

    def pareto_front(self) -> list[TrialResult]:
        """The trials of a multi-objective experiment that no other trial dominates (is at
        least as good in every objective and better in one), best first in the Pareto
        order: the trial that adds the most hypervolume first (:mod:`raytuner._pareto`).

        "Values" follow the experiment's ``best_scope``, as :meth:`get_best` does: with
        "last" (the default) each trial's last report; with "all" every report of every
        trial, and a trial is on the front when one of its reports is. NaN and infinite
        values never count, nor FAILED trials while another has finite values.

        Each trial's ``metrics`` is the report that put it on the front, as ``raytuner
        best``, ``show``, the report and the dashboard show it: under "last" its last
        report (as everywhere else), under "all" that report, which need not be its last
        (the trial's other fields, ``iteration`` among them, are the trial's own).

        Raises:
            ConfigError: The experiment has one objective (use :attr:`best`).
            ExperimentError: No trial reported a finite value of every objective.
        """
        if not self.objectives.multi:
            raise ConfigError(
                f"{self.path.name!r} has {'one objective' if self.metric else 'no metric'} "
                f"(metric={self.metric!r}); pareto_front() is for experiments with several "
                "(metric=['val_loss', 'params']). Use results.best."
            )
        front = self._front()
        if not front:
            raise ExperimentError(
                f"No trial of {self.path.name!r} reported a finite value of every objective "
                f"({', '.join(self.objectives.metrics)}) in its {'reports' if self.scope == 'all' else 'last report'} "
                f"({len(self.trials)} trials; see `.errors` for failures)."
            )
        return [dataclasses.replace(member.trial, metrics=member.metrics) for member in front]

    def _front(self) -> list[FrontMember[TrialResult]]:
        """The front with the values that put each trial on it (the CLI, the report)."""
        return pareto_front(self.trials, self.objectives, self.scope, reports=self._reports)

    def _reports(self, trial: TrialResult) -> list[dict[str, Any]]:
        """The trial's kept report rows ([] when its history is damaged: it cannot be trusted)."""
        history = self._storage().read_history(trial.trial_id)
        return [] if history.damaged else history.rows

    def _ranking(self, metric: str, mode: str) -> dict[str, Any]:
        """How :func:`raytuner._best.best_trial` ranks ``metric`` in ``mode`` under scope
        "all" (get_best, ``raytuner best --metric``, show, the report): the Tuner's one
        metric by each trial's ``best_value``; any other (an objective of several, another
        reported metric), which has none, by each trial's best kept report."""
        if metric == self.metric and mode == self.mode:
            return {"own_metric": True}
        return {"own_metric": False, "reports": self._reports}

    @property
    def scope(self) -> str:
        """How "best" is meant in this experiment: "last" or "all" (see :meth:`get_best`)."""
        return scope_of(self.meta)

    @property
    def errors(self) -> dict[str, str]:
        """Tracebacks of failed (or retried) trials, by trial id."""
        return {t.trial_id: t.error for t in self.trials if t.error}

    def dataframe(self) -> pd.DataFrame:
        """One row per trial: status, reports, time, last metrics (every objective among
        them), best value (with several objectives: ``pareto_front``, whether the trial is
        on it), ``config/...`` (and ``damaged``, the file and the fault, when a trial is
        DAMAGED)."""
        import pandas as pd

        rows = []
        multi = self.objectives.multi
        best_col = f"best_{self.metric}" if self.metric and not multi else None
        sign = 1.0 if self.mode == "min" else -1.0
        front = {m.trial.trial_id for m in self._front()} if multi else set()
        for trial in self.trials:
            row: dict[str, Any] = {
                "trial_id": trial.trial_id,
                "status": trial.status.value,
                "iteration": trial.iteration,
                "time_total_s": trial.time_total_s,
            }
            if trial.damaged:
                row["damaged"] = trial.damaged  # which file, and what is wrong with it
            row.update(trial.metrics)
            if best_col:
                row[best_col] = None if trial.best_value is None else sign * trial.best_value
            if multi:
                row["pareto_front"] = trial.trial_id in front
            row.update(flatten(trial.config, "config/"))
            rows.append(row)
        return pd.DataFrame(rows)

    def history(self, trial_id: str) -> pd.DataFrame:
        """Every report of one trial's trajectory, one row each, iterations 1..n in order.

        A trial that restarted from a checkpoint at iteration k (or from scratch, k = 0)
        continued from there: the rows its lost attempt wrote after k are superseded, kept
        in results.jsonl for audit but not shown here. The ``attempt`` column says which
        run of the trial made each row; ``checkpoint`` names the checkpoint a row commits.
        ``config/<name>`` columns hold the config in effect at each row: under PBT it
        changes where the trial exploited another, and ``cloned_from``/``cloned_iteration``
        then name the trial and report it restarted from (see :meth:`schedule`).
        """
        import pandas as pd

        storage = self._trial_storage(trial_id)
        history = storage.read_history(trial_id)
        history.raise_if_damaged()
        # A damaged config.json leaves the rows readable: their config columns then come
        # from the attempt markers only (what an exploit set).
        first, damage = read_record(storage.trial_path(trial_id) / "config.json", config_fault)
        return pd.DataFrame(lineage.annotate(history, first if damage is None and first is not None else {}))

    def log(self, trial_id: str) -> str:
        """What one trial printed: its stdout and stderr, its children's and its C code's
        (``trials/<id>/log.txt``; ``raytuner logs EXP ID`` on the command line). A trial's
        output goes there, not to the driver's console or notebook cell, so that trials
        running at once do not mix their lines."""
        text, _ = self._trial_storage(trial_id).read_log(trial_id)
        return text

    def schedule(self, trial_id: str) -> pd.DataFrame:
        """The config schedule that trained one trial's model, one row per change.

        Columns: ``resource`` and ``iteration`` (the report from which the config applies;
        0 for the first), ``trial_id`` (whose run trained that stretch: under PBT the
        schedule follows the trial back through the trials it cloned, each up to the
        report it was cloned at) and ``config/<name>``. A trial that never exploited has
        one row. Replay it from scratch with ``rt.PBTReplay(results.path, trial_id)``.
        """
        import pandas as pd

        segments = lineage.for_experiment(self._trial_storage(trial_id)).schedule(trial_id)
        return pd.DataFrame([{"resource": s.resource, "iteration": s.start, "trial_id": s.trial_id,
                              **flatten(s.config, "config/")} for s in segments])

    def _trial_storage(self, trial_id: str) -> ExperimentStorage:
        if trial_id not in self._by_id:
            raise KeyError(f"No trial {trial_id!r} in {self.path.name!r}; trials are {sorted(self._by_id)[:10]}...")
        return self._storage()

    def _storage(self) -> ExperimentStorage:
        """The experiment's files as a reader sees them (for a URI, a local cache of them)."""
        storage = self.__dict__.get("_reader")
        if storage is None:
            storage = self.__dict__["_reader"] = ExperimentStorage(self.path)
        return storage

    def observations(self) -> list[tuple[dict[str, Any], Outcome]]:
        """Each finished trial's config and how it ended, to continue or fork a search.

        Pass them to a searcher that learns from past trials::

            HyperOptSearcher(warm_start=rt.load(path).observations())

        Values are the Tuner's metric signed to minimize, as searchers see them, so the new
        experiment must optimise the same metric. A STOPPED trial keeps the resource it
        reached and the scheduler's ``max_resource`` (``inf`` if the experiment did not
        record one), so the searcher still knows a low-fidelity value from a final one.
        Pending, running and paused trials are left out: their result is not known yet.
        """
        ends = {TrialStatus.COMPLETED: TrialEnd.COMPLETED, TrialStatus.STOPPED: TrialEnd.STOPPED,
                TrialStatus.FAILED: TrialEnd.FAILED}
        max_resource = self.meta.get("max_resource")
        max_resource = math.inf if max_resource is None else float(max_resource)
        return [
            (dict(t.config), Outcome(ends[t.status], t.last_value, t.resource, max_resource))
            for t in self.trials
            if t.status in ends
        ]

    def report(self, path: str | os.PathLike[str] | None = None, *, metric: str | None = None,
               mode: str | None = None) -> Path:
        """Write a self-contained HTML report with interactive plots (needs plotly).

        Args:
            path: The .html file (or a folder for ``report.html``); default
                ``<experiment>/report.html`` (for cloud storage, in its local read cache).
            metric, mode: What to plot and rank by; default the Tuner's.

        Returns:
            The path written.
        """
        from raytuner._report import write_report

        return write_report(self, self._storage().path / "report.html" if path is None else path, metric=metric,
                            mode=mode)


def load(path: str | os.PathLike[str]) -> Results:
    """Read the results of a finished or running experiment from its folder (or URI).

    Reading changes nothing in the folder and runs no code from it. A damaged file marks
    its trial (or, for experiment.json, the experiment) DAMAGED, naming the file and the
    fault, and leaves the rest readable.
    """
    return read(ExperimentStorage(path))


def read(storage: ExperimentStorage) -> Results:
    """The :class:`Results` of the experiment in ``storage``, as :func:`load` reads them."""
    meta, damage = storage.read_experiment_record()
    objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min"))
    live = storage.live_driver() is not None
    trials = [read_trial(storage, trial_id, objectives=objectives, live=live) for trial_id in storage.trial_ids()]
    status = meta.get("status")
    if status == "RUNNING" and not live:
        status = "INTERRUPTED"  # its driver stopped without saying so: a crash, a kill, a full disk
    metric = meta.get("metric")
    mode = meta.get("mode", "min")
    if not (mode in MODES or isinstance(mode, list) and mode and all(m in MODES for m in mode)):
        mode = "min"  # (a damaged record's): the metric is still shown, ranked as "min"
    return Results(storage.shown(), trials, metric, mode, meta, status=status,
                   damaged=None if damage is None else _described(storage, damage))


def read_trial(storage: ExperimentStorage, trial_id: str, *, history: bool = True,
               objectives: Objectives | None = None, live: bool | None = None) -> TrialResult:
    """One trial as its folder holds it. ``history``: read its results.jsonl too, to find
    damage before its last line and to show the trial as every reader does
    (:func:`raytuner._storage.trajectory.catch_up`): a record that lags behind it (a
    running trial's, or one whose driver died) brought up to its kept reports, and one
    left RUNNING by a driver that is gone shown PENDING. The CLI's listing of many
    experiments leaves it out for finished trials. ``objectives``: the experiment's, which
    sign the values caught up (default: read from its experiment.json). ``live``: whether
    a driver holds the experiment now (default: asked of its lock)."""
    if history and objectives is None:
        meta = storage.read_experiment_record()[0]
        objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min"))
    if history and live is None:
        live = storage.live_driver() is not None
    path = storage.trial_path(trial_id)
    record, damage = read_record(path / "trial.json", lambda value: trial_fault(value, trial_id))
    config, config_damage = read_record(path / "config.json", config_fault)
    if config is None and config_damage is None:
        config_damage = Damage(path / "config.json", None, "missing")
    damage = damage or config_damage
    folded = read_history(path / RESULTS_FILE) if history else None
    if folded is not None:
        damage = damage or folded.damaged
    error = storage.read_error(trial_id)
    if damage is not None:
        usable = dict(record) if isinstance(record, dict) and damage.path.name != "trial.json" else {}
        trial = Trial.from_record({**usable, "trial_id": trial_id, "status": "PENDING"},
                                  config if isinstance(config, dict) else {}, error)
        trial.status = TrialStatus.DAMAGED
        result = TrialResult.from_trial(trial, storage.trial_shown(trial_id), path if storage.uri is None else None)
        return dataclasses.replace(result, damaged=_described(storage, damage))
    trial = Trial.from_record(record, config, error)
    if folded is not None:  # trial.json may lag behind its reports, or its driver be gone
        trajectory.catch_up(trial, folded, objectives, lambda: storage.checkpoint_folders(trial_id), live=bool(live))
    result = TrialResult.from_trial(trial, storage.trial_shown(trial_id), path if storage.uri is None else None)
    if storage.uri is not None and trial.checkpoint and trial.checkpoint not in storage.checkpoint_folders(trial_id):
        result = dataclasses.replace(result, checkpoint=None)  # a bucket's: as its listing has them
    if trial.checkpoint and result.checkpoint is None and trial.status.is_finished():
        # (A running trial's record may name one pruned since: only a finished one's is news.)
        logger.warning("Trial %s: its checkpoint %s is gone from %s (deleted by hand?); it has none now.",
                       trial_id, trial.checkpoint, storage.trial_shown(trial_id))
    return result


def _described(storage: ExperimentStorage, damage: Damage) -> str:
    """Where and what, naming the file as users see it (its URI for cloud storage)."""
    text = damage.describe()
    return text.replace(str(storage.path), storage.location, 1) if storage.uri is not None else text
