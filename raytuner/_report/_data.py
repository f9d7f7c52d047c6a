"""What the report draws, read from :class:`raytuner.Results`: plain lists, no plotting.

Everything here comes from the experiment folder; nothing in it is executed. The
scheduler's rungs are the ``milestones`` it described in experiment.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from raytuner._best import DEFAULT_SCOPE, FrontMember, Reports, best_trial, pareto_front, scope_of, shown_value
from raytuner._display import label
from raytuner._formats import flatten, is_finite
from raytuner._objectives import Objectives
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import TrialResult, TrialStatus
from raytuner.errors import ExperimentError

_LOG_TYPES = frozenset({"loguniform", "qloguniform"})


class Results(Protocol):
    """What the report reads of :class:`raytuner.Results` (named by what it reads: that
    class imports this package, for ``Results.report``)."""

    path: Path
    trials: Sequence[TrialResult]
    metric: str | list[str] | None
    mode: str | list[str]
    meta: dict[str, Any]
    objectives: Objectives
    scope: str


@dataclass
class Param:
    """One (flattened) hyperparameter across the trials that reported the metric."""

    name: str
    values: list[Any]
    numeric: bool
    log: bool

    @property
    def categories(self) -> list[str]:
        """Distinct values as labels, in first-seen order (for categorical axes)."""
        return list(dict.fromkeys(label(v) for v in self.values))


@dataclass
class Schedule:
    """The scheduler's decision points, from its milestones."""

    name: str
    rungs: list[float] = field(default_factory=list)
    pauses: bool = False  # trials PAUSE at each rung (promotion ASHA, Hyperband)


@dataclass
class ReportData:
    results: Results
    metric: str
    mode: str
    scored: list[TrialResult]  # trials with a finite last value of the metric, in id order (none DAMAGED)
    values: list[float]  # their last values, raw (not signed)
    params: list[Param]
    histories: dict[str, list[dict[str, Any]]]
    x_key: str  # "resource" when the Tuner had a resource_attr, else "iteration"
    schedule: Schedule
    best: TrialResult | None = None  # by the one rule of raytuner._best, in the experiment's scope
    scope: str = DEFAULT_SCOPE  # what "best" means here (experiment.json's best_scope)
    #: How ``metric`` is ranked under scope "all" (:meth:`raytuner.Results._ranking`): the
    #: Tuner's one metric by each trial's best_value; any other by its best kept report
    #: (``reports``).
    own_metric: bool = True
    reports: Reports | None = None
    #: With several objectives: the Pareto front by the experiment's best_scope, in the
    #: Pareto order (the single-metric figures draw ``metric``, one of the objectives).
    front: list[FrontMember[TrialResult]] = field(default_factory=list)

    def shown(self, trial: TrialResult) -> float | None:
        """The value ``trial`` is ranked by (:func:`raytuner._best.shown_value`), or None."""
        return shown_value(trial, self.metric, self.mode, self.scope, self.own_metric, reports=self.reports)

    @property
    def sign(self) -> float:
        return 1.0 if self.mode == "min" else -1.0


def _log_params(space: Any, prefix: str = "") -> set[str]:
    """Flattened names of the log-scaled domains in the space's JSON description."""
    found: set[str] = set()
    if isinstance(space, Mapping):
        for key, entry in space.items():
            if isinstance(entry, Mapping) and isinstance(entry.get("type"), str):
                if entry["type"] in _LOG_TYPES:
                    found.add(f"{prefix}{key}")
            elif isinstance(entry, Mapping):
                found |= _log_params(entry, f"{prefix}{key}/")
    return found


def _is_number(value: Any) -> bool:
    return is_finite(value)


def schedule_from_meta(meta: Mapping[str, Any]) -> Schedule:
    """The scheduler's rungs as its ``milestones()`` put them in experiment.json.

    Read as data, checked, never executed. An experiment without milestones (none
    recorded, or damaged) is drawn without rungs.
    """
    config = meta.get("scheduler_config")
    name = config.get("type", "") if isinstance(config, Mapping) else str(meta.get("scheduler") or "")
    milestones = meta.get("milestones")
    if not isinstance(milestones, Mapping):
        return Schedule(name)
    levels = milestones.get("levels")
    if not isinstance(levels, list) or not all(_is_number(level) for level in levels):
        return Schedule(name)
    return Schedule(name, sorted(levels), pauses=milestones.get("pauses") is True)


def collect(results: Results, metric: str | None = None, mode: str | None = None) -> ReportData:
    """Gather the report's data; raises ExperimentError when there is nothing to plot.

    With several objectives the figures of one metric draw ``metric`` (default: the first
    objective, in its own mode) and the Pareto figures draw them all."""
    objectives = results.objectives
    if objectives.multi:
        metric = metric or objectives.metrics[0]
        mode = mode or objectives.mode_of(metric) or "min"
    metric = metric or results.metric
    mode = mode or results.mode
    name = results.path.name
    if not results.trials:
        raise ExperimentError(f"Experiment {name!r} has no trials yet: there is nothing to report.")
    if metric is None:
        raise ExperimentError(f"Experiment {name!r} has no metric: pass one (`--metric NAME`) to rank trials by.")
    if not isinstance(metric, str):  # several objectives (or a hand-edited experiment.json)
        raise ExperimentError(f"Experiment {name!r} has the metrics {metric!r}: the report draws one; pass it "
                              "(`--metric NAME`, or metric= to Results.report).")
    scored = [t for t in results.trials if _is_number(t.metrics.get(metric)) and t.status != TrialStatus.DAMAGED]
    if not scored:
        reported = sorted({key for t in results.trials for key in t.metrics})
        if metric in reported:  # reported, never finite: another name would not help
            raise ExperimentError(f"No trial of {name!r} has a finite {metric!r} ({len(results.trials)} trials; each "
                                  "one's is NaN or infinite, or it failed): there is nothing to draw.")
        raise ExperimentError(
            f"No trial of {name!r} reported a finite {metric!r} ({len(results.trials)} trials; "
            f"metrics reported: {reported or 'none'}). Pass one of those (`--metric NAME`, or metric= to "
            "Results.report)."
        )
    storage = ExperimentStorage(results.path)
    # A damaged trial's history cannot be trusted: it is listed, never drawn.
    histories = {t.trial_id: storage.read_results(t.trial_id) for t in results.trials
                 if t.status != TrialStatus.DAMAGED}
    ranking = results._ranking(metric, mode)
    own = ranking["own_metric"]
    reports = (lambda t: histories.get(t.trial_id, [])) if "reports" in ranking else None
    scope = scope_of(results.meta) if own or reports is not None else DEFAULT_SCOPE
    x_key = "resource" if any("resource" in row for rows in histories.values() for row in rows) else "iteration"
    log_names = _log_params(results.meta.get("space"))
    configs = [flatten(t.config) for t in scored]
    names = list(dict.fromkeys(key for config in configs for key in config))
    params = []
    for pname in names:
        values = [config.get(pname) for config in configs]
        if len({label(v) for v in values}) < 2:
            continue  # a constant tells nothing about the metric
        numeric = all(_is_number(v) for v in values)
        log = numeric and pname in log_names and all(v > 0 for v in values)
        params.append(Param(pname, values, numeric, log))
    return ReportData(
        results=results,
        metric=metric,
        mode=mode,
        scored=scored,
        values=[float(t.metrics[metric]) for t in scored],
        params=params,
        histories=histories,
        x_key=x_key,
        schedule=schedule_from_meta(results.meta),
        best=best_trial(results.trials, metric, mode, scope, own_metric=own, reports=reports),
        scope=scope,
        own_metric=own,
        reports=reports,
        front=pareto_front(results.trials, objectives, results.scope,
                           reports=lambda t: histories.get(t.trial_id, [])) if objectives.multi else [],
    )


def end_marks(data: ReportData, trial: TrialResult) -> list[tuple[float, float, str]]:
    """Points of a trial's learning curve where the scheduler acted: (x, y, what).

    A STOPPED or FAILED trial is marked at its last report. Pauses are not stored per
    report; under a pausing scheduler (promotion ASHA, Hyperband) a trial that reported at
    a rung and went on past it was paused there and later promoted, so those points are
    marked "paused, resumed".
    """
    rows = [r for r in data.histories.get(trial.trial_id, []) if _is_number(r.get(data.metric))]
    if not rows:
        return []
    marks = []
    if data.schedule.pauses and data.schedule.rungs:
        xs = [r.get(data.x_key) for r in rows]
        for level in data.schedule.rungs:
            hit = next((i for i, x in enumerate(xs) if _is_number(x) and x >= level), None)
            if hit is not None and hit < len(rows) - 1:
                marks.append((xs[hit], rows[hit][data.metric], "paused, resumed"))
    last = rows[-1]
    if trial.status in (TrialStatus.STOPPED, TrialStatus.FAILED, TrialStatus.PAUSED):
        marks.append((last.get(data.x_key), last[data.metric], trial.status.value.lower()))
    return marks


def best_so_far(data: ReportData) -> list[tuple[str, float]]:
    """The history figure's "best so far": trial by trial in id order, the value that
    :func:`raytuner._best.best_trial` would rank best among the trials up to there, as
    :func:`raytuner._best.shown_value` has it (its last report, or its best under
    ``best_scope="all"``). FAILED trials are left out, as they are never best while another
    trial has a value (if none has, they count, as for the headline). (trial id, value)
    for each trial from the first with a value on; its end is the headline's best."""
    return running_best(data.results.trials, data.metric, data.mode, data.scope, own_metric=data.own_metric,
                        reports=data.reports)


def running_best(trials: Sequence[TrialResult], metric: str, mode: str, scope: str, *, own_metric: bool,
                 reports: Reports | None = None) -> list[tuple[str, float]]:
    """:func:`best_so_far` of any metric: ``reports(trial)`` (the trial's kept rows) rank a
    metric that is not the Tuner's own under scope "all" (an objective of several)."""
    trials = [t for t in trials if t.status != TrialStatus.DAMAGED]
    pool = [t for t in trials if t.status != TrialStatus.FAILED]
    if best_trial(pool, metric, mode, scope, own_metric=own_metric, reports=reports) is None:
        pool = trials
    out, best = [], None
    for trial in pool:
        best = best_trial([t for t in (best, trial) if t is not None], metric, mode, scope, own_metric=own_metric,
                          reports=reports)  # the earlier keeps a tie, as over the whole prefix
        if best is not None:
            out.append((trial.trial_id, shown_value(best, metric, mode, scope, own_metric, reports=reports)))
    return out
