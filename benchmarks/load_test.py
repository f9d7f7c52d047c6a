"""Load test (issue 5): thousands of trials on local Ray; nothing lost, flat driver memory,
and a resume after the driver is killed half-way. A script, not a timed test.

Each trial makes ``--reports`` trivial reports (a checkpoint at the middle one), so the
wall time is the controller's own work. Two runs, each driver in a child process:

1. ``full``: one uninterrupted sweep. Every report must be in the trials' results.jsonl
   files (counted line by line), and the driver's RSS (VmRSS, sampled every 20 finished
   trials) must stay flat.
2. ``crash``: the same sweep; the driver is SIGKILLed once half the trials have finished,
   then ``raytuner.Tuner.resume`` continues it in a new driver. Every trial must end
   COMPLETED with every step reported; the trials that were in flight at the kill report
   again from their checkpoint (or from the start), so their repeated lines are counted.

    python benchmarks/load_test.py                          # 2,000 trials x 10 reports, both runs
    python benchmarks/load_test.py --trials 200 --runs crash
    python benchmarks/load_test.py --no-tensorboard         # without the default TensorBoard logging

Prints a summary and writes it as JSON to ``<storage>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "load"


def trivial(config):
    import raytuner as rt

    restored = rt.get_checkpoint()
    start = int((restored / "step").read_text()) if restored is not None else 0
    for step in range(start + 1, config["reports"] + 1):
        checkpoint = None
        if step == config["checkpoint_at"]:
            checkpoint = tempfile.mkdtemp()
            Path(checkpoint, "step").write_text(str(step))
        rt.report({"loss": config["x"], "step": step}, checkpoint=checkpoint)  # copied before it returns
        if checkpoint is not None:
            shutil.rmtree(checkpoint)


def rss_mb(pid: str | int = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the driver (child process) ------------------------------------------------------------
def drive(args: argparse.Namespace) -> None:
    import ray

    import raytuner as rt

    samples = open(args.samples, "a", buffering=1)  # noqa: SIM115 - one line per sample, flushed

    class Probe(rt.Callback):
        """Samples the driver's RSS every 20 finished trials (and at start and end)."""

        def __init__(self) -> None:
            self.done = 0
            self.t0 = time.monotonic()

        def sample(self) -> None:
            line = {"done": self.done, "t": round(time.monotonic() - self.t0, 2), "rss_mb": round(rss_mb(), 1)}
            samples.write(json.dumps(line) + "\n")

        def on_experiment_start(self, path, meta) -> None:
            self.sample()

        def on_trial_end(self, trial) -> None:
            if trial.status.is_finished():
                self.done += 1
                if self.done % 20 == 0:
                    self.sample()

        def on_experiment_end(self, results) -> None:
            self.sample()

    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    probe = Probe()
    if args.resume:
        results = rt.Tuner.resume(Path(args.storage) / NAME, trainable=trivial, verbose=0, callbacks=[probe])
    else:
        space = {"x": rt.uniform(0, 1), "reports": args.reports, "checkpoint_at": max(1, args.reports // 2)}
        results = rt.Tuner(trivial, space=space, metric="loss", num_trials=args.trials, storage_path=args.storage,
                           name=NAME, verbose=0, seed=0, keep_workers_s=0, tensorboard=args.tensorboard,
                           callbacks=[probe]).fit()
    print(json.dumps({"status": results.meta.get("status"), "trials": len(results.trials)}))


# -- the orchestrator (parent process) -------------------------------------------------------
def count(storage: Path, reports: int) -> dict:
    """What the experiment folder holds: every results.jsonl line, per trial and in all."""
    from raytuner._storage.history import read_history

    trials_dir = storage / NAME / "trials"
    lines = distinct = complete = 0
    statuses: dict[str, int] = {}
    for trial in sorted(p for p in trials_dir.iterdir() if p.is_dir()):
        rows = read_history(trial / "results.jsonl").rows
        steps = [row["step"] for row in rows]
        lines += len(rows)
        distinct += len(set(steps))
        complete += set(steps) == set(range(1, reports + 1))
        record = json.loads((trial / "trial.json").read_text())
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    return {"trials": sum(statuses.values()), "statuses": statuses, "lines": lines, "distinct_reports": distinct,
            "complete_trials": complete}


def child(args: argparse.Namespace, storage: Path, samples: Path, *, resume: bool) -> subprocess.Popen:
    command = [sys.executable, __file__, "--drive", "--storage", str(storage), "--samples", str(samples),
               "--trials", str(args.trials), "--reports", str(args.reports), "--num-cpus", str(args.num_cpus)]
    command += ["--resume"] if resume else []
    command += [] if args.tensorboard else ["--no-tensorboard"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def read_samples(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def memory(samples: list[dict], trials: int) -> dict:
    """RSS after warm-up (10% of the trials), at the middle and at the end; growth per 1,000 trials."""
    warm = next(s for s in samples if s["done"] >= trials // 10)
    mid = next(s for s in samples if s["done"] >= trials // 2)
    end = samples[-1]
    growth = (end["rss_mb"] - warm["rss_mb"]) / max(1, end["done"] - warm["done"]) * 1000
    return {"rss_start_mb": samples[0]["rss_mb"], "rss_warm_mb": warm["rss_mb"], "rss_mid_mb": mid["rss_mb"],
            "rss_end_mb": end["rss_mb"], "rss_peak_mb": max(s["rss_mb"] for s in samples),
            "growth_mb_per_1000_trials": round(growth, 2)}


def run_full(args: argparse.Namespace, root: Path) -> dict:
    storage, samples = root / "full", root / "full_samples.jsonl"
    t0 = time.monotonic()
    proc = child(args, storage, samples, resume=False)
    proc.communicate()
    wall = time.monotonic() - t0
    counts = count(storage, args.reports)
    expected = args.trials * args.reports
    return {"wall_s": round(wall, 1), "reports_per_s": round(expected / wall, 1), "expected_reports": expected,
            **counts, "every_report_stored": counts["lines"] == counts["distinct_reports"] == expected,
            "memory": memory(read_samples(samples), args.trials), "driver_rc": proc.returncode}


def run_crash(args: argparse.Namespace, root: Path) -> dict:
    storage, samples = root / "crash", root / "crash_samples.jsonl"
    t0 = time.monotonic()
    proc = child(args, storage, samples, resume=False)
    while proc.poll() is None:
        done = max((s["done"] for s in read_samples(samples)), default=0)
        if done >= args.trials // 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    killed_at = time.monotonic() - t0
    at_kill = count(storage, args.reports)
    time.sleep(2)  # let the killed driver's Ray processes go (they share its fate)
    resumed = child(args, storage, root / "resume_samples.jsonl", resume=True)
    out, _ = resumed.communicate()
    wall = time.monotonic() - t0
    final = count(storage, args.reports)
    expected = args.trials * args.reports
    return {"killed_after_s": round(killed_at, 1), "killed_rc": proc.returncode, "at_kill": at_kill,
            "wall_s_total": round(wall, 1), "resume_rc": resumed.returncode, "resume_output": out.strip(),
            **final, "expected_reports": expected,
            "same_count_after_resume": final["distinct_reports"] == expected and final["complete_trials"] == args.trials,
            "repeated_lines": final["lines"] - final["distinct_reports"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (trials at once)")
    parser.add_argument("--runs", default="full,crash", help="comma-separated: full, crash")
    parser.add_argument("--storage", help="root folder (default: a temporary one, removed at the end)")
    parser.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--samples", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args)
        return
    root = Path(args.storage or tempfile.mkdtemp(prefix="raytuner-load-")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    import ray

    summary = {"trials": args.trials, "reports_per_trial": args.reports, "num_cpus": args.num_cpus,
               "tensorboard": args.tensorboard, "ray": ray.__version__, "cpus_on_machine": os.cpu_count()}
    runs = {"full": run_full, "crash": run_crash}
    for name in args.runs.split(","):
        summary[name] = runs[name](args, root)
        print(json.dumps({name: summary[name]}, indent=1), flush=True)
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    if not args.storage:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
