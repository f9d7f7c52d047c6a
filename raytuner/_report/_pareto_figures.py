"""The report's figures for several objectives (``metric=[...]``): the Pareto front among
all trials, each objective's history, and the hypervolume over time.

Drawn before the figures of one metric, by the report and the dashboard alike (both take
:func:`builders`). The front is :attr:`ReportData.front`, the one definition of
:func:`raytuner._best.pareto_front` under the experiment's ``best_scope``; the hypervolume
is :mod:`raytuner._pareto`'s, with one reference point fixed for the whole curve. User
strings (metric and parameter names, config values) go through :func:`esc`, as in
:mod:`raytuner._report._figures`.
"""

from __future__ import annotations

import math
from typing import Any

from raytuner._best import shown_value
from raytuner._display import value_text
from raytuner._formats import flatten, is_finite
from raytuner._report._data import ReportData, running_best
from raytuner._report._common import LAYOUT, Figure, esc
from raytuner._trial import TrialResult, TrialStatus

_FRONT_COLOR = "#d62728"
_OTHER_COLOR = "#9aa7b8"

TITLES = {
    "front": "Pareto front",
    "objective_histories": "Objectives over the trials",
    "hypervolume": "Hypervolume over time",
}


def _drawn(data: ReportData) -> list[TrialResult]:
    """The trials drawn: every one but the DAMAGED (their files cannot be trusted; the
    report's header lists them)."""
    return [t for t in data.results.trials if t.status != TrialStatus.DAMAGED]


def _pooled(data: ReportData) -> list[TrialResult]:
    """The trials whose points the front is made of (:func:`raytuner._best.pareto_front`):
    FAILED ones only when no other trial has finite values, as the front itself has them."""
    only_failed = bool(data.front) and all(m.trial.status == TrialStatus.FAILED for m in data.front)
    return [t for t in _drawn(data) if only_failed or t.status != TrialStatus.FAILED]


def _points(data: ReportData) -> list[tuple[TrialResult, tuple[float, ...]]]:
    """Each trial with a finite last value of every objective, and those values (raw)."""
    metrics = data.results.objectives.metrics
    out = []
    for trial in _drawn(data):
        values = tuple(trial.metrics.get(m) for m in metrics)
        if all(is_finite(v) for v in values):
            out.append((trial, tuple(float(v) for v in values)))
    return out


def _hover(trial: TrialResult, metrics: tuple[str, ...], values: tuple[float, ...], note: str = "") -> str:
    # A trial drawn by an earlier report (scope "all") may lack one in its last.
    objectives = "<br>".join(f"{esc(m)}={v:.6g}" if is_finite(v) else f"{esc(m)}={esc(v)}"
                             for m, v in zip(metrics, values))
    config = "<br>".join(f"{esc(k)}={esc(v)}" for k, v in flatten(trial.config).items())
    return f"trial {esc(trial.trial_id)} ({trial.status.value.lower()}){note}<br>{objectives}<br>{config}"


def _trials(n: int) -> str:
    return f"{n} trial{'' if n == 1 else 's'}"


def _scope_words(data: ReportData) -> str:
    return ("each trial's last report" if data.results.scope == "last"
            else "every report (best_scope='all'): a trial is on it when one of its reports is")


def front(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go

    objectives = data.results.objectives
    metrics = objectives.metrics
    points = _points(data)
    if not data.front:
        return f"No trial reported a finite value of every objective ({', '.join(metrics)})."
    on_front = {m.trial.trial_id for m in data.front}
    others = [(t, v) for t, v in points if t.trial_id not in on_front]
    members = [(m.trial, tuple(m.values[k] for k in metrics),
                "" if m.iteration is None else f" at report {m.iteration}") for m in data.front]
    caption = (f"Every trial by its last {' and '.join(metrics)}; the Pareto front ({_trials(len(members))}, "
               f"red) is the set no other trial beats in every objective, by {_scope_words(data)}.")
    if objectives.k == 2:
        fig = go.Figure()
        fig.add_trace(go.Scatter(
            x=[v[0] for _, v in others], y=[v[1] for _, v in others], mode="markers", name="other trials",
            marker=dict(color=_OTHER_COLOR, size=7), hovertext=[_hover(t, metrics, v) for t, v in others],
            hoverinfo="text"))
        line_x, line_y = _staircase(data, members)
        fig.add_trace(go.Scatter(
            x=line_x, y=line_y, mode="lines", name="front (attainment)",
            line=dict(color=_FRONT_COLOR, width=1, dash="dot"), hoverinfo="skip"))
        fig.add_trace(go.Scatter(
            x=[v[0] for _, v, _ in members], y=[v[1] for _, v, _ in members], mode="markers", name="Pareto front",
            marker=dict(color=_FRONT_COLOR, size=10, symbol="diamond"),
            hovertext=[_hover(t, metrics, v, note) for t, v, note in members], hoverinfo="text"))
        fig.update_layout(**LAYOUT, xaxis_title=f"{esc(metrics[0])} ({objectives.modes[0]})",
                          yaxis_title=f"{esc(metrics[1])} ({objectives.modes[1]})")
        return Figure("front", "Pareto front", caption, fig)
    # Three or more: every pair of objectives, the front in red in each.
    everyone = [(t, v, "") for t, v in others] + members
    fig = go.Figure(go.Splom(
        dimensions=[dict(label=f"{esc(m)} ({mode})", values=[v[i] for _, v, _ in everyone])
                    for i, (m, mode) in enumerate(zip(metrics, objectives.modes))],
        marker=dict(color=[_OTHER_COLOR] * len(others) + [_FRONT_COLOR] * len(members), size=7),
        text=[_hover(t, metrics, v, note) for t, v, note in everyone], hoverinfo="text", diagonal_visible=False,
        showupperhalf=False))
    fig.update_layout(**{**LAYOUT, "height": 240 * objectives.k})
    return Figure("front", "Pareto front", caption + " One panel per pair of objectives.", fig)


def _staircase(data: ReportData, members: list[tuple[TrialResult, tuple[float, ...], str]]) -> tuple[list, list]:
    """The 2-D front's attainment line: what it dominates ends there (in the metrics' units)."""
    signs = data.results.objectives.signs
    signed = sorted((signs[0] * v[0], signs[1] * v[1]) for _, v, _ in members)
    xs: list[float] = []
    ys: list[float] = []
    for i, (x, y) in enumerate(signed):
        if i:
            xs.append(signs[0] * x)
            ys.append(signs[1] * signed[i - 1][1])
        xs.append(signs[0] * x)
        ys.append(signs[1] * y)
    return xs, ys


def objective_histories(data: ReportData) -> Figure | str:
    from plotly.subplots import make_subplots

    objectives = data.results.objectives
    metrics = objectives.metrics
    fig = make_subplots(rows=objectives.k, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"{esc(m)} ({mode})" for m, mode in zip(metrics, objectives.modes)])
    drawn = [_objective_row(fig, data, row, metric, mode)
             for row, (metric, mode) in enumerate(zip(metrics, objectives.modes), start=1)]
    if not any(drawn):
        return f"No trial reported {' or '.join(metrics)}."
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[t.trial_id for t in data.results.trials])
    fig.update_xaxes(title_text="trial (in the order started)", row=objectives.k, col=1)
    fig.update_layout(**{**LAYOUT, "height": 260 * objectives.k + 60})
    which = "last value" if data.results.scope == "last" else "best report (best_scope='all')"
    return Figure("objective_histories", "Objectives over the trials",
                  f"Each objective's {which} per trial, trials in the order they started, with the best so far "
                  "of that objective alone, failed trials left out; the Pareto front's trials in red.", fig)


def _objective_row(fig: Any, data: ReportData, row: int, metric: str, mode: str) -> bool:
    """One objective's panel: each trial at the value of it that the scope ranks by
    (:func:`raytuner._best.shown_value`), and their best so far (:func:`running_best`: FAILED
    trials left out while another has a value). Whether any trial has one."""
    import plotly.graph_objects as go

    scope, metrics = data.results.scope, data.results.objectives.metrics

    def reports(trial: TrialResult) -> list[dict[str, Any]]:
        return data.histories.get(trial.trial_id, [])

    def note(value: float) -> str:  # the hover's values are its last report's
        return "" if scope == "last" else f", best {esc(metric)}={value:.6g}"

    shown = [(t, shown_value(t, metric, mode, scope, False, reports=reports)) for t in _drawn(data)]
    scored = [(t, v) for t, v in shown if v is not None]
    if not scored:
        return False
    on_front = {m.trial.trial_id for m in data.front}
    for name, color in (("other trials", _OTHER_COLOR), ("Pareto front", _FRONT_COLOR)):
        group = [(t, v) for t, v in scored if (t.trial_id in on_front) == (color == _FRONT_COLOR)]
        fig.add_trace(go.Scatter(
            x=[t.trial_id for t, _ in group], y=[v for _, v in group], mode="markers", name=name,
            legendgroup=name, showlegend=row == 1, marker=dict(color=color, size=8 if color == _FRONT_COLOR else 6),
            hovertext=[_hover(t, metrics, tuple(t.metrics.get(m) for m in metrics), note(v)) for t, v in group],
            hoverinfo="text"), row=row, col=1)
    line = running_best(data.results.trials, metric, mode, scope, own_metric=False, reports=reports)
    fig.add_trace(go.Scatter(x=[trial_id for trial_id, _ in line], y=[v for _, v in line], mode="lines",
                             name="best so far", legendgroup="best", showlegend=row == 1,
                             line=dict(shape="hv", color="#444")), row=row, col=1)
    return True


def hypervolume_series(data: ReportData) -> tuple[list[float], list[float], list[float]] | None:
    """(seconds since the start, hypervolume, the reference point in the metrics' units).

    Points come with the time of the report that made them: each trial's last report
    (best_scope "last"), or every report ("all"). The reference point is fixed for the
    whole curve: :func:`raytuner._pareto.reference_point` of the finished trials' last
    values (of every trial's, while none has finished), so the curve only rises. The
    trials are those the front is made of (no DAMAGED ones; FAILED ones only when no other
    has values), so the curve ends at the volume of the front shown.
    """
    from raytuner._pareto import hypervolume, reference_point

    objectives = data.results.objectives
    events: list[tuple[float, tuple[float, ...]]] = []
    finals, finished = [], []
    for trial in _pooled(data):
        rows = [r for r in data.histories.get(trial.trial_id, []) if is_finite(r.get("timestamp"))]
        final = objectives.signed(trial.metrics)
        if final is not None and all(math.isfinite(v) for v in final):
            finals.append(final)
            if trial.status.is_finished():
                finished.append(final)
        if data.results.scope == "all":
            for row in rows:
                value = objectives.signed(row)
                if value is not None and all(math.isfinite(v) for v in value):
                    events.append((row["timestamp"], value))
        elif rows and final is not None and all(math.isfinite(v) for v in final):
            events.append((rows[-1]["timestamp"], final))
    if not events or not finals:
        return None
    z = reference_point(finished or finals)
    events.sort(key=lambda e: e[0])
    start = data.results.meta.get("start_time")
    t0 = start if is_finite(start) else events[0][0]
    times, volumes, front = [], [], []
    volume = 0.0
    for stamp, value in events:
        # Only a point inside z that nothing seen so far weakly dominates changes the volume.
        if all(v < zj for v, zj in zip(value, z)) and not any(_covers(p, value) for p in front):
            front = [p for p in front if not _covers(value, p)] + [value]
            volume = hypervolume(front, z)
        times.append(max(0.0, stamp - t0))
        volumes.append(volume)
    return times, volumes, list(objectives.unsigned(z))


def _covers(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective (signed)."""
    return all(x <= y for x, y in zip(a, b))


def hypervolume(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go

    series = hypervolume_series(data)
    if series is None:
        return "The hypervolume needs a report with a finite value of every objective and its time."
    times, volumes, z = series
    metrics = data.results.objectives.metrics
    fig = go.Figure(go.Scatter(x=times, y=volumes, mode="lines+markers", line=dict(shape="hv", color="#1f77b4"),
                               name="hypervolume", hovertemplate="%{x:.0f} s: %{y:.6g}<extra></extra>"))
    fig.update_layout(**LAYOUT, xaxis_title="seconds since the experiment started", yaxis_title="hypervolume")
    where = ", ".join(f"{esc(m)}={value_text(v)}" for m, v in zip(metrics, z))
    return Figure("hypervolume", "Hypervolume over time",
                  f"The volume the front dominates, up to a reference point fixed from the finished trials "
                  f"(10% beyond the worst of each objective: {where}), as the reports came in, by "
                  f"{_scope_words(data)}. It only rises.", fig)


BUILDERS = (front, objective_histories, hypervolume)


def front_rows(data: ReportData) -> tuple[list[tuple[str, str]], str]:
    """The header's rows and the "Pareto front" section (HTML, escaped) of the report page."""
    import html
    import json

    objectives = data.results.objectives
    rows = [("objectives", objectives.describe()),
            ("Pareto front", f"{_trials(len(data.front))} ({data.results.scope} reports)")]
    items = []
    for member in data.front:
        values = ", ".join(f"{m}={value_text(v)}" for m, v in member.values.items())
        at = "" if member.iteration is None else f" (report {member.iteration})"
        items.append(f"<li>trial {html.escape(member.trial.trial_id)}{html.escape(at)}: {html.escape(values)}"
                     f"<pre>{html.escape(json.dumps(member.trial.config, indent=2, default=repr))}</pre></li>")
    section = f"<h2>Trials on the Pareto front</h2><ol class=\"front\">{''.join(items)}</ol>"
    return rows, section
