"""What cloud storage costs the driver, and how far the bucket lags behind the reports.

Storage is moto's S3 server over HTTP on loopback (a separate process, started here), read
and written by the real s3fs client, as a user's run with ``storage_path="s3://..."``.

1. The 200-trial trivial sweep of ``overhead.py`` (10 reports each, 2 at a time, local Ray
   with 2 CPUs) with ``storage_path`` on the S3 server against a local folder, alternating
   in one run after one unmeasured warm-up each. The S3 time includes the final upload
   (``fit()`` returns once everything is in the bucket).
2. The lag from a report to its line in the bucket: one trial reports every 0.2 s with the
   wall time of the report; a thread polls the object every 20 ms and notes when each line
   first appears.

    python benchmarks/cloud_storage.py                  # 200 trials, 3 rounds, 50 lag reports
    python benchmarks/cloud_storage.py --trials 50 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPORTS = 10


def trivial(config):
    import raytuner as rt

    for i in range(REPORTS):
        rt.report({"loss": config["x"] + i})


def paced(config):
    import raytuner as rt

    for _ in range(config["reports"]):
        time.sleep(0.2)
        rt.report({"loss": 1.0, "sent": time.time()})


def start_s3(tmp: str) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
        if match:
            break
    else:
        raise SystemExit("moto's server did not start")
    threading.Thread(target=server.stderr.read, daemon=True).start()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{match.group(1)}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                      XDG_CACHE_HOME=os.path.join(tmp, "cache"))
    import boto3

    boto3.client("s3").create_bucket(Bucket="bench")
    return server


def sweep(num_trials: int, root: str, name: str) -> float:
    import raytuner as rt

    start = time.perf_counter()
    results = rt.Tuner(trivial, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=num_trials,
                       max_concurrent=2, storage_path=root, name=name, verbose=0, keep_workers_s=0,
                       tensorboard=False).fit()
    elapsed = time.perf_counter() - start
    assert len(results.trials) == num_trials
    return elapsed


def lag(reports: int) -> list[float]:
    import boto3

    import raytuner as rt

    client = boto3.client("s3")
    seen: dict[int, float] = {}
    done = threading.Event()

    def poll():
        while not done.is_set():
            try:
                body = client.get_object(Bucket="bench", Key="lag/paced/trials/00000/results.jsonl")["Body"].read()
            except client.exceptions.NoSuchKey:
                body = b""
            now = time.time()
            for line in body.decode().splitlines():
                row = json.loads(line)
                seen.setdefault(row["iteration"], now - row["sent"])
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    rt.Tuner(paced, space={"reports": reports}, num_trials=1, storage_path="s3://bench/lag", name="paced",
             verbose=0, keep_workers_s=0, tensorboard=False).fit()
    done.set()
    poller.join()
    return [seen[i] for i in sorted(seen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lag-reports", type=int, default=50)
    args = parser.parse_args()

    import ray

    with tempfile.TemporaryDirectory() as tmp:
        server = start_s3(tmp)
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            local_root = os.path.join(tmp, "results")
            sweep(4, local_root, "warm-local")
            sweep(4, "s3://bench/sweeps", "warm-s3")
            print(f"{args.trials} trivial trials x {REPORTS} reports, 2 at a time:", flush=True)
            ratios, local_s, s3_s = [], [], []
            for i in range(args.repeat):
                ours_local = sweep(args.trials, local_root, f"local{i}")
                ours_s3 = sweep(args.trials, "s3://bench/sweeps", f"s3-{i}")
                local_s.append(ours_local)
                s3_s.append(ours_s3)
                ratios.append(ours_s3 / ours_local)
                print(f"  local folder {ours_local:6.2f} s   S3 (moto) {ours_s3:6.2f} s   S3 / local = {ours_s3 / ours_local:.2f}x",
                      flush=True)
            print(f"  median: local {statistics.median(local_s):.2f} s, S3 {statistics.median(s3_s):.2f} s, "
                  f"ratio {statistics.median(ratios):.2f}x", flush=True)
            lags = lag(args.lag_reports)
            lags.sort()
            print(f"report -> line in the bucket, {len(lags)} reports every 0.2 s: median {statistics.median(lags):.2f} s, "
                  f"p90 {lags[int(0.9 * (len(lags) - 1))]:.2f} s, max {lags[-1]:.2f} s", flush=True)
        finally:
            ray.shutdown()
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
