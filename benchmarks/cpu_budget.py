"""The CPU each side of overhead.py spends per trivial trial, beside its wall time.

overhead.py gives the wall time of 200 trivial trials against bare Ray's floor. On a small
machine the floor itself keeps the cores busy, and then a ratio of wall times is a ratio of
CPU spent: this script says how much CPU each side uses per trial, in all processes
together (the machine's busy time, from /proc/stat) and in the driver's process (its main
thread, and its other threads: Ray's), so that the least wall time a side could reach with
the CPU it spends (its CPU over the machine's cores) can be read beside what it reached.

One fresh local Ray (2 CPUs), an unmeasured warm-up of each side, then sweeps of ``--trials``
trivial trials (overhead.py's) on each side in turn, ``--repeat`` times. Nothing else
should run on the machine meanwhile: the busy time is the whole machine's. Linux only.

    python benchmarks/cpu_budget.py --trials 1000 --repeat 2
    python benchmarks/cpu_budget.py --root /dev/shm          # the same with the storage in memory
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICK  # less idle and iowait


def thread_cpu_s(path: str) -> float:
    """User and system CPU seconds of the task whose stat file is ``path``."""
    with open(path) as handle:
        text = handle.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def driver_cpu_s() -> tuple[float, float]:
    """This process's CPU seconds: its main thread, and its other threads."""
    main = others = 0.0
    for tid in os.listdir("/proc/self/task"):
        try:
            spent = thread_cpu_s(f"/proc/self/task/{tid}/stat")
        except OSError:  # the thread ended meanwhile
            continue
        if int(tid) == os.getpid():
            main += spent
        else:
            others += spent
    return main, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2, help="sweeps of each side, in turn")
    parser.add_argument("--root", default=None, help="where the sweeps write (default: a temporary folder)")
    args = parser.parse_args()

    # The workers import overhead.py's trainables by name: they inherit this path from the driver.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, HERE)
    import overhead

    root = tempfile.mkdtemp(prefix="cpu-budget-", dir=args.root)
    overhead.start_ray()
    time.sleep(overhead.SETTLE_S)
    sides: dict[str, Callable[[int, str], float]] = {
        "floor": overhead.run_floor,
        "raytuner, lean": lambda n, path: overhead.run_raytuner(n, path, lean=True),
        "raytuner, defaults": overhead.run_raytuner,
    }
    for side, run in sides.items():  # unmeasured: imports, first use, the TPE's random start-up
        run(overhead.WARMUP_TRIALS, os.path.join(root, f"warmup-{side}"))
    cores = os.cpu_count() or 1
    rows: dict[str, list[tuple[float, float, float, float]]] = {side: [] for side in sides}
    print(f"{args.trials} trivial trials x {overhead.REPORTS} reports, 2 at a time; ms per trial; {cores} cores")
    for i in range(args.repeat):
        for side, run in sides.items():
            time.sleep(1.0)  # the last sweep's workers gone
            busy, (main_s, others_s) = machine_busy_s(), driver_cpu_s()
            wall = run(args.trials, os.path.join(root, f"{side}-{i}"))
            busy, (main_end, others_end) = machine_busy_s() - busy, driver_cpu_s()
            per = 1000 / args.trials
            rows[side].append((wall * per, busy * per, (main_end - main_s) * per, (others_end - others_s) * per))
            w, cpu, m, o = rows[side][-1]
            print(f"  {side:20s} wall {w:5.2f}   CPU, all processes {cpu:5.2f} (over {cores} cores: {cpu / cores:4.2f})"
                  f"   driver main thread {m:4.2f}, its other threads {o:4.2f}", flush=True)
    floor_wall = statistics.median(r[0] for r in rows["floor"])
    print("medians:")
    for side, values in rows.items():
        wall, cpu = statistics.median(r[0] for r in values), statistics.median(r[1] for r in values)
        print(f"  {side:20s} wall {wall:5.2f} ({wall / floor_wall:.2f}x the floor's)   CPU {cpu:5.2f}   "
              f"least wall for that CPU {cpu / cores:4.2f} ({cpu / cores / floor_wall:.2f}x the floor's wall)")


if __name__ == "__main__":
    main()
