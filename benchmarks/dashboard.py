"""Dashboard benchmarks (issue 16): first paint over a large experiment, server memory, and
what a watching dashboard costs a running sweep.

1. ``paint``: the dashboard (``raytuner dashboard``, in a process of its own) over the load
   test's experiment (``benchmarks/load_test.py``: 2,000 trials, 20,000 reports). Headless
   chromium (Debian's, through Playwright) opens the experiment page twice, the first time
   as soon as the server answers (it reads the experiments in the background from its
   start): the first contentful paint, and the time until the summary and the first page
   of the trial table are filled, from the start of navigation. Then the JSON API on its own (trial table page, sorted by
   the metric, figures), and the server's memory (VmRSS) before and after.
2. ``overhead``: 200-trial trivial sweeps (``overhead.py``'s trainable: 10 reports, 2 at a
   time) on one local Ray, alternating without and with a dashboard watching: a server
   process plus a client process that does what the experiment page does (the event
   stream, and on each update the table page and, at most every 2 s, the figures).

    python benchmarks/load_test.py --runs full --no-tensorboard --storage /tmp/lt
    python benchmarks/dashboard.py paint --experiment /tmp/lt/full/load
    python benchmarks/dashboard.py overhead --repeat 3
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(root: Path) -> tuple[subprocess.Popen, str]:
    """``raytuner dashboard ROOT`` in a child process; its base URL once it answers."""
    import httpx2 as httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "raytuner.cli", "dashboard", str(root), "--port", str(port)],
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/favicon.ico", timeout=1)
            return proc, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the dashboard did not start") from None
            time.sleep(0.05)


# -- 1. first paint ----------------------------------------------------------------------------
def paint(args: argparse.Namespace) -> None:
    import httpx2 as httpx
    from playwright.sync_api import sync_playwright

    experiment = Path(args.experiment).resolve()
    proc, base = serve(experiment.parent)
    name = experiment.name
    try:
        print(f"dashboard over {experiment} "
              f"({len(list((experiment / 'trials').iterdir()))} trials); server RSS at start {rss_mb(proc.pid):.0f} MB")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
            for run in ("first visit", "second visit"):
                page = browser.new_page()
                page.goto(f"{base}/e/{name}", wait_until="commit")
                page.wait_for_selector("#trials tbody tr", timeout=60_000)
                page.wait_for_function("() => document.getElementById('s-counts').textContent !== '-'")
                table_ms = page.evaluate("() => performance.now()")
                fcp = page.evaluate("() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
                rows = page.evaluate("() => document.querySelectorAll('#trials tbody tr').length")
                print(f"  {run}: first contentful paint {fcp:.0f} ms; summary and trial table ({rows} rows) "
                      f"filled at {table_ms:.0f} ms")
                page.close()
            browser.close()
        with httpx.Client(base_url=base, timeout=120) as http:
            for what, url in (("trial table page", f"/api/e/{name}/trials?limit=50"),
                              ("table sorted by the metric, page 20", f"/api/e/{name}/trials?limit=50&offset=950&sort=value&order=desc"),
                              ("summary", f"/api/e/{name}"),
                              ("figures (first build)", f"/api/e/{name}/figures"),
                              ("figures (cached)", f"/api/e/{name}/figures")):
                t0 = time.perf_counter()
                response = http.get(url)
                response.raise_for_status()
                print(f"  API {what}: {1000 * (time.perf_counter() - t0):.0f} ms, {len(response.content) / 1024:.0f} KB")
        print(f"  server RSS after: {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(10)


# -- 2. the cost to a running sweep ----------------------------------------------------------------
def watch(base: str, name: str) -> None:
    """What the experiment page does, as HTTP: events, then summary, table and figures.
    Runs in a process of its own (as a browser would), not in the driver's."""
    import httpx2 as httpx

    fetched = 0
    last_figures = 0.0
    with httpx.Client(base_url=base, timeout=30) as http:
        print("ready", flush=True)  # imported and connected: a page already open in a browser
        while http.get(f"/api/e/{name}").status_code == 404:
            time.sleep(0.05)
        with http.stream("GET", f"/api/e/{name}/events") as events:
            for line in events.iter_lines():
                if line.startswith("event: update"):
                    http.get(f"/api/e/{name}/trials?limit=50")
                    fetched += 1
                    if time.monotonic() - last_figures > 2:
                        http.get(f"/api/e/{name}/figures")
                        last_figures = time.monotonic()
                    print(fetched, flush=True)


def watcher(base: str, name: str) -> subprocess.Popen:
    """The watching client, started and ready before the sweep: a browser tab already open
    costs the sweep nothing to start, so neither may the client's Python start-up."""
    proc = subprocess.Popen([sys.executable, __file__, "watch", "--base", base, "--name", name],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def stop_watcher(proc: subprocess.Popen) -> int:
    """Stop it; how many updates it fetched."""
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    lines = [line for line in out.split() if line.isdigit()]
    return int(lines[-1]) if lines else 0


def overhead(args: argparse.Namespace) -> None:
    import ray

    sys.path.insert(0, str(Path(__file__).parent))
    import raytuner as rt
    from overhead import raytuner_trainable

    root = Path(tempfile.mkdtemp(prefix="rt-dash-ov-"))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)

    def sweep(name: str) -> float:
        start = time.perf_counter()
        rt.Tuner(raytuner_trainable, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=args.trials,
                 max_concurrent=2, storage_path=root, name=name, verbose=0, keep_workers_s=0).fit()
        return time.perf_counter() - start

    sweep("warmup")
    proc, base = serve(root)
    try:
        # The server's first figure build starts its builder process: not part of the cost.
        warm = watcher(base, "watched-warmup")
        sweep("watched-warmup")
        stop_watcher(warm)
        without, with_, ratios = [], [], []
        for i in range(args.repeat):
            alone = sweep(f"alone{i}")
            client = watcher(base, f"watched{i}")
            watched = sweep(f"watched{i}")
            fetched = stop_watcher(client)
            without.append(alone)
            with_.append(watched)
            ratios.append(watched / alone)
            print(f"  {args.trials} trials: alone {alone:.2f} s, with the dashboard watching {watched:.2f} s "
                  f"({fetched} updates fetched): {100 * (watched / alone - 1):+.1f}%", flush=True)
        print(f"  median cost {100 * (statistics.median(ratios) - 1):+.1f}% "
              f"(alone median {statistics.median(without):.2f} s, watched median {statistics.median(with_):.2f} s); "
              f"server RSS {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(10)
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("paint")
    p.add_argument("--experiment", required=True, help="the load test's experiment folder (.../full/load)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p = sub.add_parser("overhead")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("watch", help=argparse.SUPPRESS)
    p.add_argument("--base")
    p.add_argument("--name")
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    if args.what == "watch":
        watch(args.base, args.name)
        return
    {"paint": paint, "overhead": overhead}[args.what](args)


if __name__ == "__main__":
    main()
