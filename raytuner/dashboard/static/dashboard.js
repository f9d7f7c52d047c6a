// raytuner dashboard: fills the page skeletons from the JSON API and keeps them live.
// Every value from an experiment is set as textContent, never as HTML; what goes to plotly,
// which renders a subset of HTML in names and titles, goes through plotText.
"use strict";

(function () {
  const body = document.body;
  const meta = (name) => document.querySelector('meta[name="' + name + '"]').content;
  const csrf = meta("rt-csrf");
  const readOnly = meta("rt-read-only") === "1";
  const exp = body.dataset.experiment;
  const enc = encodeURIComponent;
  const api = exp ? "/api/e/" + enc(exp) : "";

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
    return node;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(parseFloat(v.toPrecision(6)));
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function duration(s) {
    if (s === null || s === undefined) return "-";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + (s % 60) + "s";
  }
  function seconds(v, unit) {
    return typeof v === "number" ? v.toFixed(1) + (unit || "") : fmt(v);
  }
  function plotText(v) {
    return String(v).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function when(t) { return t ? new Date(t * 1000).toLocaleString() : "-"; }
  function counts(c) {
    return Object.keys(c || {}).sort().map((k) => c[k] + " " + k.toLowerCase()).join(", ") || "none";
  }
  function problem(text) { document.getElementById("problem").textContent = text || ""; }
  function setText(id, text) { const node = document.getElementById(id); if (node) node.textContent = text; }

  async function getJSON(url) {
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || url + ": HTTP " + response.status);
    return data;
  }
  async function sendCommand(command, args, statusId) {
    setText(statusId, "sending " + command + "…");
    const response = await fetch(api + "/control", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({command: command, args: args}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { setText(statusId, "refused: " + (data.error || "HTTP " + response.status)); return null; }
    waiting[data.id] = statusId;
    setText(statusId, command + " sent; waiting for the driver to apply it…");
    return data.id;
  }
  const waiting = {};  // command id -> the element that shows its outcome
  function settle(history) {
    for (const entry of history || []) {
      const statusId = waiting[entry.id];
      if (statusId) {
        setText(statusId, entry.command + ": " + (entry.accepted ? "applied: " : "refused: ") + entry.message);
        delete waiting[entry.id];
      }
    }
  }
  function live(onUpdate) {
    const source = new EventSource(api + "/events");
    const dot = document.getElementById("live");
    source.addEventListener("update", (event) => { dot.className = "live on"; onUpdate(JSON.parse(event.data)); });
    source.onerror = () => { dot.className = "live off"; };
  }
  let plotlyLoading = null;
  function plotly() {
    // Loaded on first use, after the page's data is up (see _pages.py).
    if (!plotlyLoading) {
      plotlyLoading = new Promise((resolve, reject) => {
        const tag = el("script", null, {src: "/static/plotly.min.js"});
        tag.addEventListener("load", () => resolve(window.Plotly));
        tag.addEventListener("error", () => reject(new Error("plotly.min.js did not load")));
        document.head.append(tag);
      });
    }
    return plotlyLoading;
  }
  function stopTrial(trialId, statusId) {
    if (!window.confirm("Stop trial " + trialId + "? It ends now, where it is.")) {
      setText(statusId, "Trial " + trialId + " not stopped.");
      return;
    }
    guard(sendCommand("stop_trial", {trial_id: trialId}, statusId));
  }
  // A Pareto front in a few words: "Pareto front: 4 trials (00006, 00007, ...)".
  function frontText(front) {
    const ids = front.trial_ids.slice(0, 5).join(", ") + (front.trial_ids.length > 5 ? ", ..." : "");
    return "Pareto front: " + front.size + " trial" + (front.size === 1 ? "" : "s") + (ids ? " (" + ids + ")" : "");
  }
  // A trial's value of the metric, or of each objective ("loss=0.1, score=3").
  function metricText(metric, metrics) {
    if (!Array.isArray(metric)) return fmt(metrics[metric]);
    return metric.map((m) => m + "=" + fmt(metrics[m])).join(", ");
  }
  function guard(promise) { return promise.then(() => problem(""), (err) => problem(err.message)); }

  // -- the list of experiments ---------------------------------------------------------------
  function listPage() {
    async function refresh() {
      const data = await getJSON("/api/experiments");
      const table = document.getElementById("experiments");
      document.getElementById("empty").hidden = data.experiments.length > 0;
      table.hidden = data.experiments.length === 0;
      const rows = data.experiments.map((e) => {
        const tr = el("tr");
        const name = el("td");
        name.append(el("a", e.name, {href: "/e/" + enc(e.name)}));
        const best = e.front ? frontText(e.front) :
          (e.metric || "") + " " + (e.best ? fmt(e.best.value) + " (trial " + e.best.trial_id + ")" : "-");
        tr.append(name, el("td", e.status, {class: "status " + e.status}),
          el("td", e.damaged ? e.damaged : e.trials + ": " + counts(e.counts)),
          el("td", best), el("td", when(e.start_time)), el("td", duration(e.elapsed_s)));
        return tr;
      });
      table.tBodies[0].replaceChildren(...rows);
    }
    guard(refresh());
    setInterval(() => guard(refresh()), 2000);
  }

  // -- an experiment ---------------------------------------------------------------------------
  function experimentPage() {
    const state = {offset: 0, limit: 50, sort: "trial_id", order: "asc", status: "", figuresAt: 0, figuresTimer: null,
      summary: null};

    function renderSummary(s) {
      state.summary = s;
      state.summaryAt = Date.now() / 1000;
      setText("s-status", s.status);
      setText("s-counts", s.trials + ": " + counts(s.counts));
      setText("s-best", s.front ? frontText(s.front) + " by " + s.metric.join(", ") :
        s.best ? (s.metric || "") + " " + fmt(s.best.value) + " (trial " + s.best.trial_id + ")" : "-");
      setText("s-concurrency", s.running + " running, at most " + fmt(s.max_concurrent));
      setText("s-limits", "trials in all " + fmt(s.num_trials) + ", time budget " +
        (s.time_budget_s ? duration(s.time_budget_s) : "none"));
      setText("s-searcher", s.searcher || "-");
      setText("s-scheduler", s.scheduler || "-");
      setText("s-rungs", s.rungs && s.rungs.length ? s.rungs.map(fmt).join(", ") : "-");
      const damaged = document.getElementById("s-damaged");
      damaged.hidden = !s.damaged;
      damaged.textContent = s.damaged ? "Damaged: " + s.damaged : "";
      if (!readOnly) {
        // Controls only while a live driver can take them; otherwise the reason instead.
        document.getElementById("controls").hidden = Boolean(s.not_steerable);
        const why = document.getElementById("no-controls");
        why.hidden = !s.not_steerable;
        why.textContent = s.not_steerable ? "No controls: " + s.not_steerable : "";
      }
      tick();
      const history = s.history || [];
      document.getElementById("no-commands").hidden = history.length > 0;
      const table = document.getElementById("commands");
      table.hidden = history.length === 0;
      table.tBodies[0].replaceChildren(...history.slice().reverse().map((h) => {
        const tr = el("tr");
        const args = Object.keys(h.args || {}).map((k) => k + "=" + fmt(h.args[k])).join(" ");
        tr.append(el("td", when(h.time)), el("td", h.origin), el("td", h.command + (args ? " " + args : "")),
          el("td", (h.accepted ? "applied: " : "refused: ") + h.message, {class: h.accepted ? "ok" : "refused"}));
        return tr;
      }));
      settle(history);
    }
    function tick() {
      // The experiment's run time (the time between its runs left out), counting on while it runs.
      const s = state.summary;
      if (!s || s.elapsed_s === null || s.elapsed_s === undefined) return;
      const since = s.status === "RUNNING" ? Date.now() / 1000 - state.summaryAt : 0;
      setText("s-elapsed", duration(s.elapsed_s + since));
    }

    async function loadSummary() { renderSummary(await getJSON(api)); }

    async function loadTable() {
      const q = new URLSearchParams({offset: state.offset, limit: state.limit, sort: state.sort, order: state.order,
        status: state.status});
      const page = await getJSON(api + "/trials?" + q);
      // Several objectives: a column each, and where the trial stands on the Pareto front.
      const values = page.objectives ? [["front", "front"]].concat(page.objectives.map((m) => ["objective." + m, m]))
        : [["value", page.metric || "value"]];
      const columns = [["trial_id", "trial"], ["status", "status"], ["iteration", "reports"]].concat(values,
        [["time_total_s", "time (s)"], ["num_failures", "failures"]], page.params.map((p) => ["config." + p, p]));
      const head = el("tr");
      for (const [key, label] of columns) {
        const th = el("th", label + (state.sort === key ? (state.order === "asc" ? " ▲" : " ▼") : ""),
          {"data-sort": key, class: "sortable", title: "sort by " + label});
        th.addEventListener("click", () => {
          state.order = state.sort === key && state.order === "asc" ? "desc" : "asc";
          state.sort = key;
          state.offset = 0;
          guard(loadTable());
        });
        head.append(th);
      }
      if (!readOnly) head.append(el("th", ""));
      document.querySelector("#trials thead").replaceChildren(head);
      const rows = page.rows.map((r) => {
        const tr = el("tr", null, {"data-trial": r.trial_id, "data-status": r.status});
        const link = el("td");
        link.append(el("a", r.trial_id, {href: "/e/" + enc(exp) + "/t/" + enc(r.trial_id)}));
        const status = r.status === "DAMAGED" ? "damaged: " + r.note : r.status.toLowerCase();
        tr.append(link, el("td", status, {class: "status " + r.status}), el("td", fmt(r.iteration), {class: "num"}));
        if (page.objectives) {
          tr.append(el("td", r.front === null || r.front === undefined ? "" : "★ " + (r.front + 1), {class: "num front"}));
          for (const m of page.objectives) tr.append(el("td", fmt(r.values[m]), {class: "num"}));
        } else {
          tr.append(el("td", fmt(r.value), {class: "num"}));
        }
        tr.append(el("td", seconds(r.time_total_s), {class: "num"}), el("td", fmt(r.num_failures), {class: "num"}));
        for (const p of page.params) tr.append(el("td", fmt(r.config[p])));
        if (!readOnly) {
          const cell = el("td");
          if (r.can_stop) {
            const stop = el("button", "stop", {type: "button", class: "stop", "data-trial": r.trial_id});
            stop.addEventListener("click", () => stopTrial(r.trial_id, "control-status"));
            cell.append(stop);
          } else if (r.can_retry) {
            const retry = el("button", "re-run", {type: "button", class: "retry", "data-trial": r.trial_id});
            retry.addEventListener("click", () => guard(sendCommand("retry_trial", {trial_id: r.trial_id}, "control-status")));
            cell.append(retry);
          }
          tr.append(cell);
        }
        return tr;
      });
      document.querySelector("#trials tbody").replaceChildren(...rows);
      const last = Math.min(page.offset + page.limit, page.total);
      setText("page-info", page.total ? "trials " + (page.offset + 1) + "–" + last + " of " + page.total : "no trials");
      document.getElementById("prev").disabled = page.offset === 0;
      document.getElementById("next").disabled = last >= page.total;
    }

    async function loadFigures() {
      state.figuresAt = Date.now();
      const [data, Plotly] = await Promise.all([getJSON(api + "/figures"), plotly()]);
      setText("figures-message", data.message || "");
      const box = document.getElementById("figures");
      const drawn = [];
      for (const f of data.figures) {
        let section = document.getElementById("fig-" + f.key);
        if (!section) {
          section = el("div", null, {id: "fig-" + f.key, class: "figure-section"});
          section.append(el("h3", f.title), el("p", "", {class: "caption"}), el("div", null, {class: "rt-figure"}));
          box.append(section);
        }
        section.querySelector("h3").textContent = f.title;
        section.querySelector(".caption").textContent = f.skipped || f.caption || "";
        const div = section.querySelector(".rt-figure");
        if (f.skipped) { div.hidden = true; continue; }
        div.hidden = false;
        drawn.push(Plotly.react(div, f.spec.data, f.spec.layout, {responsive: true, displaylogo: false})
          .then(() => { div.dataset.drawn = "true"; }));
      }
      await Promise.all(drawn);
      box.dataset.figuresDrawn = String(drawn.length);
    }
    function figuresSoon() {
      // Figures read every trial's history: at most one build every 2 s from this page.
      if (state.figuresTimer) return;
      const wait = Math.max(0, 2000 - (Date.now() - state.figuresAt));
      state.figuresTimer = setTimeout(() => { state.figuresTimer = null; guard(loadFigures()); }, wait);
    }

    document.getElementById("status-filter").addEventListener("change", (event) => {
      state.status = event.target.value;
      state.offset = 0;
      guard(loadTable());
    });
    document.getElementById("prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - state.limit);
      guard(loadTable());
    });
    document.getElementById("next").addEventListener("click", () => { state.offset += state.limit; guard(loadTable()); });
    if (!readOnly) {
      document.getElementById("limits").addEventListener("submit", (event) => {
        event.preventDefault();
        const form = event.target;
        const args = {};
        for (const name of ["max_concurrent", "num_trials", "time_budget_s"]) {
          if (form.elements[name].value !== "") args[name] = Number(form.elements[name].value);
        }
        if (!Object.keys(args).length) { setText("control-status", "Enter a limit to change first."); return; }
        guard(sendCommand("set_limits", args, "control-status"));
      });
      document.getElementById("end-experiment").addEventListener("click", () => {
        if (!window.confirm("End experiment " + exp + "? Every running trial is stopped and no new trial starts.")) {
          setText("control-status", "Not ended.");
          return;
        }
        guard(sendCommand("end_experiment", {}, "control-status"));
      });
    }
    // The figures only once the summary and the table are up: they are the slow part.
    guard(Promise.all([loadSummary(), loadTable()])).then(figuresSoon);
    setInterval(tick, 1000);
    live((summary) => { renderSummary(summary); guard(loadTable()); figuresSoon(); });
  }

  // -- a trial -------------------------------------------------------------------------------
  function trialPage() {
    const trial = body.dataset.trial;
    const url = api + "/t/" + enc(trial);
    let logOffset = "tail";
    // One read of the log at a time, each from where the last ended: the page's first load
    // and the first live update both ask for it, and each would append the same text.
    let logReads = Promise.resolve();

    async function refresh() {
      const t = await getJSON(url);
      const r = t.record;
      setText("t-status", r.status);
      setText("t-iteration", fmt(r.iteration));
      setText("t-value", t.metric && r.metrics ? metricText(t.metric, r.metrics) : "-");
      setText("t-time", seconds(r.time_total_s, " s"));
      setText("t-failures", fmt(r.num_failures));
      setText("t-note", r.note || "-");
      if (!readOnly) {
        document.getElementById("stop-trial").hidden = !t.can_stop;
        document.getElementById("retry-trial").hidden = !t.can_retry;
      }
      document.getElementById("damaged-section").hidden = !t.damaged;
      setText("damaged", t.damaged || "");
      document.querySelector("#config tbody").replaceChildren(...Object.keys(t.config).map((k) => {
        const tr = el("tr");
        tr.append(el("th", k), el("td", fmt(t.config[k])));
        return tr;
      }));
      const rows = t.rows;
      if (rows.length) {
        const last = rows[rows.length - 1];
        setText("t-iteration", fmt(last.iteration));
        if (t.metric) setText("t-value", metricText(t.metric, last));
        setText("t-time", seconds(last.time_total_s, " s"));
      }
      const keys = [...new Set(rows.flatMap((row) => Object.keys(row)))].filter((k) => k !== "timestamp");
      const head = el("tr");
      keys.forEach((k) => head.append(el("th", k)));
      document.querySelector("#rows thead").replaceChildren(head);
      document.querySelector("#rows tbody").replaceChildren(...rows.slice(-500).map((row) => {
        const tr = el("tr");
        keys.forEach((k) => tr.append(el("td", fmt(row[k]), {class: "num"})));
        return tr;
      }));
      const metrics = keys.filter((k) => !["iteration", "resource", "time_total_s"].includes(k) &&
        rows.some((row) => typeof row[k] === "number"));
      const x = rows.map((row) => (row.resource !== undefined ? row.resource : row.iteration));
      const traces = metrics.map((k) => ({x: x, y: rows.map((row) => row[k]), name: plotText(k), mode: "lines+markers",
        visible: !t.metric || [].concat(t.metric).includes(k) ? true : "legendonly"}));
      const curve = document.getElementById("curve");
      const Plotly = await plotly();
      await Plotly.react(curve, traces, {template: "plotly_white", height: 360, margin: {l: 60, r: 20, t: 20, b: 40},
        showlegend: true,
        xaxis: {title: {text: rows.length && rows[0].resource !== undefined ? "resource" : "report"}}},
        {responsive: true, displaylogo: false});
      curve.dataset.drawn = "true";
      document.getElementById("checkpoints").replaceChildren(...(t.checkpoints.length ? t.checkpoints : ["none"])
        .map((c) => el("li", c)));
      document.getElementById("error-section").hidden = !t.error;
      setText("error", t.error || "");
      await loadLog();
    }
    function loadLog() {
      logReads = logReads.then(readLog, readLog);
      return logReads;
    }
    async function readLog() {
      const log = await getJSON(url + "/log?offset=" + logOffset);
      const pre = document.getElementById("log");
      if (log.truncated_before) pre.textContent = "[… earlier output not shown]\n";
      if (log.text) pre.append(document.createTextNode(log.text));
      logOffset = log.offset;
      if (logOffset === 0 && !pre.textContent) pre.textContent = "";
    }
    if (!readOnly) {
      document.getElementById("stop-trial").addEventListener("click", () => stopTrial(trial, "control-status"));
      document.getElementById("retry-trial").addEventListener("click",
        () => guard(sendCommand("retry_trial", {trial_id: trial}, "control-status")));
    }
    guard(refresh());
    live((summary) => { settle(summary.history); guard(refresh()); });
  }

  const pages = {list: listPage, experiment: experimentPage, trial: trialPage};
  pages[body.dataset.page]();
})();
