"""The population figure of a PBT experiment: each trial's metric over the resource, and an
edge for every exploit, from the donor's report it cloned to the clone's first report after.

Read from the attempt markers (:mod:`raytuner._storage.lineage`), as every other view of an
experiment is; user strings go through :func:`~raytuner._report._common.esc` like the
report's other labels.
"""

from __future__ import annotations

from typing import Any

from raytuner._report._common import LAYOUT, Figure, esc
from raytuner._report._data import ReportData
from raytuner._storage import lineage
from raytuner._storage.experiment import ExperimentStorage

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")


def edges(data: ReportData) -> list[dict[str, Any]]:
    """Every exploit in the kept histories, with the points it joins: the donor's report at
    the cloned iteration (as the donor's file stood then) and the clone's first report."""
    reader = lineage.for_experiment(ExperimentStorage(data.results.path))
    out = []
    for trial in data.results.trials:
        if trial.trial_id not in data.histories:  # a damaged trial: its lineage cannot be read
            continue
        for edge in reader.edges(trial.trial_id):
            donor, attempt = edge["donor"], edge["attempt"]
            clone_rows = [r for r in data.histories.get(trial.trial_id, []) if r.get("attempt", 1) >= attempt]
            if not isinstance(donor, str) or donor not in data.histories or not clone_rows:
                continue
            source = reader.history(donor)
            then = next((m.get("cloned_from", {}) for m in reader.history(trial.trial_id).attempts
                         if m.get("attempt") == attempt), {})
            rows = lineage.up_to_attempt(source, int(then.get("attempt") or source.attempt)).rows
            start = next((r for r in rows if r.get("iteration") == edge["donor_iteration"]), None)
            end = clone_rows[0]
            if start is None or not _number(start.get(data.metric)) or not _number(end.get(data.metric)):
                continue
            out.append({"trial": trial.trial_id, "donor": donor, "iteration": edge["iteration"],
                        "from": (start.get(data.x_key), start[data.metric]), "to": (end.get(data.x_key), end[data.metric])})
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Schedulers whose experiments get the figure (any other experiment that has exploits too).
PBT_SCHEDULERS = ("PBTScheduler", "PB2Scheduler", "PBTReplay")


def population(data: ReportData) -> Figure | str | None:
    """The figure; why it is not drawn yet (PBT before its first exploit); or None for an
    experiment that has nothing to do with PBT (it is left out of the page)."""
    import plotly.graph_objects as go

    found = edges(data)
    if not found:
        config = data.results.meta.get("scheduler_config")
        if isinstance(config, dict) and config.get("type") in PBT_SCHEDULERS:
            return "No trial has exploited another yet."
        return None
    fig = go.Figure()
    for n, trial in enumerate(data.results.trials):
        rows = [r for r in data.histories.get(trial.trial_id, []) if _number(r.get(data.metric))]
        if rows:
            fig.add_trace(go.Scatter(
                x=[r.get(data.x_key) for r in rows], y=[r[data.metric] for r in rows], mode="lines",
                name=f"trial {esc(trial.trial_id)}", line=dict(width=1.5, color=_PALETTE[n % len(_PALETTE)]),
                hovertemplate=f"trial {esc(trial.trial_id)}<br>{esc(data.x_key)}=%{{x}}<br>"
                              f"{esc(data.metric)}=%{{y:.6g}}<extra></extra>",
            ))
    xs: list[Any] = []
    ys: list[Any] = []
    texts: list[str] = []
    for edge in found:
        text = f"trial {esc(edge['trial'])} cloned trial {esc(edge['donor'])} at report {edge['iteration']}"
        xs += [edge["from"][0], edge["to"][0], None]
        ys += [edge["from"][1], edge["to"][1], None]
        texts += [text, text, ""]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name="exploit", hovertext=texts, hoverinfo="text",
                             line=dict(dash="dot", color="#444", width=1),
                             marker=dict(symbol="arrow", angleref="previous", size=9, color="#444")))
    fig.update_layout(**LAYOUT, xaxis_title=esc(data.x_key), yaxis_title=esc(data.metric))
    return Figure("population", "Population",
                  f"Each trial's {data.metric} over {data.x_key} (one colour per trial); a dotted arrow for every "
                  f"exploit ({len(found)}), from the donor's report that was cloned to the clone's first report after "
                  "it with its new config.", fig)
