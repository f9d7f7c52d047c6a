"""The report as one self-contained HTML file: plotly.js inline, figures as JSON, a table.

Nothing is fetched when the page opens (no CDN), so it works offline and can be mailed.
Figures travel as JSON in ``<script type="application/json">`` blocks with ``<``, ``>``
and ``&`` written as ``\\u003c`` etc., so no config value can close the script tag; every
other piece of user data goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
from typing import Any

from raytuner._best import ranked
from raytuner._display import config_text, time_text, value_text
from raytuner._report import _pareto_figures
from raytuner._formats import flatten, run_time
from raytuner._report._common import Figure
from raytuner._report._data import ReportData
from raytuner._trial import TrialStatus

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta { color: #555; } .meta code, pre { background: #f4f4f4; padding: 0 .3em; }
.caption { color: #555; margin: .2em 0 .5em; } .skipped { color: #888; font-style: italic; }
table { border-collapse: collapse; font-size: .85em; } th, td { padding: .25em .6em; border-bottom: 1px solid #ddd;
       text-align: left; white-space: nowrap; } th { background: #fafafa; }
/* No height limit: a box that scrolled both ways hid its horizontal scroll bar (and so the
   last columns) below 32em of rows. Now the bar sits right under the table. */
.table-wrap { overflow-x: auto; max-width: 100%; border: 1px solid #ddd; }
#trials th { white-space: normal; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.rt-figure { min-height: 200px; }
"""

# Draw every figure; mark each drawn div so a reader (or a test) can tell.
_DRAW = """
(function () {
  var divs = document.querySelectorAll("div.rt-figure");
  var pending = [];
  divs.forEach(function (div) {
    var spec = JSON.parse(document.getElementById(div.dataset.spec).textContent);
    pending.push(Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false})
      .then(function () { div.dataset.drawn = "true"; }));
  });
  Promise.all(pending).then(function () { document.body.dataset.figuresDrawn = String(divs.length); });
})();
"""


def _json_for_script(obj: Any) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _header(data: ReportData) -> str:
    results, meta = data.results, data.results.meta
    counts: dict[str, int] = {}
    for trial in results.trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    start = meta.get("start_time")
    ran = run_time(meta)  # as its driver last wrote it; the time between runs does not count
    duration = f"{ran:.1f} s" if ran is not None else "-"
    rows = [
        ("status", getattr(results, "status", None) or meta.get("status", "?")),
        ("trials", ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + f" ({len(results.trials)} in all)"),
        ("metric", f"{data.metric} ({data.mode})"),
        ("searcher", meta.get("searcher", "")),
        ("scheduler", meta.get("scheduler", "")),
        ("started", time_text(start if start is not None else meta.get("created"))),
        ("run time", duration),
    ]
    if results.objectives.multi:  # no one best trial: the front
        front_rows, best_section = _pareto_figures.front_rows(data)
        rows[2:3] = front_rows
    else:
        best = data.best if data.best is not None else data.scored[0]
        best_value = data.shown(best)
        rows.append(("best", f"trial {best.trial_id}: {data.metric} = {value_text(best_value)} ("
                             f"{'its best report' if data.scope == 'all' else 'its last report'}"
                             f"{', the trial FAILED' if best.status == TrialStatus.FAILED else ''})"))
        best_section = f"<h2>Best configuration</h2><pre>{html.escape(json.dumps(best.config, indent=2, default=repr))}</pre>"
    rows += [("damaged", f"trial {t.trial_id}: {t.damaged} (left out of the figures)")
             for t in results.trials if getattr(t, "damaged", None)]
    items = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return (
        f"<h1>raytuner report: {html.escape(results.path.name)}</h1>"
        f'<table class="meta">{items}</table>'
        + best_section
    )


def _table(data: ReportData) -> str:
    front = {m.trial.trial_id: n for n, m in enumerate(data.front)}
    # The front first (in its order), then by the metric drawn.
    trials = ranked(data.results.trials, data.metric, data.mode, data.scope, own_metric=data.own_metric,
                    reports=data.reports)
    trials = sorted(trials, key=lambda t: front.get(t.trial_id, len(front)))
    configs = {t.trial_id: flatten(t.config) for t in trials}
    params = list(dict.fromkeys(k for c in configs.values() for k in c))
    first = list(data.results.objectives.metrics) if front else [data.metric]
    metrics = first + sorted({k for t in trials for k in t.metrics} - set(first))
    # Ranked by each trial's best report ("all"): that value leads, as `raytuner show` has it;
    # the metric columns hold every trial's last report.
    by_best = not front and data.scope == "all"
    head = ["trial", "status", "reports", "time (s)"] + [f"best {data.metric}"] * by_best + metrics + params
    lines = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for trial in trials:
        on_front = " (front)" if trial.trial_id in front else ""
        cells = [html.escape(trial.trial_id + on_front), html.escape(trial.status.value.lower()), str(trial.iteration),
                 f"{trial.time_total_s:.1f}"]
        cells += [html.escape(value_text(data.shown(trial)))] * by_best
        cells += [html.escape(value_text(trial.metrics.get(m))) for m in metrics]
        cells += [html.escape(config_text(configs[trial.trial_id], p)) for p in params]
        lines.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i in (2, 3) else f"<td>{c}</td>"
                                      for i, c in enumerate(cells)) + "</tr>")
    return f'<h2>Trials</h2><div class="table-wrap"><table id="trials">{"".join(lines)}</table></div>'


def render(data: ReportData, figures: list[Figure | tuple[str, str]]) -> str:
    """The whole page. ``figures`` holds drawn figures and (title, reason) for skipped ones."""
    from plotly.offline import get_plotlyjs

    sections, specs = [], []
    for n, item in enumerate(figures):
        if isinstance(item, Figure):
            spec_id = f"rt-spec-{n}"
            specs.append(f'<script type="application/json" id="{spec_id}">{_json_for_script(item.figure.to_json())}</script>')
            sections.append(
                f"<h2>{html.escape(item.title)}</h2><p class=\"caption\">{html.escape(item.caption)}</p>"
                f'<div class="rt-figure" id="rt-figure-{html.escape(item.key)}" data-spec="{spec_id}"></div>'
            )
        else:
            title, reason = item
            sections.append(f'<h2>{html.escape(title)}</h2><p class="skipped">Not drawn: {html.escape(reason)}</p>')
    title = html.escape(f"raytuner: {data.results.path.name}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        + _header(data)
        + "".join(sections)
        + _table(data)
        + "".join(specs)
        + f"<script>{_DRAW}</script></body></html>\n"
    )
