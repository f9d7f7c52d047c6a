"""Take docs/dashboard.png: the experiment page during a sweep, in headless chromium.

A synthetic 60-trial sweep (TPE, promotion ASHA; each report sleeps a little) runs on a
local Ray while the dashboard serves it; once 12 trials have started, chromium (Debian's,
through Playwright) shoots the experiment page with its figures drawn.

    python docs/dashboard_screenshot.py [OUT.png]
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from pathlib import Path

import raytuner as rt
from raytuner.dashboard import start
from raytuner.schedulers import ASHAScheduler

FLAGS = ["--headless", "--no-sandbox", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         # Parallel coordinates draw with WebGL: software GL stands in for a GPU.
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def train(config):
    for epoch in range(1, 28):
        time.sleep(0.3)
        loss = (math.log10(config["lr"]) + 2.3) ** 2 + 0.4 * config["dropout"] + 2.0 / (epoch * config["units"] / 64)
        print(f"epoch {epoch}: loss {loss:.4f}")
        rt.report({"val_loss": loss, "epoch": epoch})


def shoot(base: str, root: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    while len(list((root / "demo" / "trials").glob("*/trial.json"))) < 12:
        time.sleep(0.2)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1900})
        page.goto(f"{base}/e/demo")
        page.wait_for_function("() => Number(document.getElementById('figures').dataset.figuresDrawn) >= 6",
                               timeout=60_000)
        time.sleep(1.0)  # let plotly finish its transitions
        page.screenshot(path=str(out), full_page=False)
        browser.close()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("dashboard.png")).resolve()
    root = Path(tempfile.mkdtemp(prefix="rt-shot-"))
    space = {"lr": rt.loguniform(1e-4, 1e-1), "units": rt.choice([32, 64, 128]), "dropout": rt.uniform(0, 0.5)}
    with start(root) as dash:
        shooter = threading.Thread(target=shoot, args=(f"http://127.0.0.1:{dash.port}", root, out))
        shooter.start()
        rt.Tuner(train, space=space, metric="val_loss", num_trials=60, max_concurrent=2, name="demo", storage_path=root,
                 scheduler=ASHAScheduler(max_resource=27, variant="promotion"), resource_attr="epoch", verbose=0,
                 seed=3).fit()
        shooter.join()
    print(out)


if __name__ == "__main__":
    main()
