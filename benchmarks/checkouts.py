"""raytuner against itself: the same benchmark from two checkouts, alternating, in one run.

For a change to the runtime (the driver, the worker, storage), the question is whether it
made the report path slower. Each run is a fresh process with its own local Ray, started
from the interpreter of one checkout's virtualenv, so each side imports its own raytuner;
the runs alternate (before, after, before, ...) so that load on the machine falls on both.

Two measurements, both raytuner-only, from the functions of overhead.py and
keras_throughput.py (which use only the public API, the same in every version):

- ``overhead``: 200 trivial trials x 10 reports, 2 at a time (ms per trial);
- ``keras``: 8 Keras trials x 10 epochs on digits, 2 at a time (epochs per second).

    python benchmarks/checkouts.py --before /path/old/.venv/bin/python --after .venv/bin/python
    python benchmarks/checkouts.py --before ... --after ... --repeat 5 --what overhead

A checkout's virtualenv must have that checkout installed (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, {bench!r})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import ray, raytuner
what = {what!r}
ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
time.sleep(5.0)  # Ray's prestarted workers up, as in overhead.py's fresh state
with tempfile.TemporaryDirectory() as root:
    if what == "overhead":
        import overhead
        elapsed = overhead.run_raytuner({trials}, root)
        value = 1000 * elapsed / {trials}
    else:
        import keras_throughput
        epochs, elapsed = keras_throughput.run_raytuner(8, 10, 2, root)
        value = epochs / elapsed
ray.shutdown()
print("RESULT " + json.dumps({{"value": value, "raytuner": raytuner.__file__}}))
"""


def run_once(python: str, what: str, trials: int) -> tuple[float, str]:
    code = _CHILD.format(bench=str(HERE), what=what, trials=trials)
    with tempfile.TemporaryDirectory() as cwd:  # nothing in the working folder shadows the install
        # PYTHONPATH: Ray's workers import the trainables from the benchmark modules too.
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        out = subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{out.stderr[-3000:]}")
    line = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    return result["value"], result["raytuner"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="python of the old checkout's virtualenv")
    parser.add_argument("--after", required=True, help="python of the new checkout's virtualenv")
    parser.add_argument("--what", choices=("overhead", "keras", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200, help="trials of the overhead run")
    args = parser.parse_args()

    print(f"load average at start {os.getloadavg()[0]:.1f}")
    for what in {"both": ["overhead", "keras"], "overhead": ["overhead"], "keras": ["keras"]}[args.what]:
        unit = "ms/trial (lower is better)" if what == "overhead" else "epochs/s (higher is better)"
        values: dict[str, list[float]] = {"before": [], "after": []}
        for i in range(args.repeat):
            for side in ("before", "after"):
                value, where = run_once(getattr(args, side), what, args.trials)
                values[side].append(value)
                print(f"  {what} run {i + 1} {side:<6} {value:8.2f} {unit}   ({where})", flush=True)
        before, after = statistics.median(values["before"]), statistics.median(values["after"])
        print(f"{what}: median before {before:.2f}, after {after:.2f} {unit}: after/before = {after / before:.3f} "
              f"(before {min(values['before']):.2f}-{max(values['before']):.2f}, "
              f"after {min(values['after']):.2f}-{max(values['after']):.2f})", flush=True)


if __name__ == "__main__":
    main()
