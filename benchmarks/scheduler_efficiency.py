"""Scheduler efficiency on the synthetic multi-fidelity problem (benchmarks/_synthetic.py).

(a) Worker utilisation, asynchronous ASHA (stopping and promotion) vs synchronous
    Hyperband, with 2 and 8 workers, on epochs that take 0.5x to 2x ``--epoch-s`` by width,
    jittered per epoch (lognormal, sigma 0.5). Utilisation = busy slot-seconds / total
    slot-seconds, from each report's epoch start and end times. "whole run" spans the first
    epoch's start to the last report; "until drain" ends at the last moment every slot was
    busy, leaving out the tail where the trial budget has run out and no scheduler could
    keep all slots busy. Target: ASHA >= 95%. "8 workers" are 8 trials at once at
    ``{"cpu": 0.25}`` each on this 2-core machine (the epochs sleep).
(b) Epochs to reach a target loss, ASHA vs FIFO with the same searcher: the same random
    configs in the same order (RandomSearcher, same seed), and TPE. The target is the 5%
    quantile of a random config's final true loss; the incumbent is the report with the
    lowest noisy loss so far. Target: ASHA <= 1/3 of FIFO's epochs.

    python benchmarks/scheduler_efficiency.py                  # both parts, about 6 minutes
    python benchmarks/scheduler_efficiency.py --part b --seeds 20
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synthetic as syn  # noqa: E402

R, ETA = syn.MAX_EPOCHS, 3


# -- (a) utilisation ---------------------------------------------------------------------
def utilisation(rows: list[dict], slots: int) -> tuple[float, float]:
    """(whole run, until drain): busy slot-seconds over slots x elapsed seconds."""
    spans = [(row["began"], row["t"]) for row in rows]
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    busy_now, last_full = 0, start
    for when, step in events:
        if busy_now >= slots and step < 0:
            last_full = when  # the moment a full house breaks up
        busy_now += step
    busy = sum(e - s for s, e in spans)
    if last_full == start:  # never were all slots busy at once
        return busy / (slots * (end - start)), math.nan
    drained = sum(max(0.0, min(e, last_full) - s) for s, e in spans)
    return busy / (slots * (end - start)), drained / (slots * (last_full - start))


def run_utilisation(name: str, workers: int, trials: int, epoch_s: float, seed: int, root: str) -> dict:
    import raytuner as rt
    from raytuner.schedulers import ASHAScheduler, HyperbandScheduler
    from raytuner.search import RandomSearcher

    scheduler = {
        "ASHA stopping": lambda: ASHAScheduler(max_resource=R, reduction_factor=ETA),
        "ASHA promotion": lambda: ASHAScheduler(max_resource=R, reduction_factor=ETA, variant="promotion"),
        "Hyperband (sync)": lambda: HyperbandScheduler(max_resource=R, reduction_factor=ETA),
    }[name]()
    # Only the pausing schedulers need checkpoints (a storage write per epoch).
    pausing = name != "ASHA stopping"
    space = {**syn.space(), **syn.settings(seed, epoch_time_s=epoch_s, jitter=0.5, checkpoint=pausing)}
    cpu = 2 / workers
    start = time.perf_counter()
    results = rt.Tuner(syn.train, space=space, metric="loss", num_trials=trials, max_concurrent=workers,
                       searcher=RandomSearcher(seed=seed), scheduler=scheduler, resources={"cpu": cpu},
                       storage_path=root, verbose=0).fit()
    wall = time.perf_counter() - start
    rows = syn.raytuner_reports(results)
    whole, steady = utilisation(rows, workers)
    return {"whole": whole, "steady": steady, "epochs": len(rows), "wall": wall,
            "best": float(syn.incumbent_curve(rows)[-1])}


def part_a(args: argparse.Namespace, root: str) -> None:
    print(f"(a) utilisation: {args.trials} trials, R={R}, eta={ETA}, epochs {args.epoch_s} s x 0.5-2 (width) "
          f"x lognormal(0, 0.5), seed {args.seed}", flush=True)
    import raytuner as rt

    table = {}
    for workers in args.workers:
        # Start this resource shape's workers before measuring (they stay warm between runs):
        # trials long enough that all of them run at once, so every worker is started.
        rt.Tuner(syn.train, space={**syn.space(), **syn.settings(0, max_epochs=2, epoch_time_s=0.5)},
                 metric="loss", num_trials=workers, max_concurrent=workers, resources={"cpu": 2 / workers},
                 storage_path=os.path.join(root, f"warm-up-{workers}"), verbose=0).fit()
        for name in args.schedulers:
            out = run_utilisation(name, workers, args.trials, args.epoch_s, args.seed,
                                  os.path.join(root, f"a_{workers}_{name.split()[0]}_{name.split()[-1]}"))
            table[name, workers] = out
            print(f"  {name:<17} {workers} workers: whole {out['whole']:.1%}, until drain {out['steady']:.1%}, "
                  f"{out['epochs']} epochs in {out['wall']:.1f} s", flush=True)
    print(f"\n{'scheduler':<17} {'workers':>7} {'util. whole':>12} {'util. until drain':>18} {'epochs':>7} "
          f"{'wall s':>7} {'vs Hyperband (whole)':>21}")
    for (name, workers), out in table.items():
        reference = table.get(("Hyperband (sync)", workers))
        ratio = f"{out['whole'] / reference['whole']:21.2f}" if reference else f"{'-':>21}"
        print(f"{name:<17} {workers:>7} {out['whole']:12.1%} {out['steady']:18.1%} {out['epochs']:7d} "
              f"{out['wall']:7.1f} {ratio}")


# -- (b) epochs to target --------------------------------------------------------------
def run_to_target(searcher_name: str, scheduler_name: str, seed: int, trials: int, root: str) -> list[dict]:
    import raytuner as rt
    from raytuner.schedulers import ASHAScheduler, FIFOScheduler
    from raytuner.search import HyperOptSearcher, RandomSearcher

    searcher = RandomSearcher(seed=seed) if searcher_name == "random" else HyperOptSearcher(n_startup=10, seed=seed)
    scheduler = ASHAScheduler(max_resource=R, reduction_factor=ETA) if scheduler_name == "ASHA" else FIFOScheduler()
    space = {**syn.space(), **syn.settings(seed)}
    results = rt.Tuner(syn.train, space=space, metric="loss", num_trials=trials, max_concurrent=2,
                       searcher=searcher, scheduler=scheduler, storage_path=root, verbose=0).fit()
    return syn.raytuner_reports(results)


def part_b(args: argparse.Namespace, root: str) -> None:
    target = float(np.quantile([syn.true_loss(c, R) for c in syn.random_configs()], 0.05))
    print(f"(b) epochs to reach true loss <= {target:.3f} (5% quantile of random configs), {args.seeds} seeds, "
          f"{args.b_trials} trials per run, 2 at a time", flush=True)
    rows = []
    for searcher in ("random", "tpe"):
        reach = {"ASHA": [], "FIFO": []}
        for seed in range(args.seeds):
            for scheduler in ("ASHA", "FIFO"):
                reports = run_to_target(searcher, scheduler, seed, args.b_trials,
                                        os.path.join(root, f"b_{searcher}_{scheduler}_{seed}"))
                reach[scheduler].append(syn.epochs_to(syn.incumbent_curve(reports), target))
            print(f"  {searcher} seed {seed}: ASHA {reach['ASHA'][-1]:.0f}, FIFO {reach['FIFO'][-1]:.0f} epochs",
                  flush=True)
        asha, fifo = np.array(reach["ASHA"]), np.array(reach["FIFO"])
        both = np.isfinite(asha) & np.isfinite(fifo)
        per_seed = float(np.median(asha[both] / fifo[both])) if both.any() else math.nan
        rows.append((searcher, syn.median(asha), syn.median(fifo), syn.median(asha) / syn.median(fifo), per_seed,
                     int(np.isfinite(asha).sum()), int(np.isfinite(fifo).sum())))
    print(f"\n{'searcher':<8} {'ASHA median':>12} {'FIFO median':>12} {'ratio of medians':>17} "
          f"{'median per-seed ratio':>22} {'reached ASHA/FIFO':>18}")
    for searcher, asha, fifo, ratio, per_seed, hit_a, hit_f in rows:
        print(f"{searcher:<8} {asha:12.0f} {fifo:12.0f} {ratio:17.3f} {per_seed:22.3f} "
              f"{f'{hit_a}/{args.seeds}, {hit_f}/{args.seeds}':>18}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--trials", type=int, default=49, help="(a) trials per run: one Hyperband iteration")
    parser.add_argument("--epoch-s", type=float, default=0.3, help="(a) base seconds per epoch")
    parser.add_argument("--seed", type=int, default=0, help="(a) seed")
    parser.add_argument("--workers", type=lambda text: [int(w) for w in text.split(",")], default=[2, 8],
                        help="(a) worker counts, e.g. 2,8")
    parser.add_argument("--schedulers", type=lambda text: text.split(","),
                        default=["ASHA stopping", "ASHA promotion", "Hyperband (sync)"],
                        help="(a) comma-separated, e.g. 'ASHA stopping,ASHA promotion'")
    parser.add_argument("--seeds", type=int, default=10, help="(b) seeds")
    parser.add_argument("--b-trials", type=int, default=100, help="(b) trials per run")
    args = parser.parse_args()

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    syn.register()
    with tempfile.TemporaryDirectory() as root:
        if args.part in ("a", "both"):
            part_a(args, root)
        if args.part in ("b", "both"):
            part_b(args, root)


if __name__ == "__main__":
    main()
