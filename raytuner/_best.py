"""One definition of the best trial, used by Results, the CLI, the report and the dashboard.

A trial's *key* is the value it is ranked by, signed to minimise:

- ``scope="last"`` (the default, as Ray Tune's): its last kept report of the metric;
- ``scope="all"``: its best kept report of the Tuner's own metric (``Trial.best_value``);
  of another metric, its best among ``reports(trial)`` where the caller passes them (an
  objective of several has no ``best_value``), else its last.

NaN and infinite keys never count. FAILED trials count only when no other trial has a
finite key, and DAMAGED ones (their files cannot be trusted) never do. Ties go to the
trial created first.

With several objectives there is no one best trial but a Pareto front
(:func:`pareto_front`): the trials whose values no other trial dominates (as good in every
objective and better in one), by the same scope and the same rules for NaN, FAILED and
DAMAGED trials. Under "last" a trial's point is its last kept report; under "all" every
kept report is a point, and a trial is on the front when one of its reports is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Mapping, Protocol, Sequence, TypeVar

from raytuner._formats import AUTO_KEYS
from raytuner._objectives import Objectives

SCOPES = ("last", "all")
#: The scope an experiment uses when it does not say (experiment.json's ``best_scope``).
DEFAULT_SCOPE = "last"


def scope_of(meta: Mapping[str, Any]) -> str:
    """An experiment's ``best_scope`` (experiment.json's), or the default when it has none."""
    scope = meta.get("best_scope")
    return scope if scope in SCOPES else DEFAULT_SCOPE


class Ranked(Protocol):
    trial_id: str
    status: Any
    metrics: dict[str, Any]
    best_value: float | None


T = TypeVar("T", bound=Ranked)


Reports = Callable[[Any], Sequence[Mapping[str, Any]]]


def _signed(raw: Any, sign: float) -> float | None:
    """``sign * raw`` if ``raw`` is a finite number, else None."""
    if not isinstance(raw, (int, float)) or isinstance(raw, bool):
        return None
    return sign * raw if math.isfinite(raw) else None


def key(trial: Ranked, metric: str, sign: float, scope: str, own_metric: bool,
        reports: Reports | None = None) -> float | None:
    """The trial's finite key (signed to minimise), or None if it has none."""
    if scope == "all" and own_metric:
        value = trial.best_value
    elif scope == "all" and reports is not None:
        value = min((v for v in (_signed(row.get(metric), sign) for row in reports(trial)) if v is not None),
                    default=None)
    else:
        value = _signed(trial.metrics.get(metric), sign)
    return value if value is not None and math.isfinite(value) else None


def shown_value(trial: Ranked, metric: str, mode: str, scope: str, own_metric: bool = True, *,
                reports: Reports | None = None) -> float | None:
    """The value a trial is ranked by, in the metric's own sign (what views print), or None.
    ``reports(trial)``: its kept report rows, for a metric without ``best_value`` under "all"."""
    sign = 1.0 if mode == "min" else -1.0
    value = key(trial, metric, sign, scope, own_metric, reports)
    return None if value is None else sign * value


def _order(trials: Iterable[T], metric: str, mode: str, scope: str, own_metric: bool,
           reports: Reports | None = None) -> list[tuple[tuple[bool, float, int], T]]:
    """(rank, trial) for the trials that may be best: non-FAILED before FAILED, then by key,
    then the one created first."""
    sign = 1.0 if mode == "min" else -1.0
    out = []
    for index, trial in enumerate(trials):
        status = getattr(trial.status, "value", trial.status)
        if status == "DAMAGED":
            continue
        value = key(trial, metric, sign, scope, own_metric, reports)
        if value is not None:
            out.append(((status == "FAILED", value, index), trial))
    return out


def best_trial(trials: Iterable[T], metric: str, mode: str, scope: str = DEFAULT_SCOPE, *,
               own_metric: bool = True, reports: Reports | None = None) -> T | None:
    """The best of ``trials`` by ``metric`` in ``mode``, or None if no trial has a finite
    value. ``own_metric``: ``metric``/``mode`` are the Tuner's (so ``best_value`` ranks them);
    ``reports(trial)``: the kept report rows that rank another metric under scope "all"."""
    order = _order(trials, metric, mode, scope, own_metric, reports)
    return min(order, key=lambda item: item[0])[1] if order else None


def ranked(trials: Sequence[T], metric: str, mode: str, scope: str = DEFAULT_SCOPE, *,
           own_metric: bool = True, reports: Reports | None = None) -> list[T]:
    """Every trial, best first by the rule of :func:`best_trial` (its first is the best);
    those that cannot be best (no finite value, DAMAGED) follow in their own order."""
    order = sorted(_order(trials, metric, mode, scope, own_metric, reports), key=lambda item: item[0])
    first = [trial for _, trial in order]
    chosen = {id(trial) for trial in first}
    return first + [trial for trial in trials if id(trial) not in chosen]


@dataclass(frozen=True)
class FrontMember(Generic[T]):
    """A trial on the Pareto front, and the report that put it there.

    Under scope "last" that is the trial's last report (``metrics`` is ``trial.metrics``);
    under "all" its report on the front, which need not be its last."""

    trial: T
    values: dict[str, float]  # each objective's value, in its own units
    iteration: int | None  # the report they come from (scope "all"); None: its last report
    metrics: dict[str, Any]  # that report's metrics (without raytuner's own columns)


def listed_report(member: FrontMember[Any] | None, last: Mapping[str, Any]) -> dict[str, Any]:
    """The report a view lists for a trial of a multi-objective experiment: for a front
    ``member``, the one that put it on the front (under scope "all" not always its last);
    for any other trial, ``last``, the report it stands at."""
    return dict(member.metrics if member is not None else last)


Point = tuple[int | None, dict[str, Any], tuple[float, ...]]


def _points(trial: Ranked, objectives: Objectives, scope: str,
            reports: Callable[[Any], Sequence[Mapping[str, Any]]] | None) -> list[Point]:
    """The trial's finite points: (iteration, the report's metrics, values signed to minimise)."""
    if scope == "all" and reports is not None:
        rows = [(row.get("iteration"), {k: v for k, v in row.items() if k not in AUTO_KEYS}) for row in reports(trial)]
    else:
        rows = [(None, dict(trial.metrics))]
    points = [(it, metrics, objectives.signed(metrics)) for it, metrics in rows]
    return [(it, metrics, value) for it, metrics, value in points
            if value is not None and all(math.isfinite(v) for v in value)]


def pareto_front(trials: Iterable[T], objectives: Objectives, scope: str = DEFAULT_SCOPE, *,
                 reports: Callable[[T], Sequence[Mapping[str, Any]]] | None = None) -> list[FrontMember[T]]:
    """The non-dominated trials of ``trials`` under ``objectives`` (k >= 2), in the Pareto
    order (:func:`raytuner._pareto.pareto_order`: the member that adds the most
    hypervolume first); empty if no trial has a finite value of every objective.

    ``reports(trial)``: the trial's kept report rows, for ``scope="all"``, where each is a
    point (without it, the last report stands for the trial). A trial with several reports
    on the front is listed once, with the first of them in the order.
    """
    from raytuner._pareto import nondominated_ranks, pareto_order

    pools: dict[bool, list[tuple[T, Point]]] = {False: [], True: []}
    for trial in trials:
        status = getattr(trial.status, "value", trial.status)
        if status == "DAMAGED":
            continue
        for point in _points(trial, objectives, scope, reports):
            pools[status == "FAILED"].append((trial, point))
    pool = pools[False] or pools[True]
    if not pool:
        return []
    values = [value for _, (_, _, value) in pool]
    front = pareto_order(values, limit=int((nondominated_ranks(values, limit=1) == 0).sum()))
    members: list[FrontMember[T]] = []
    seen: set[str] = set()
    for i in front:
        trial, (iteration, metrics, value) = pool[i]
        if trial.trial_id in seen:
            continue
        seen.add(trial.trial_id)
        members.append(FrontMember(trial, dict(zip(objectives.metrics, objectives.unsigned(value))), iteration,
                                   metrics))
    return members
