"""The worker's checkpoint cadence: the adaptive interval against a fixed one second.

With ``checkpoints_to_keep`` set, a worker starts at most one store of a trial's checkpoints
per interval and drops the ones overtaken meanwhile. The interval is the Tuner's
``checkpoint_interval_s``; by default it adapts to what a store costs (the last store's
duration over the share s = 0.2, within 1-60 s; ``--shares`` tries other shares). ``checkpoint_interval_s=1`` is the fixed second that
came before it. This runs both on the same trials, alternating, each in a fresh process
with its own local Ray:

4 trials, 2 at a time, of ``--epochs`` epochs of ``--epoch-s`` seconds of numpy work each,
a checkpoint of ``--mb`` MB at every epoch, ``checkpoints_to_keep=1``; storage a local
folder on the home disk, or (``--s3``) moto's S3 server on loopback (a process on the same
cores, as in cloud_storage.py), which the workers upload to.

Per run: ``fit()``'s wall time, the checkpoints stored (rows naming one), and each
report's lag from ``rt.report`` to the driver (the cost of a checkpoint that waits: the
reports behind it wait with it).

    python benchmarks/checkpoint_cadence.py                    # local disk, 256 MB
    python benchmarks/checkpoint_cadence.py --s3 --mb 64
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRIALS = 4


def epochs(config):
    import numpy as np

    import raytuner as rt

    if config["share"] is not None:  # --shares: this worker's adaptive rule, for the measurement only
        from raytuner._worker import outbox

        outbox.STORE_SHARE = config["share"]
    folder = tempfile.mkdtemp()
    block = np.random.default_rng(0).random((256, 256))
    for epoch in range(1, config["epochs"] + 1):
        end = time.monotonic() + config["epoch_s"]
        while time.monotonic() < end:  # an epoch's CPU work
            block = np.tanh(block @ block.T / 256)
        with open(os.path.join(folder, "weights.bin"), "wb") as handle:
            handle.write(bytes([epoch]) * (config["mb"] * 1024 * 1024))
        rt.report({"loss": 1.0 / epoch, "epoch": epoch, "sent": time.time()}, checkpoint=folder)
    shutil.rmtree(folder)


def child(interval: float | None, share: float | None, args: argparse.Namespace, root: str) -> None:
    import ray

    import raytuner as rt

    class Lag(rt.Callback):
        def __init__(self):
            self.lags: list[float] = []

        def on_trial_result(self, trial_id, result):
            self.lags.append(time.time() - result["sent"])

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    time.sleep(5.0)  # Ray's prestarted workers up
    lag = Lag()
    start = time.perf_counter()
    results = rt.Tuner(epochs, space={"mb": args.mb, "epochs": args.epochs, "epoch_s": args.epoch_s,
                                              "share": share},
                       metric="loss", num_trials=TRIALS, max_concurrent=2, storage_path=root, name="cadence",
                       verbose=0, keep_workers_s=0, tensorboard=False, checkpoint_interval_s=interval,
                       callbacks=[lag]).fit()
    elapsed = time.perf_counter() - start
    stored = [sum(1 for name in results.history(t.trial_id)["checkpoint"] if isinstance(name, str))
              for t in results.trials]
    assert all(t.checkpoint is not None for t in results.trials) and len(lag.lags) == TRIALS * args.epochs
    ray.shutdown()
    print("RESULT " + json.dumps({"seconds": elapsed, "stored": stored, "lags": lag.lags}), flush=True)


def measure(side: str, args: argparse.Namespace, root: str) -> dict:
    argv = [sys.executable, __file__, "--child", side,
            "--mb", str(args.mb), "--epochs", str(args.epochs), "--epoch-s", str(args.epoch_s), "--root", root]
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}  # workers import this module
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"run failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="checkpoint size, MB")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--epoch-s", type=float, default=0.5, help="seconds of numpy work per epoch")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--s3", action="store_true", help="store in moto's S3 server instead of a local folder")
    parser.add_argument("--shares", type=float, nargs="*", default=[],
                        help="also the adaptive rule at these shares s (the interval d / s), set in the workers")
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, _, value = args.child.partition("=")
        child(float(value) if kind == "fixed" else None, float(value) if kind == "share" else None, args, args.root)
        return

    base = Path(tempfile.mkdtemp(prefix="raytuner-cadence-", dir=Path.home()))
    server = None
    if args.s3:
        from cloud_storage import start_s3

        server = start_s3(str(base))
    print(f"{TRIALS} trials x {args.epochs} epochs of {args.epoch_s} s, a {args.mb} MB checkpoint each, 2 at a time; "
          f"storage {'s3 (moto)' if args.s3 else base}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    sides = {"fixed 1 s": "fixed=1", "adaptive": "adaptive", **{f"s = {s:g}": f"share={s}" for s in args.shares}}
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    try:
        for i in range(args.repeat):
            for n, (side, child_arg) in enumerate(sides.items()):
                root = f"s3://bench/{i}-{n}" if args.s3 else str(base / f"{i}-{n}")
                result = measure(child_arg, args, root)
                runs[side].append(result)
                lags = sorted(result["lags"])
                print(f"  {side:<10} {result['seconds']:6.2f} s   stored per trial {result['stored']}   report lag "
                      f"median {statistics.median(lags):.2f} s, max {lags[-1]:.2f} s", flush=True)
        for side, results in runs.items():
            seconds = [r["seconds"] for r in results]
            lags = sorted(lag for r in results for lag in r["lags"])
            stored = [n for r in results for n in r["stored"]]
            print(f"{side}: {min(seconds):.2f}-{max(seconds):.2f} s (median {statistics.median(seconds):.2f}); "
                  f"checkpoints stored per trial {min(stored)}-{max(stored)} of {args.epochs}; report lag median "
                  f"{statistics.median(lags):.2f} s, p90 {lags[int(0.9 * (len(lags) - 1))]:.2f} s, "
                  f"max {lags[-1]:.2f} s",
                  flush=True)
    finally:
        if server is not None:
            server.terminate()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
