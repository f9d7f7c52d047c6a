"""The TensorBoard callback's cost on the driver, with google-crc32c and with tensorboard's
pure-Python CRC (what raytuner falls back to without the ``tensorboard`` extra's
google-crc32c). No Ray: 200 trials x 10 reports through the callback's hooks, into a
temporary folder, the two variants alternating.

    python benchmarks/tensorboard_cost.py
    python benchmarks/tensorboard_cost.py --repeat 9 --dir ~/tb-cost   # another file system
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TRIALS, REPORTS = 200, 10


def run(root: Path) -> float:
    from raytuner.tracking.tensorboard import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.on_experiment_start(root, {"metric": "loss"})
    start = time.perf_counter()
    for i in range(TRIALS):
        trial_id = f"{i:05d}"
        callback.on_trial_start(trial_id, {"x": 0.5, "act": "relu"})
        for it in range(1, REPORTS + 1):
            callback.on_trial_result(trial_id, {"loss": 0.5 + it, "acc": 0.1 * it, "iteration": it,
                                                "timestamp": time.time(), "time_total_s": 0.1 * it})
        callback._files.pop(trial_id).close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", default=None, help="where the temporary folders go (default: the system's)")
    args = parser.parse_args()

    from raytuner.tracking import tensorboard as tb

    times: dict[str, list[float]] = {"google-crc32c": [], "tensorboard's CRC": []}
    for _ in range(args.repeat):
        for name in times:
            if name == "google-crc32c":
                sys.modules.pop("google_crc32c", None)
            else:
                sys.modules["google_crc32c"] = None  # type: ignore[assignment]  # the import fails
            tb._masked_crc32c.cache_clear()
            with tempfile.TemporaryDirectory(dir=args.dir) as root:
                times[name].append(run(Path(root)))
    print(f"TensorBoard callback, {TRIALS} trials x {REPORTS} reports, median of {args.repeat}:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<18} {1000 * median:6.0f} ms  ({1000 * median / TRIALS:.2f} ms/trial)")


if __name__ == "__main__":
    main()
