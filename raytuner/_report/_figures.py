"""The report's plotly figures, one function each.

Each returns a :class:`Figure` (a plotly figure with a title and a one-line caption) or a
string saying why it is left out. User strings (parameter names, categorical values) go
through :func:`html.escape` before they reach plotly, which renders a subset of HTML in
labels: ``<b>`` in a config value must show as text, not as markup.
"""

from __future__ import annotations

import math
from typing import Any

from raytuner._formats import flatten
from raytuner._report._common import LAYOUT, Figure, esc
from raytuner._report._data import Param, ReportData, best_so_far, end_marks, label
from raytuner._report._population import population
from raytuner._report.importance import importance

_STATUS_COLORS = {
    "COMPLETED": "#1f77b4",
    "STOPPED": "#ff7f0e",
    "FAILED": "#d62728",
    "PAUSED": "#9467bd",
    "RUNNING": "#2ca02c",
    "PENDING": "#7f7f7f",
}
_MARK_SYMBOLS = {"stopped": "x", "failed": "x-thin-open", "paused": "diamond-open", "paused, resumed": "diamond"}


def _axis_values(param: Param) -> tuple[list[Any], dict[str, Any]]:
    """Values to plot for one parameter and the axis settings that go with them."""
    if param.numeric:
        return [float(v) for v in param.values], {"type": "log"} if param.log else {}
    labels = [esc(v) for v in param.values]
    return labels, {"type": "category", "categoryorder": "category ascending"}


def _hover(data: ReportData, index: int, value: float | None = None) -> str:
    """A trial's hover text: its ``value`` (default: its last) and its config."""
    trial = data.scored[index]
    config = "<br>".join(f"{esc(k)}={esc(v)}" for k, v in flatten(trial.config).items())
    shown = f"{esc(data.metric)}={data.values[index] if value is None else value:.6g}"
    return f"trial {esc(trial.trial_id)} ({trial.status.value.lower()})<br>{shown}<br>{config}"


def _ranked_values(data: ReportData) -> list[float]:
    """Each scored trial's value as the best so far ranks it (:func:`raytuner._best.shown_value`):
    its last under best_scope "last", its best report under "all"."""
    if data.scope == "last":
        return data.values
    shown = [data.shown(t) for t in data.scored]
    return [last if value is None else value for value, last in zip(shown, data.values)]


def history(data: ReportData) -> Figure:
    import plotly.graph_objects as go

    order = list(range(len(data.scored)))
    values = _ranked_values(data)
    fig = go.Figure()
    for status in dict.fromkeys(t.status.value for t in data.scored):
        idx = [i for i in order if data.scored[i].status.value == status]
        fig.add_trace(go.Scatter(
            x=[data.scored[i].trial_id for i in idx], y=[values[i] for i in idx], mode="markers",
            name=status.lower(), marker=dict(color=_STATUS_COLORS.get(status), size=8),
            hovertext=[_hover(data, i, values[i]) for i in idx], hoverinfo="text",
        ))
    best = best_so_far(data)
    fig.add_trace(go.Scatter(
        x=[trial_id for trial_id, _ in best], y=[value for _, value in best], mode="lines",
        name="best so far", line=dict(shape="hv", color="#444"),
    ))
    fig.update_layout(**{**LAYOUT, "margin": dict(l=60, r=20, t=50, b=50)}, xaxis_title="trial (in the order started)",
                      yaxis_title=esc(data.metric))
    # Categories keep the order of their first appearance across traces; fix it to id order.
    drawn = {t.trial_id for t in data.scored} | {trial_id for trial_id, _ in best}
    fig.update_xaxes(type="category", categoryorder="array",
                     categoryarray=[t.trial_id for t in data.results.trials if t.trial_id in drawn])
    which = "best report's" if data.scope == "all" else "last"
    caption = (f"Each trial's {which} {data.metric}, trials in the order they started, and the best so far: "
               f"the best trial's {'best' if data.scope == 'all' else 'last'} {data.metric} among those "
               "started until then, failed trials left out, as the headline ranks them.")
    clipped = y_range(values, data.sign)
    buttons = [dict(label="all values", method="relayout", args=[{"yaxis.type": "linear", "yaxis.autorange": True}])]
    if clipped is not None:
        # A few diverged trials would squash the range where the search is decided.
        fig.update_yaxes(range=list(clipped))
        buttons.insert(0, dict(label="clip outliers", method="relayout",
                               args=[{"yaxis.type": "linear", "yaxis.range": list(clipped)}]))
        outside = sum(not clipped[0] <= v <= clipped[1] for v in values)
        caption += (f" The axis leaves out {outside} outlying trial{'s' if outside > 1 else ''}: "
                    "'all values' (top right) shows them.")
    if all(v > 0 for v in values):
        buttons.append(dict(label="log scale", method="relayout",
                            args=[{"yaxis.type": "log", "yaxis.autorange": True}]))
    fig.update_layout(updatemenus=[dict(type="buttons", direction="left", buttons=buttons, showactive=True,
                                        x=1.0, xanchor="right", y=1.02, yanchor="bottom", pad=dict(r=0, t=0))])
    return Figure("history", "Optimisation history", caption, fig)


def y_range(values: list[float], sign: float) -> tuple[float, float] | None:
    """An axis range without the outliers on the bad side (Tukey's fences, 3 IQR), or None
    if there are none. Only the bad side is clipped: the best values are the point."""
    import numpy as np

    if len(values) < 5:
        return None
    v = np.asarray(values, dtype=float) * sign  # smaller is better
    q1, q3 = np.percentile(v, [25, 75])
    fence = q3 + 3 * (q3 - q1)
    inside = v[v <= fence]
    if len(inside) == len(v) or q3 == q1:
        return None
    low, high = float(inside.min()), float(inside.max())
    pad = 0.05 * (high - low or abs(high) or 1.0)
    low, high = low - pad, high + pad
    return (low, high) if sign > 0 else (-high, -low)


def parallel(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go

    if not data.params:
        return "No parameter varies between the trials."
    dims = []
    for param in data.params:
        if param.numeric:
            values = [math.log10(float(v)) if param.log else float(v) for v in param.values]
            dims.append(dict(label=f"log10({esc(param.name)})" if param.log else esc(param.name), values=values))
        else:
            cats = param.categories
            # Parcoords writes tick labels as plain text (no entity decoding), so they go in raw.
            dims.append(dict(label=esc(param.name), values=[cats.index(label(v)) for v in param.values],
                             tickvals=list(range(len(cats))), ticktext=cats))
    dims.append(dict(label=esc(data.metric), values=data.values))
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line=dict(color=data.values, colorscale="Viridis", reversescale=data.mode == "max", showscale=True,
                  colorbar=dict(title=esc(data.metric))),
    ))
    fig.update_layout(**{**LAYOUT, "margin": dict(l=80, r=80, t=60, b=30)})
    return Figure("parallel", "Parallel coordinates",
                  f"One line per trial through its parameters to its last {data.metric}; drag on an axis to filter.", fig)


def learning_curves(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go

    fig = go.Figure()
    marks: dict[str, tuple[list, list, list]] = {}
    drawn = 0
    for trial in data.results.trials:
        rows = [r for r in data.histories.get(trial.trial_id, []) if isinstance(r.get(data.metric), (int, float))]
        if not rows:
            continue
        drawn += 1
        fig.add_trace(go.Scatter(
            x=[r.get(data.x_key) for r in rows], y=[r[data.metric] for r in rows], mode="lines",
            name=f"trial {esc(trial.trial_id)}", legendgroup="trials", showlegend=False, opacity=0.7,
            line=dict(width=1.2, color=_STATUS_COLORS.get(trial.status.value)),
            hovertemplate=f"trial {esc(trial.trial_id)}<br>{esc(data.x_key)}=%{{x}}<br>{esc(data.metric)}=%{{y:.6g}}<extra></extra>",
        ))
        for x, y, what in end_marks(data, trial):
            xs, ys, texts = marks.setdefault(what, ([], [], []))
            xs.append(x)
            ys.append(y)
            texts.append(f"trial {esc(trial.trial_id)} {what}")
    if not drawn:
        return f"No trial reported {data.metric} per step."
    for what, (xs, ys, texts) in marks.items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=what, hovertext=texts, hoverinfo="text",
                                 marker=dict(symbol=_MARK_SYMBOLS.get(what, "circle"), size=9, color="#222")))
    # One legend entry per colour: the per-trial lines stay out of the legend (hundreds).
    for status in dict.fromkeys(t.status.value for t in data.results.trials if t.trial_id in data.histories):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{status.lower()} trial",
                                 line=dict(width=2, color=_STATUS_COLORS.get(status)), hoverinfo="skip"))
    fig.update_layout(legend=dict(title=dict(text="line colour: how the trial ended; marks: where")))
    for level in data.schedule.rungs:
        fig.add_vline(x=level, line=dict(dash="dot", color="#999", width=1))
    rungs = ", ".join(f"{level:g}" for level in data.schedule.rungs)
    caption = f"{data.metric} at every report of every trial, coloured by how the trial ended (see the legend)."
    if rungs:
        caption += f" Dotted lines: the scheduler's rungs ({rungs})."
    fig.update_layout(**LAYOUT, xaxis_title=data.x_key, yaxis_title=esc(data.metric))
    return Figure("learning_curves", "Learning curves", caption, fig)


def slices(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not data.params:
        return "No parameter varies between the trials."
    cols = min(3, len(data.params))
    rows = math.ceil(len(data.params) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[esc(p.name) for p in data.params],
                        horizontal_spacing=0.08, vertical_spacing=0.18 if rows > 1 else 0.1)
    numbers = list(range(len(data.scored)))
    for i, param in enumerate(data.params):
        row, col = divmod(i, cols)
        values, axis = _axis_values(param)
        fig.add_trace(go.Scatter(
            x=values, y=data.values, mode="markers", showlegend=False,
            marker=dict(color=numbers, colorscale="Blues", size=7, line=dict(width=0.5, color="#333"),
                        showscale=i == 0, colorbar=dict(title="trial #", len=0.5) if i == 0 else None),
            hovertext=[_hover(data, j) for j in numbers], hoverinfo="text",
        ), row=row + 1, col=col + 1)
        fig.update_xaxes(row=row + 1, col=col + 1, **axis)
        fig.update_yaxes(row=row + 1, col=col + 1, title_text=esc(data.metric) if col == 0 else None)
    # Room above the first row's titles for plotly's toolbar, which otherwise covers them.
    fig.update_layout(**{**LAYOUT, "height": 320 * rows + 40, "margin": dict(l=60, r=20, t=80, b=50)})
    return Figure("slices", "Slice plots", f"{data.metric} against each parameter alone; darker = later trial.", fig)


def contour(data: ReportData) -> Figure | str:
    import numpy as np
    import plotly.graph_objects as go

    scores = importance(data)
    numeric = [p for p in sorted(data.params, key=lambda p: -scores.get(p.name, 0.0)) if p.numeric]
    if len(numeric) < 2:
        return "The contour plot needs two numeric parameters that vary."
    px, py = numeric[:2]

    def scaled(param: Param) -> np.ndarray:
        values = np.array(param.values, dtype=float)
        return np.log10(values) if param.log else values

    x, y, z = scaled(px), scaled(py), np.array(data.values, dtype=float)
    if len(z) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return "The contour plot needs at least 4 trials spread over both parameters."
    from scipy.interpolate import griddata

    gx = np.linspace(x.min(), x.max(), 60)
    gy = np.linspace(y.min(), y.max(), 60)
    try:
        # Scale to the unit square first: griddata triangulates in data units, and a
        # log-scaled lr next to an integer width would give slivers.
        zx, zy = (x - x.min()) / np.ptp(x), (y - y.min()) / np.ptp(y)
        mx, my = np.meshgrid((gx - x.min()) / np.ptp(x), (gy - y.min()) / np.ptp(y))
        grid = griddata((zx, zy), z, (mx, my), method="linear")
    except Exception as exc:  # scipy's QhullError: the points are collinear
        return f"The trials' points cannot be triangulated for a contour ({type(exc).__name__})."
    unscale = (lambda v, p: (10 ** v).tolist() if p.log else v.tolist())
    fig = go.Figure()
    fig.add_trace(go.Contour(
        x=unscale(gx, px), y=unscale(gy, py), z=[[None if math.isnan(v) else v for v in row] for row in grid.tolist()],
        colorscale="Viridis", reversescale=data.mode == "max", connectgaps=False,
        colorbar=dict(title=esc(data.metric)), contours=dict(coloring="heatmap"), hoverinfo="skip",
    ))
    fig.add_trace(go.Scatter(
        x=[float(v) for v in px.values], y=[float(v) for v in py.values], mode="markers", showlegend=False,
        marker=dict(color="white", size=7, line=dict(width=1, color="#222")),
        hovertext=[_hover(data, i) for i in range(len(data.scored))], hoverinfo="text",
    ))
    fig.update_layout(**LAYOUT, xaxis_title=esc(px.name), yaxis_title=esc(py.name))
    fig.update_xaxes(type="log" if px.log else "linear")
    fig.update_yaxes(type="log" if py.log else "linear")
    return Figure("contour", f"Contour of {px.name} and {py.name}",
                  f"{data.metric} interpolated (linearly) between the trials (white dots) over the two "
                  "numeric parameters that explain most of its variance.", fig)


def importances(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go

    if len(data.scored) < 3:
        return (f"Parameter importance needs at least 3 trials with a finite {data.metric}; "
                f"{len(data.scored)} of the {len(data.results.trials)} have one.")
    scores = importance(data)
    if not scores:
        return f"Parameter importance needs a parameter that varies among the trials with a finite {data.metric}."
    names = list(scores)[::-1]
    fig = go.Figure(go.Bar(x=[scores[n] for n in names], y=[esc(n) for n in names], orientation="h",
                           marker_color="#1f77b4", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(**{**LAYOUT, "height": max(220, 60 + 40 * len(names))},
                      xaxis_title=f"share of {esc(data.metric)} variance explained (fANOVA)", xaxis_range=[0, 1])
    return Figure("importance", "Parameter importance",
                  "fANOVA over a random forest, as Optuna computes it: the share of the metric's variance that "
                  "each parameter's main effect explains; what is left over is interactions.", fig)


def durations(data: ReportData) -> Figure | str:
    import plotly.graph_objects as go

    trials = [t for t in data.results.trials if t.iteration]
    if not trials:
        return "Trial durations need a trial that reported."
    fig = go.Figure()
    for status in dict.fromkeys(t.status.value for t in trials):
        group = [t for t in trials if t.status.value == status]
        fig.add_trace(go.Bar(x=[t.trial_id for t in group], y=[t.time_total_s for t in group], name=status.lower(),
                             marker_color=_STATUS_COLORS.get(status)))
    fig.update_layout(**LAYOUT, xaxis_title="trial", yaxis_title="training time (s)", xaxis_type="category")
    return Figure("durations", "Trial durations",
                  "Training time of each trial, summed over pauses and retries; the colour says how it stands.", fig)


BUILDERS = (history, parallel, learning_curves, population, slices, contour, importances, durations)
