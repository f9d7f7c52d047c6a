"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

During a running sweep on local Ray: reports appear without a reload, the page's controls
change the experiment, and the page has no script errors. The sweep runs in the test's
main thread; the browser runs in another.

Over experiments written to disk (no Ray): a trial's log shows each line once, a
confirmation guards "End experiment" and "stop", a finished experiment shows no controls,
and user strings reach plotly as text (no <a> element from a metric or a config value),
in the dashboard and in the HTML report.

Every step waits on what the page or the experiment's files show, never on a fixed sleep.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.control import control_store
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial

from tests._helpers import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         # Parallel coordinates draw with WebGL: software GL stands in for a GPU.
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
EVIL = "<script>alert(1)</script>"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")


def steady(config):
    print(f"trial says {config['tag']}")
    for step in range(1, 3000):
        time.sleep(0.05)
        rt.report({"loss": config["x"] / step})


def browse(base: str, path: Path, found: dict) -> None:
    """What a person does on the experiment page; records what the page showed."""
    errors: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        # The stop button asks first; any other dialog (an alert from injected markup) is an error.
        page.on("dialog", lambda dialog: dialog.accept() if dialog.type == "confirm" and dialog.message.startswith(
            "Stop trial 00000?") else (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.goto(f"{base}/e/steer")
        row = 'tr[data-trial="00000"]'
        page.wait_for_selector(f'{row}[data-status="RUNNING"]', timeout=30_000)
        reports = int(page.text_content(f"{row} td:nth-child(3)"))
        # A new report shows up without a reload (the page listens to server-sent events).
        page.wait_for_function(
            "([sel, n]) => { const c = document.querySelector(sel); return c && Number(c.textContent) > n; }",
            arg=[f"{row} td:nth-child(3)", reports], timeout=10_000)
        found["reports_grew"] = True

        page.fill('input[name="max_concurrent"]', "2")
        page.click('#limits button[type="submit"]')
        page.wait_for_function("() => document.getElementById('control-status').textContent.includes('applied')",
                               timeout=15_000)
        found["limits_status"] = page.text_content("#control-status")
        page.wait_for_function("() => document.getElementById('s-concurrency').textContent.startsWith('2 running')",
                               timeout=30_000)

        page.click(f"{row} button.stop")
        page.wait_for_function("() => document.getElementById('control-status').textContent.includes('stop_trial: ')",
                               timeout=15_000)
        found["stop_status"] = page.text_content("#control-status")
        page.wait_for_selector(f'{row}[data-status="STOPPED"]', timeout=30_000)
        page.wait_for_function("() => Number(document.getElementById('figures').dataset.figuresDrawn) >= 5",
                               timeout=30_000)
        # Drawn with WebGL, which plotly compiles with `new Function`: the page's CSP allows it.
        found["parallel"] = page.evaluate(
            "() => [document.querySelectorAll('#fig-parallel canvas').length,"
            " document.getElementById('fig-parallel').textContent.includes('WebGL is not supported')]")
        found["evil_cell"] = page.text_content('tr[data-trial="00001"]')
        found["commands"] = page.text_content("#commands")
        page.screenshot(path=str(path.parent / "dashboard.png"), full_page=False)

        page.goto(f"{base}/e/steer/t/00001")
        page.wait_for_function("() => document.getElementById('log').textContent.includes('trial says')",
                               timeout=15_000)
        # Once the page has taken its first live update too, the log still shows once.
        page.wait_for_selector("#live.on", timeout=15_000)
        page.wait_for_selector("#curve[data-drawn=true]", timeout=15_000)
        found["log"] = page.text_content("#log")
        browser.close()
    found["errors"] = errors


@pytest.mark.usefixtures("ray_cluster")
def test_the_dashboard_shows_a_running_sweep_live_and_steers_it(storage):
    from raytuner.dashboard import start

    path = storage / "steer"
    found: dict = {}
    failure: list[BaseException] = []

    def drive():
        try:
            wait_for(lambda: (path / "trials/00000/results.jsonl").is_file(), "the sweep to report")
            browse(base, path, found)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(exc)
        finally:
            if (path / "experiment.json").is_file():
                try:
                    control_store(path).submit("end_experiment", {}, origin="test")
                except Exception:  # noqa: BLE001 - already over
                    pass

    storage.mkdir(parents=True)
    with start(storage) as dash:
        base = f"http://127.0.0.1:{dash.port}"
        browser = threading.Thread(target=drive, daemon=True)
        browser.start()
        results = rt.Tuner(steady, space={"x": rt.uniform(1, 2), "tag": rt.choice([EVIL])}, metric="loss",
                           num_trials=6, max_concurrent=1, storage_path=storage, name="steer", verbose=0).fit()
        browser.join(60)
    if failure:
        raise failure[0]
    assert found["errors"] == []
    assert found["reports_grew"]
    assert found["parallel"][0] >= 1 and not found["parallel"][1]
    assert "set_limits: applied: max_concurrent=2" in found["limits_status"]
    assert "stop_trial: applied: trial 00000 stopped" in found["stop_status"]
    assert EVIL in found["evil_cell"] and EVIL in found["log"]  # shown as text, never run (no dialog)
    assert found["log"].count("trial says") == 1
    trials = {t.trial_id: t for t in results.trials}
    assert trials["00000"].status is TrialStatus.STOPPED
    assert json.loads((path / "trials/00000/trial.json").read_text())["note"] == "stopped by dashboard"
    history = [(h["command"], h["origin"], h["accepted"]) for h in control_store(path).history()]
    assert history[:2] == [("set_limits", "dashboard", True), ("stop_trial", "dashboard", True)]


# -- experiments on disk: no Ray ---------------------------------------------------------------
LINK_METRIC = '<a href="https://evil.example/metric">loss</a>'
LINK_PARAM = '<a href="https://evil.example/param">opt</a>'
LINK_VALUE = '<a href="https://evil.example/value">adam</a>'
_NO_LINKS = """() => ({
  links: document.querySelectorAll('[href*="evil.example"], svg a').length,
  texts: Array.from(document.querySelectorAll('svg text')).map((t) => t.textContent).join('\\n'),
})"""


def _write(root: Path, name: str, *, status: str, metric: str = "loss", param: str = "opt", value: str = "sgd",
           n: int = 6) -> ExperimentStorage:
    """An experiment in the on-disk layout, its labels as given."""
    storage = ExperimentStorage(root / name)
    storage.create()
    now = time.time()
    storage.write_experiment({"name": name, "metric": metric, "mode": "min", "status": status, "searcher": "RandomSearcher",
                              "scheduler": "FIFOScheduler()", "start_time": now - 60, "end_time": now,
                              "max_concurrent": 2, "num_trials": n})
    for i in range(n):
        trial_id = f"{i:05d}"
        config = {"lr": 10 ** (-1 - i / 2), "w": i / n, param: [value, "adam"][i % 2]}
        storage.write_config(trial_id, config)
        trial = Trial(trial_id, config)
        rows = []
        for step in range(1, 4):
            loss = config["lr"] * 10 + config["w"] + 1 / step
            rows.append({metric: loss, "iteration": step, "time_total_s": step * 0.1, "timestamp": now})
            trial.observe(step, step, {metric: loss}, loss, step * 0.1)
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus.COMPLETED
        storage.write_trial(trial_id, trial.to_record())
    return storage


@pytest.fixture(scope="module")
def chromium():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path):
    """A dashboard over ``done`` (COMPLETED), ``live`` (RUNNING, its driver lock held by this
    process, trial 00001 running with a log) and ``labels`` (user strings full of links)."""
    from raytuner._storage.lock import DriverLock
    from raytuner.dashboard import start

    root = tmp_path / "results"
    _write(root, "done", status="COMPLETED")
    live = _write(root, "live", status="RUNNING")
    record = json.loads((live.trial_path("00001") / "trial.json").read_text())
    live.write_trial("00001", {**record, "status": "RUNNING"})
    live.append_log("00001", "".join(f"line {i}\n" for i in range(1, 6)))
    _write(root, "labels", status="COMPLETED", metric=LINK_METRIC, param=LINK_PARAM, value=LINK_VALUE)
    with DriverLock(live.path).acquire(), start(root) as dash:
        yield f"http://127.0.0.1:{dash.port}", root


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    yield page
    context.close()
    assert errors == []


def test_a_trials_page_shows_each_log_line_once(site, page):
    base, root = site
    live = ExperimentStorage(root / "live")
    page.goto(f"{base}/e/live/t/00001")
    page.wait_for_function("() => document.getElementById('log').textContent.includes('line 5')", timeout=15_000)
    page.wait_for_selector("#live.on", timeout=15_000)  # its first live update has come too
    # A new report and new output: the page reads on from where it was.
    live.append_log("00001", "line 6\n")
    live.append_results("00001", [{"loss": 0.5, "iteration": 4, "time_total_s": 0.4, "timestamp": time.time()}])
    page.wait_for_function("() => document.getElementById('log').textContent.includes('line 6')", timeout=15_000)
    log = page.text_content("#log")
    assert [log.count(f"line {i}\n") for i in range(1, 7)] == [1] * 6, log


def test_end_experiment_and_stop_ask_first(site, page):
    base, root = site
    store = control_store(root / "live")
    answers: list[str] = []
    page.on("dialog", lambda dialog: (answers.append(dialog.message), getattr(dialog, answer[0])()))
    answer = ["dismiss"]
    page.goto(f"{base}/e/live")
    page.wait_for_selector("#controls:not([hidden])", timeout=15_000)
    # A live driver's run time counts on, a second at a time, from over the minute it started.
    first = page.wait_for_function("() => /^1m \\d+s$/.test(document.getElementById('s-elapsed').textContent) && "
                                   "document.getElementById('s-elapsed').textContent", timeout=15_000).json_value()
    page.wait_for_function(f"() => document.getElementById('s-elapsed').textContent !== {first!r}", timeout=15_000)
    page.click("#end-experiment")
    page.wait_for_function("() => document.getElementById('control-status').textContent === 'Not ended.'")
    page.click('tr[data-trial="00001"] button.stop')
    page.wait_for_function("() => document.getElementById('control-status').textContent.includes('not stopped')")
    run_id = store.storage.live_driver().run_id
    assert store.take(run_id) == []  # dismissed: nothing sent
    answer[0] = "accept"
    page.click("#end-experiment")
    page.wait_for_function("() => document.getElementById('control-status').textContent.includes('sent')")
    page.click('tr[data-trial="00001"] button.stop')
    page.wait_for_function("() => document.getElementById('control-status').textContent.includes('stop_trial sent')")
    assert [(c.command, c.args, c.origin) for c in store.take(run_id)] == [
        ("end_experiment", {}, "dashboard"), ("stop_trial", {"trial_id": "00001"}, "dashboard")]
    assert answers[0].startswith("End experiment live?") and answers[1].startswith("Stop trial 00001?")
    assert len(answers) == 4


def test_a_finished_experiment_shows_no_controls(site, page):
    base, _ = site
    page.goto(f"{base}/e/done")
    page.wait_for_function("() => document.getElementById('s-status').textContent === 'COMPLETED'", timeout=15_000)
    page.wait_for_selector('tr[data-trial="00000"]', timeout=15_000)
    assert not page.is_visible("#controls") and not page.is_visible("#end-experiment")
    assert page.text_content("#no-controls").startswith("No controls: It is completed: no driver runs it")
    assert page.query_selector_all("#trials button") == []
    # Its run time (the summary's elapsed_s: 60 s from its start to its end), not counting on.
    page.wait_for_function("() => document.getElementById('s-elapsed').textContent === '1m 0s'", timeout=15_000)
    page.goto(f"{base}/e/done/t/00000")
    page.wait_for_function("() => document.getElementById('t-status').textContent === 'COMPLETED'", timeout=15_000)
    assert not page.is_visible("#stop-trial") and not page.is_visible("#retry-trial")


def test_user_strings_reach_plotly_as_text_in_the_dashboard_and_the_report(site, page):
    base, root = site
    page.on("dialog", lambda dialog: (dialog.dismiss(), pytest.fail(f"a dialog opened: {dialog.message}")))
    page.goto(f"{base}/e/labels")
    page.wait_for_function("() => Number(document.getElementById('figures').dataset.figuresDrawn) >= 5",
                           timeout=30_000)
    dashboard = page.evaluate(_NO_LINKS)
    page.goto(f"{base}/e/labels/t/00000")
    page.wait_for_selector("#curve[data-drawn=true]", timeout=15_000)
    trial = page.evaluate(_NO_LINKS)
    page.goto((rt.load(root / "labels").report()).as_uri())
    page.wait_for_selector("body[data-figures-drawn='7']", timeout=30_000)
    report = page.evaluate(_NO_LINKS)
    for where, found in (("dashboard", dashboard), ("trial page", trial), ("report", report)):
        assert found["links"] == 0, where
        assert LINK_METRIC in found["texts"], where  # drawn as the text it is
    for where, found in (("dashboard", dashboard), ("report", report)):
        assert LINK_PARAM in found["texts"] and LINK_VALUE in found["texts"], where


def test_damaged_files_show_as_damaged_with_the_file_and_the_fault(site, page):
    base, root = site
    # A running trial's files are read again when they change (a finished one's never are).
    (root / "live/trials/00001/trial.json").write_text("{torn")
    (root / "labels/experiment.json").write_text("[]")
    page.goto(f"{base}/e/live")
    cell = 'tr[data-trial="00001"] td.status'
    page.wait_for_selector(f"{cell}.DAMAGED", timeout=15_000)
    assert page.text_content(cell).startswith("damaged: live/trials/00001/trial.json: not valid JSON")
    page.goto(f"{base}/e/live/t/00001")
    page.wait_for_selector("#damaged-section:not([hidden])", timeout=15_000)
    assert page.text_content("#t-status") == "DAMAGED"
    page.goto(f"{base}/e/labels")
    page.wait_for_selector("#s-damaged:not([hidden])", timeout=15_000)
    assert page.text_content("#s-damaged") == "Damaged: labels/experiment.json: it holds a list, not an object"
    assert page.text_content("#no-controls").startswith("No controls: Its experiment.json is damaged")
    page.goto(base)
    page.wait_for_selector("#experiments:not([hidden]) tbody tr", timeout=15_000)
    assert "labels/experiment.json: it holds a list" in page.text_content("#experiments")


def test_a_multi_objective_experiment_shows_its_front_with_names_as_text(tmp_path, page):
    from raytuner.dashboard import start

    from tests.raytuner.mo_experiment import write_mo_experiment

    root = tmp_path / "results"
    path = write_mo_experiment(root, "pareto", n=12, metrics=("loss", LINK_METRIC), modes=("min", "max"))
    front = [t.trial_id for t in rt.load(path).pareto_front()]
    page.on("dialog", lambda dialog: (dialog.dismiss(), pytest.fail(f"a dialog opened: {dialog.message}")))
    with start(root) as dash:
        base = f"http://127.0.0.1:{dash.port}"
        page.goto(f"{base}/e/pareto")
        page.wait_for_function("() => Number(document.getElementById('figures').dataset.figuresDrawn) >= 8",
                               timeout=30_000)
        assert page.text_content("#s-best").startswith(f"Pareto front: {len(front)} trials ({', '.join(front[:5])}")
        headers = page.eval_on_selector_all("#trials thead th", "ths => ths.map((th) => th.textContent)")
        assert headers[3:6] == ["front", "loss", LINK_METRIC]
        marked = page.eval_on_selector_all("#trials tbody td.front", "tds => tds.filter((td) => td.textContent).length")
        assert marked == len(front)
        found = page.evaluate(_NO_LINKS)
        page.goto(f"{base}/e/pareto/t/{front[0]}")
        page.wait_for_selector("#curve[data-drawn=true]", timeout=15_000)
        assert page.text_content("#t-value").startswith("loss=")
        # Away from the dashboard before it stops: its live updates would fail to reconnect.
        page.goto(rt.load(path).report().as_uri())
        page.wait_for_selector("body[data-figures-drawn='10']", timeout=30_000)
        report = page.evaluate(_NO_LINKS)
    for where, seen in (("dashboard", found), ("report", report)):
        assert seen["links"] == 0, where
        assert LINK_METRIC in seen["texts"], where  # the objective's name drawn as the text it is
