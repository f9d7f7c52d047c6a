"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright)
during a running sweep on local Ray: reports appear without a reload, the page's
controls change the experiment, and the page has no script errors.

The sweep runs in the test's main thread; the browser runs in another, and every step
waits on what the page or the experiment's files show, never on a fixed sleep.
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

from tests._helpers import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         # Parallel coordinates draw with WebGL: software GL stands in for a GPU.
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
EVIL = "<script>alert(1)</script>"

pytestmark = [
    pytest.mark.usefixtures("ray_cluster"),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]
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
        page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
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
        found["log"] = page.text_content("#log")
        page.wait_for_selector("#curve[data-drawn=true]", timeout=15_000)
        browser.close()
    found["errors"] = errors


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
    trials = {t.trial_id: t for t in results.trials}
    assert trials["00000"].status is TrialStatus.STOPPED
    assert json.loads((path / "trials/00000/trial.json").read_text())["note"] == "stopped by dashboard"
    history = [(h["command"], h["origin"], h["accepted"]) for h in control_store(path).history()]
    assert history[:2] == [("set_limits", "dashboard", True), ("stop_trial", "dashboard", True)]
