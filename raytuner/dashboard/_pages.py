"""The dashboard's HTML: small skeletons; the script fills them from the JSON API.

Every value from an experiment that lands in these pages goes through :func:`esc`; the
script only ever sets ``textContent``. There is no inline script (the Content Security
Policy forbids it): what a page needs to know travels in ``data-`` attributes and meta
tags, escaped like the rest.
"""

from __future__ import annotations

import html
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body_attrs: dict[str, str], content: str, *, csrf: str, read_only: bool) -> str:
    # plotly.js (4.8 MB) is loaded by the script once the page's data is shown: parsing it
    # first would hold the first paint of the summary and the table for seconds.
    attrs = " ".join(f'data-{k}="{esc(v)}"' for k, v in body_attrs.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="rt-csrf" content="{esc(csrf)}"><meta name="rt-read-only" content="{int(read_only)}">
<title>{esc(title)} · raytuner</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head><body {attrs}>
<header><a class="brand" href="/">raytuner</a> <span id="live" class="live" title="live updates">●</span>
<span id="problem" class="problem" role="alert"></span></header>
<main>
{content}
</main></body></html>
"""


def list_page(root: str, *, csrf: str, read_only: bool) -> str:
    content = f"""<h1>Experiments</h1>
<p class="meta">in <code>{esc(root)}</code></p>
<p id="empty" hidden>No experiments in <code>{esc(root)}</code> yet. Run a sweep with
<code>storage_path</code> under it (the default is <code>~/raytuner_results</code>), or start the dashboard on
another folder: <code>raytuner dashboard ROOT</code>.</p>
<table id="experiments" hidden><thead><tr><th>name</th><th>status</th><th>trials</th><th>best</th>
<th>started</th><th>duration</th></tr></thead><tbody></tbody></table>"""
    return _page("experiments", {"page": "list"}, content, csrf=csrf, read_only=read_only)


def experiment_page(name: str, statuses: tuple[str, ...], *, csrf: str, read_only: bool) -> str:
    # Shown by the script once the summary says a live driver can take commands.
    controls = "" if read_only else """<section id="controls" hidden><h2>Control</h2>
<form id="limits"><label>max concurrent <input name="max_concurrent" type="number" min="1" step="1"></label>
<label>trials in all <input name="num_trials" type="number" min="1" step="1"></label>
<label>time budget (s) <input name="time_budget_s" type="number" min="1" step="any"></label>
<button type="submit">Apply</button>
<button type="button" id="end-experiment" class="danger">End experiment</button></form>
<p id="control-status" class="meta" aria-live="polite"></p></section>
<p id="no-controls" class="meta" hidden></p>"""
    options = "".join(f"<option>{esc(status)}</option>" for status in statuses)
    content = f"""<nav><a href="/">experiments</a> / {esc(name)}</nav>
<h1>{esc(name)}</h1>
<section id="summary"><dl>
<dt>status</dt><dd id="s-status">-</dd><dt>trials</dt><dd id="s-counts">-</dd>
<dt>best so far</dt><dd id="s-best">-</dd><dt>elapsed</dt><dd id="s-elapsed">-</dd>
<dt>concurrency</dt><dd id="s-concurrency">-</dd><dt>limits</dt><dd id="s-limits">-</dd>
<dt>searcher</dt><dd id="s-searcher">-</dd><dt>scheduler</dt><dd id="s-scheduler">-</dd>
<dt>rungs</dt><dd id="s-rungs">-</dd></dl><p id="s-damaged" class="refused" hidden></p></section>
{controls}
<section><h2>Commands</h2><p id="no-commands" class="meta">No control commands yet.</p>
<table id="commands" hidden><thead><tr><th>time</th><th>from</th><th>command</th><th>outcome</th></tr></thead>
<tbody></tbody></table></section>
<section><h2>Trials</h2>
<div class="toolbar"><label>status <select id="status-filter"><option value="">all</option>{options}</select></label>
<button type="button" id="prev">◀ previous</button> <span id="page-info"></span>
<button type="button" id="next">next ▶</button></div>
<div class="table-wrap"><table id="trials"><thead></thead><tbody></tbody></table></div></section>
<section id="figures"><h2>Figures</h2><p id="figures-message" class="meta"></p></section>"""
    return _page(name, {"page": "experiment", "experiment": name}, content, csrf=csrf, read_only=read_only)


def trial_page(name: str, trial_id: str, *, csrf: str, read_only: bool) -> str:
    actions = "" if read_only else """<p id="trial-actions"><button type="button" id="stop-trial" hidden>Stop trial</button>
<button type="button" id="retry-trial" hidden>Re-run from latest checkpoint</button>
<span id="control-status" class="meta" aria-live="polite"></span></p>"""
    content = f"""<nav><a href="/">experiments</a> / <a href="/e/{esc(name)}">{esc(name)}</a> / trial {esc(trial_id)}</nav>
<h1>Trial {esc(trial_id)}</h1>
<section id="summary"><dl><dt>status</dt><dd id="t-status">-</dd><dt>reports</dt><dd id="t-iteration">-</dd>
<dt>last value</dt><dd id="t-value">-</dd><dt>training time</dt><dd id="t-time">-</dd>
<dt>failures</dt><dd id="t-failures">-</dd><dt>note</dt><dd id="t-note">-</dd></dl>{actions}</section>
<section><h2>Config</h2><table id="config"><tbody></tbody></table></section>
<section><h2>Metric history</h2><div id="curve" class="rt-figure"></div>
<div class="table-wrap"><table id="rows"><thead></thead><tbody></tbody></table></div></section>
<section><h2>Checkpoints</h2><ul id="checkpoints"></ul></section>
<section id="damaged-section" hidden><h2>Damaged</h2><p id="damaged" class="refused"></p></section>
<section id="error-section" hidden><h2>Error</h2><pre id="error"></pre></section>
<section><h2>Log</h2><p class="meta">What the trial printed (stdout and stderr), live while it runs.</p>
<pre id="log" class="log"></pre></section>"""
    return _page(f"{name} trial {trial_id}", {"page": "trial", "experiment": name, "trial": trial_id}, content,
                 csrf=csrf, read_only=read_only)


def message_page(title: str, message: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · raytuner</title>
<link rel="stylesheet" href="/static/dashboard.css"></head>
<body><header><a class="brand" href="/">raytuner</a></header><main><h1>{esc(title)}</h1>
<p>{esc(message)}</p><p><a href="/">All experiments</a></p></main></body></html>
"""
