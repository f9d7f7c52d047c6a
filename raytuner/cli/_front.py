"""A multi-objective experiment in the CLI: the Pareto front that ``show``, ``best``, ``ls``
and the summary after a resume print, by :func:`raytuner._best.pareto_front` (the one
definition Results, the report and the dashboard use)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from raytuner._best import FrontMember, listed_report, pareto_front
from raytuner._objectives import Objectives, is_finite_value


@dataclass
class Front:
    """A multi-objective experiment as ``show`` and ``best`` present it."""

    members: dict[str, FrontMember]  # by trial id, in the Pareto order
    ranked: list  # the front, then the trials with finite last values by the Pareto order of those


def front_view(results, args) -> Front | None:
    """The front of a multi-objective experiment; None when trials are ranked by one metric
    (one objective, or ``--metric`` given)."""
    from raytuner._pareto import pareto_order

    if not results.objectives.multi or getattr(args, "metric", None):
        return None
    members = {m.trial.trial_id: m for m in results._front()}
    points = {t.trial_id: results.objectives.signed(t.metrics) for t in results.trials}
    # A DAMAGED trial's values cannot be trusted: it follows, unranked, with the trials without values.
    others = [t for t in results.trials if t.trial_id not in members and t.status.value != "DAMAGED"
              and is_finite_value(points[t.trial_id])]
    ranked = [m.trial for m in members.values()]
    ranked += [others[i] for i in pareto_order([points[t.trial_id] for t in others])] if others else []
    return Front(members, ranked)


def point(front: Front, trial) -> dict[str, Any]:
    """The report ``show`` lists for ``trial``: on the front, the one that put it there
    (under best_scope "all", not always its last); otherwise its last."""
    return listed_report(front.members.get(trial.trial_id), trial.metrics)


def best_json(front: Front, full: bool) -> str:
    """``raytuner best`` of a multi-objective experiment: the front, a JSON list."""
    out = []
    for member in front.members.values():
        entry: dict[str, Any] = {"trial_id": member.trial.trial_id, "config": member.trial.config,
                                 "objectives": member.values}
        if full:
            entry.update(status=member.trial.status.value, metrics=member.metrics,
                         iteration=member.iteration if member.iteration is not None else member.trial.iteration)
        out.append(entry)
    return json.dumps(out, indent=2, default=repr)


def listing_text(storage, meta: dict[str, Any], trials: list, scope: str) -> str | None:
    """``raytuner ls``'s best column for a multi-objective experiment: the front's size
    (``front of 4``), or None with fewer than two objectives or no finite values.

    The listing reads no results.jsonl for one objective; for the front it reads each
    trial's, so that a trial whose history is damaged before its end stays off it, as in
    every other view (and, under scope "all", every kept report is a point)."""
    objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min"))
    if not objectives.multi:
        return None
    histories = {t.trial_id: storage.read_history(t.trial_id) for t in trials if t.status.value != "DAMAGED"}
    trusted = [t for t in trials if t.trial_id in histories and histories[t.trial_id].damaged is None]
    front = pareto_front(trusted, objectives, scope, reports=lambda t: histories[t.trial_id].rows)
    # Failed trials' values are no result (`raytuner best` refuses them too).
    if not front or all(member.trial.status.value == "FAILED" for member in front):
        return None
    return f"front of {len(front)}"


def summary_text(results) -> str:
    """The summary's words on the front ("; Pareto front of 3 (trials 00001, ...)"), or ""."""
    front = [m.trial.trial_id for m in results._front()]
    if not front:
        return ""
    shown = ", ".join(front[:8]) + (f" and {len(front) - 8} more" if len(front) > 8 else "")
    return f"; Pareto front of {len(front)} (trials {shown})"
