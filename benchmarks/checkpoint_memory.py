"""What big checkpoints cost the driver: its peak memory and the sweep's wall time, raytuner
against Ray Tune, in one run.

4 trials x 5 reports, each report with a checkpoint of ``--mb`` MB (one file), 2 trials at a
time, on a local Ray with 2 CPUs; each side keeps the newest checkpoint of each trial
(raytuner's default ``checkpoints_to_keep=1``, Ray Tune's ``num_to_keep=1``) in a storage
folder on the same disk. Each run is a fresh process (its own local Ray, started 5 s
before the sweep), so its peak RSS (``ru_maxrss``) is that run's; the sides alternate,
raytuner first. The wall time is ``fit()``'s.

raytuner's workers put each checkpoint into the storage themselves (a copy into a hidden
folder, fsynced, renamed into place); the driver records the folder's name. Ray Tune's
workers copy theirs into the storage path too (no fsync).

    python benchmarks/checkpoint_memory.py                       # 256 and 64 MB, 3 rounds
    python benchmarks/checkpoint_memory.py --mb 256 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIALS = 4
REPORTS = 5
BLOCK = 16 * 1024 * 1024
SETTLE_S = 5.0


def write_checkpoint(folder: str, mb: int, step: int) -> None:
    """``mb`` MB in one file, written in blocks so the trainable itself stays small."""
    left = mb * 1024 * 1024
    block = bytes([step]) * BLOCK
    with open(os.path.join(folder, "weights.bin"), "wb") as handle:
        while left > 0:
            handle.write(block[:min(left, BLOCK)])
            left -= BLOCK


def raytuner_trainable(config):
    import raytuner as rt

    folder = tempfile.mkdtemp()
    for step in range(1, REPORTS + 1):
        write_checkpoint(folder, config["mb"], step)
        rt.report({"loss": config["x"] / step}, checkpoint=folder)
    shutil.rmtree(folder)


def tune_trainable(config):
    from ray import tune

    folder = tempfile.mkdtemp()
    for step in range(1, REPORTS + 1):
        write_checkpoint(folder, config["mb"], step)
        tune.report({"loss": config["x"] / step}, checkpoint=tune.Checkpoint.from_directory(folder))
    shutil.rmtree(folder)


def run_raytuner(mb: int, root: str) -> float:
    import raytuner as rt

    start = time.perf_counter()
    results = rt.Tuner(raytuner_trainable, space={"x": rt.uniform(1, 2), "mb": mb}, metric="loss",
                       num_trials=TRIALS, max_concurrent=2, storage_path=root, verbose=0, keep_workers_s=0).fit()
    elapsed = time.perf_counter() - start
    for trial in results.trials:
        assert trial.checkpoint is not None and (trial.checkpoint / "weights.bin").stat().st_size == mb * 1024 * 1024
    return elapsed


def run_ray_tune(mb: int, root: str) -> float:
    from ray import tune

    start = time.perf_counter()
    grid = tune.Tuner(
        tune_trainable,
        param_space={"x": tune.uniform(1, 2), "mb": mb},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=TRIALS, max_concurrent_trials=2,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=root, verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    ).fit()
    elapsed = time.perf_counter() - start
    assert len(grid) == TRIALS and not grid.errors
    for result in grid:
        with result.checkpoint.as_directory() as folder:
            assert (Path(folder) / "weights.bin").stat().st_size == mb * 1024 * 1024
    return elapsed


def child(side: str, mb: int, root: str) -> None:
    """One measured run in this process; prints ``RESULT {json}``."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    time.sleep(SETTLE_S)  # Ray's prestarted worker processes up
    before = _rss_mb()
    elapsed = (run_raytuner if side == "raytuner" else run_ray_tune)(mb, root)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    ray.shutdown()
    print("RESULT " + json.dumps({"seconds": elapsed, "peak_mb": peak, "before_mb": before}), flush=True)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(side: str, mb: int, root: str) -> dict:
    # Workers import this module; a PYTHONPATH given stays behind it (e.g. another checkout's raytuner).
    path = [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    out = subprocess.run([sys.executable, __file__, "--child", side, "--mb", str(mb), "--root", root],
                         capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{side} run failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, nargs="+", default=[256, 64], help="checkpoint sizes, MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side per size, alternating")
    parser.add_argument("--root", default=None, help="storage folder (default: a temporary one on the home disk)")
    parser.add_argument("--child", choices=("raytuner", "ray_tune"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mb[0], args.root)
        return

    base = Path(args.root or tempfile.mkdtemp(prefix="raytuner-ckpt-bench-", dir=Path.home()))
    print(f"{TRIALS} trials x {REPORTS} reports with a checkpoint each, 2 at a time; storage {base}; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    try:
        for mb in args.mb:
            runs: dict[str, list[dict]] = {"raytuner": [], "ray_tune": []}
            for i in range(args.repeat):
                for side in ("raytuner", "ray_tune"):
                    root = base / f"{side}-{mb}-{i}"
                    result = measure(side, mb, str(root))
                    shutil.rmtree(root, ignore_errors=True)
                    runs[side].append(result)
                    print(f"  {mb:4d} MB  {side:<8}  {result['seconds']:6.2f} s   driver peak RSS "
                          f"{result['peak_mb']:6.0f} MB (before the sweep {result['before_mb']:4.0f} MB)", flush=True)
            ours, theirs = runs["raytuner"], runs["ray_tune"]
            ratios = [a["seconds"] / b["seconds"] for a, b in zip(ours, theirs)]
            print(f"{mb} MB: raytuner {_span(ours, 'seconds')} s, peak {_span(ours, 'peak_mb')} MB; "
                  f"Ray Tune {_span(theirs, 'seconds')} s, peak {_span(theirs, 'peak_mb')} MB; "
                  f"time raytuner / Ray Tune {min(ratios):.2f}-{max(ratios):.2f} (median {statistics.median(ratios):.2f})",
                  flush=True)
    finally:
        if args.root is None:
            shutil.rmtree(base, ignore_errors=True)


def _span(runs: list[dict], key: str) -> str:
    values = [run[key] for run in runs]
    return f"{min(values):.1f}-{max(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


if __name__ == "__main__":
    main()
