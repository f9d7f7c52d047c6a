"""The HTML report, from experiments written straight into the storage layout (no Ray).

The last test loads the report in a real headless browser (Debian's chromium, installed
by .ci/run) with ``--dump-dom``. A probe injected into a copy of the page records errors
(``error`` and ``unhandledrejection`` events, ``console.error``, any ``alert`` from
injected markup) from the first script on, and after the virtual time budget writes what
each figure's div holds into the DOM, which chromium then prints.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner._formats import dumps
from raytuner._report import _data
from raytuner._report.importance import importance
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner.schedulers import ASHAScheduler, FIFOScheduler, HyperbandScheduler, MedianStoppingScheduler, Scheduler

pytest.importorskip("plotly")

EVIL = "<script>alert(1)</script>"
PROMOTION_ASHA = ASHAScheduler(max_resource=9, variant="promotion")


def write_experiment(root: Path, name: str = "exp", n: int = 12, *, scheduler: Scheduler = PROMOTION_ASHA,
                     evil: bool = False, metric: str = "loss", status: str = "COMPLETED") -> Path:
    """An experiment in the on-disk layout: lr matters most, w a little, opt not at all."""
    storage = ExperimentStorage(root / name)
    storage.create()
    opt_key = "<i>o</i>&pt" if evil else "opt"
    now = time.time()
    storage.write_experiment({
        "name": name, "metric": metric, "mode": "min", "searcher": "RandomSearcher", "scheduler": repr(scheduler),
        "trainable": "sweeps:train", "trainable_file": "/home/user/sweeps.py",
        "scheduler_config": scheduler.config(), "milestones": scheduler.milestones(),
        "status": status, "created": "2024-01-01T00:00:00", "start_time": now - 100, "end_time": now,
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}, "units": {"type": "choice", "options": [32, 64]},
                  opt_key: {"type": "choice", "options": ["adam", "sgd"]}, "w": {"type": "uniform", "low": 0, "high": 1}},
    })
    rng = random.Random(0)
    for i in range(n):
        trial_id = f"{i:05d}"
        config = {"lr": 10 ** rng.uniform(-4, -1), "units": rng.choice([32, 64]),
                  opt_key: rng.choice(["adam", EVIL if evil else "sgd"]), "w": rng.random()}
        storage.write_config(trial_id, config)
        trial = Trial(trial_id, config)
        steps = [1, 3, 9][i % 3]
        rows = []
        for it in range(1, steps + 1):
            loss = (math.log10(config["lr"]) + 2.5) ** 2 + 0.3 * config["w"] + 1 / it
            rows.append({"loss": loss, "acc": 1 - loss / 10, "iteration": it, "time_total_s": it * 0.1, "timestamp": now})
            trial.observe(it, it, {"loss": loss, "acc": 1 - loss / 10}, loss, it * 0.1)
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus.COMPLETED if steps == 9 else TrialStatus.STOPPED
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def figure_specs(html: str) -> dict[str, dict]:
    """Figure key -> plotly JSON, as the page embeds them."""
    specs = dict(re.findall(r'<script type="application/json" id="(rt-spec-\d+)">(.*?)</script>', html, re.S))
    keys = re.findall(r'<div class="rt-figure" id="rt-figure-([\w-]+)" data-spec="(rt-spec-\d+)">', html)
    return {key: json.loads(specs[spec]) for key, spec in keys}


def external_resources(html: str) -> list[str]:
    """src/href of tags that would load something (script contents are not parsed as tags)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(f"{tag} {v}" for k, v in attrs if k in ("src", "href") and tag in ("script", "link", "img", "iframe"))

    Parser().feed(html)
    return found


@pytest.fixture
def evil_report(tmp_path):
    path = write_experiment(tmp_path, evil=True)
    return rt.load(path).report(), path


def resumed_a_day_later(path: Path, run_time_s: float = 42.5) -> None:
    """``path``'s experiment.json as after two runs a day apart that took ``run_time_s`` together."""
    storage = ExperimentStorage(path)
    meta = storage.read_experiment()
    storage.write_experiment({**meta, "start_time": meta["end_time"] - 86_400, "run_time_s": run_time_s,
                              "run_time_at": meta["end_time"]})


def test_the_header_gives_the_run_time_without_the_time_between_runs(tmp_path):
    older = write_experiment(tmp_path, "older")  # written before the run time was kept: its span
    assert "<tr><th>run time</th><td>100.0 s</td></tr>" in rt.load(older).report().read_text()
    resumed_a_day_later(older)
    assert "<tr><th>run time</th><td>42.5 s</td></tr>" in rt.load(older).report().read_text()


def test_report_is_self_contained_and_escapes_user_data(evil_report):
    out, path = evil_report
    assert out == path / "report.html"
    html = out.read_text()
    assert external_resources(html) == []  # plotly.js is inline: the page works offline
    assert "Plotly.newPlot" in html
    assert EVIL not in html  # neither in the table, the header nor the figure JSON
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text in the table
    assert "&lt;i&gt;o&lt;/i&gt;&amp;pt" in html  # a parameter name is user data too
    specs = figure_specs(html)
    assert list(specs) == ["history", "parallel", "learning_curves", "slices", "contour", "importance", "durations"]
    # Plotly draws a subset of HTML in labels: the value must arrive entity-escaped.
    slice_ticks = json.dumps(specs["slices"]["data"])
    assert EVIL not in slice_ticks and "&lt;script&gt;" in slice_ticks


def test_figures_show_rungs_pauses_stops_and_best_so_far(evil_report):
    out, path = evil_report
    specs = figure_specs(out.read_text())
    curves = specs["learning_curves"]
    assert sorted(shape["x0"] for shape in curves["layout"]["shapes"]) == [1, 3]  # the rungs below R=9
    marks = {trace["name"]: trace for trace in curves["data"] if trace.get("mode") == "markers"}
    assert set(marks) == {"paused, resumed", "stopped"}
    # Trials that went on past a rung under promotion ASHA were paused there.
    assert sorted(set(marks["paused, resumed"]["x"])) == [1, 3]
    assert len(marks["stopped"]["x"]) == 8  # 8 of 12 trials stopped (at 1 or 3)
    history = specs["history"]
    best = next(t for t in history["data"] if t["name"] == "best so far")
    assert best["y"] == sorted(best["y"], reverse=True)  # never gets worse
    results = rt.load(path)
    assert best["y"][-1] == pytest.approx(results.best.metrics["loss"])


def test_importance_ranks_the_parameter_that_drives_the_metric(tmp_path):
    data = _data.collect(rt.load(write_experiment(tmp_path, n=30)))
    scores = importance(data)
    assert next(iter(scores)) == "lr"
    assert scores["lr"] > 0.5 > scores["opt"]


@pytest.mark.parametrize(("scheduler", "rungs", "pauses"), [
    (PROMOTION_ASHA, [1, 3], True),
    (ASHAScheduler(max_resource=27, brackets=2), [1, 3, 9], False),
    (HyperbandScheduler(max_resource=9), [1, 3], True),
    (MedianStoppingScheduler(), [], False),
    (FIFOScheduler(), [], False),
])
def test_rungs_are_the_milestones_the_scheduler_described(tmp_path, scheduler, rungs, pauses):
    meta = json.loads(dumps({"scheduler_config": scheduler.config(), "milestones": scheduler.milestones()}))
    schedule = _data.schedule_from_meta(meta)
    assert (schedule.name, schedule.rungs, schedule.pauses) == (type(scheduler).__name__, rungs, pauses)


@pytest.mark.parametrize("milestones", [None, "rungs 1 3", {"levels": "1, 3"}, {"levels": [1, "__import__('os')"]}])
def test_missing_or_damaged_milestones_draw_no_rungs(milestones):
    schedule = _data.schedule_from_meta({"scheduler": "X()", "milestones": milestones})
    assert schedule.rungs == [] and schedule.pauses is False


def test_figures_that_cannot_be_drawn_say_why(tmp_path):
    storage = ExperimentStorage(tmp_path / "one")
    storage.create()
    storage.write_experiment({"name": "one", "metric": "loss", "mode": "max", "scheduler": "FIFOScheduler(max_resource=inf)"})
    for i, x in enumerate([0.1, 0.5, 0.9]):
        trial = Trial(f"{i:05d}", {"x": x})
        trial.observe(1, 1, {"loss": x}, -x, 0.1)
        trial.status = TrialStatus.COMPLETED
        storage.write_config(trial.trial_id, trial.config)
        storage.write_trial(trial.trial_id, trial.to_record())
        storage.append_results(trial.trial_id, [{"loss": x, "iteration": 1}])
    html = rt.load(storage.path).report(tmp_path / "out" / "r.html").read_text()
    assert "Not drawn: The contour plot needs two numeric parameters" in html
    assert list(figure_specs(html)) == ["history", "parallel", "learning_curves", "slices", "importance", "durations"]
    assert "trial 00002: loss = 0.9" in html  # mode=max


def test_bad_input_raises_clear_errors(tmp_path):
    empty = ExperimentStorage(tmp_path / "empty")
    empty.create()
    empty.write_experiment({"name": "empty", "metric": "loss", "mode": "min"})
    with pytest.raises(rt.ExperimentError, match="has no trials yet"):
        rt.load(empty.path).report()
    results = rt.load(write_experiment(tmp_path, n=3))
    with pytest.raises(rt.ExperimentError, match=r"No trial of 'exp' reported a finite 'val_acc'.*\['acc', 'loss'\]"):
        results.report(metric="val_acc")
    for trial in results.trials:  # every value of the metric NaN: no other name to suggest
        trial.metrics["loss"] = float("nan")
    with pytest.raises(rt.ExperimentError, match=r"No trial of 'exp' has a finite 'loss' \(3 trials; each one's is NaN"):
        results.report(metric="loss")
    with pytest.raises(rt.ConfigError, match="report: `mode` is 'best', but must be"):
        results.report(mode="best")


# -- in a browser ------------------------------------------------------------------------
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((b for b in map(shutil.which, BROWSERS) if b), None)

_HEAD_PROBE = """<script>
window.__rtErrors = [];
window.addEventListener("error", function (e) { __rtErrors.push("error: " + (e.message || e)); });
window.addEventListener("unhandledrejection", function (e) { __rtErrors.push("rejection: " + e.reason); });
(function () { var ce = console.error; console.error = function () {
  __rtErrors.push("console.error: " + Array.prototype.join.call(arguments, " ")); ce.apply(console, arguments); }; })();
window.alert = function (m) { __rtErrors.push("alert: " + m); };
</script>"""
_TAIL_PROBE = """<script>
setTimeout(function () {
  var figures = [].map.call(document.querySelectorAll("div.rt-figure"), function (d) {
    return {id: d.id, drawn: d.dataset.drawn || null, svg: d.querySelectorAll("svg.main-svg").length,
            traces: (d._fullData || []).length, canvases: d.querySelectorAll("canvas").length,
            marks: d.querySelectorAll(".scatterlayer .point, .scatterlayer path.js-line, .contourlayer path, .barlayer path").length};
  });
  // Plotly's toolbar against the slice plots' titles: boxes that intersect overlap.
  var slices = document.getElementById("rt-figure-slices"), overlaps = [];
  var bar = slices && slices.querySelector(".modebar");
  if (bar) {
    var b = bar.getBoundingClientRect();
    slices.querySelectorAll(".annotation-text").forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom) overlaps.push(t.textContent);
    });
  }
  var wrap = document.querySelector(".table-wrap");
  var out = document.createElement("pre"); out.id = "rt-probe";
  out.textContent = JSON.stringify({errors: __rtErrors, figures: figures, all: document.body.dataset.figuresDrawn || null,
    toolbar: !!bar, toolbarOverlaps: overlaps,
    // The trials box scrolls sideways only: its scroll bar sits right under the table, in view.
    tableScrollsDown: wrap.scrollHeight > wrap.clientHeight + 1});
  document.body.appendChild(out);
}, 5000);
</script>"""


def load_in_browser(html_path, tmp_path) -> dict:
    page = html_path.read_text()
    assert page.count("<head>") == 1 and page.count("</body>") == 1
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + _HEAD_PROBE).replace("</body>", _TAIL_PROBE + "</body>"))
    command = [
        BROWSER, "--headless", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        # Parallel coordinates draw with WebGL: software GL stands in for a GPU.
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
        "--virtual-time-budget=20000", "--dump-dom", probed.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="rt-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium printed no probe (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


@pytest.mark.skipif(BROWSER is None, reason="needs a headless chromium (apt-get install -y chromium); .ci/run installs it")
def test_report_loads_without_errors_and_draws_every_figure(tmp_path):
    out = rt.load(write_experiment(tmp_path, evil=True)).report()
    probe = load_in_browser(out, tmp_path)
    assert probe["errors"] == []  # also: the EVIL config value never ran as a script
    figures = {f["id"].removeprefix("rt-figure-"): f for f in probe["figures"]}
    assert list(figures) == ["history", "parallel", "learning_curves", "slices", "contour", "importance", "durations"]
    assert probe["all"] == "7"
    for key, figure in figures.items():
        assert figure["drawn"] == "true" and figure["svg"] >= 1 and figure["traces"] >= 1, (key, figure)
    assert figures["parallel"]["canvases"] >= 1  # WebGL lines
    for key in ("history", "learning_curves", "slices", "contour", "importance"):
        assert figures[key]["marks"] > 0, (key, figures[key])
    # 12 trial curves + the "paused, resumed" and "stopped" marks + a legend line per status colour.
    assert figures["learning_curves"]["traces"] == 16
    assert probe["toolbar"] and probe["toolbarOverlaps"] == []
    assert probe["tableScrollsDown"] is False


def test_report_history_clips_outliers_and_offers_log_and_a_legend_of_colours(tmp_path):
    from raytuner._storage.experiment import ExperimentStorage

    path = write_experiment(tmp_path)
    storage = ExperimentStorage(path)  # one diverged trial, 1000x worse than the rest
    record, _, _ = storage.read_trial("00005")
    record["metrics"]["loss"] = 1000.0
    storage.write_trial("00005", record)
    html = rt.load(path).report().read_text()
    specs = figure_specs(html)
    layout = specs["history"]["layout"]
    low, high = layout["yaxis"]["range"]
    assert high < 100 and low < min(t.metrics["loss"] for t in rt.load(path).trials)  # the outlier is off the axis
    labels = [b["label"] for b in layout["updatemenus"][0]["buttons"]]
    assert labels == ["clip outliers", "all values", "log scale"]
    assert "leaves out 1 outlying trial" in html
    curves = specs["learning_curves"]
    legend = [t["name"] for t in curves["data"] if t.get("showlegend") is not False and t["mode"] == "lines"]
    assert legend == ["stopped trial", "completed trial"]
    assert "how the trial ended" in curves["layout"]["legend"]["title"]["text"]


def test_importance_not_drawn_says_how_many_trials_have_a_value(tmp_path):
    html = rt.load(write_experiment(tmp_path, n=2)).report().read_text()
    assert "Not drawn: Parameter importance needs at least 3 trials with a finite loss; 2 of the 2 have one." in html

