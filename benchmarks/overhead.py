"""Framework overhead: trivial trials on local Ray, raytuner vs Ray Tune, in one run.

Each trial makes 10 reports and does no work, so the wall time is the framework's own
cost: scheduling, the report path, persistence. Both run 2 trials at a time on a local Ray
with 2 CPUs; Ray Tune reuses its actors (its fastest setting).

Ray Tune's own time varies twofold from run to run on this machine, so ``--repeat`` runs
both sides that many times, alternating, and reports each ratio and their median.

    python benchmarks/overhead.py                 # 200 trials each, plus 2,000 for raytuner
    python benchmarks/overhead.py --repeat 5 --flat 0
    python benchmarks/overhead.py --trials 50 --flat 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

REPORTS = 10
SETTLE_S = 5.0


def raytuner_trainable(config):
    import raytuner as rt

    for i in range(REPORTS):
        rt.report({"loss": config["x"] + i})


def tune_trainable(config):
    from ray import tune

    for i in range(REPORTS):
        tune.report({"loss": config["x"] + i})


def run_raytuner(num_trials: int, root: str) -> float:
    import raytuner as rt

    start = time.perf_counter()
    results = rt.Tuner(raytuner_trainable, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=num_trials,
                       max_concurrent=2, storage_path=root, verbose=0, keep_workers_s=0).fit()
    elapsed = time.perf_counter() - start
    reports = sum(len(results.history(t.trial_id)) for t in results.trials)
    assert reports == num_trials * REPORTS, reports
    return elapsed


def run_ray_tune(num_trials: int, root: str) -> float:
    from ray import tune

    start = time.perf_counter()
    tuner = tune.Tuner(
        tune_trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=num_trials, max_concurrent_trials=2,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=root, verbose=0),
    )
    grid = tuner.fit()
    elapsed = time.perf_counter() - start
    assert len(grid) == num_trials and not grid.errors
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--flat", type=int, default=2000, help="trials for the flatness run (0 to skip)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ratios, ours_s = [], []
    with tempfile.TemporaryDirectory() as root:
        run_raytuner(4, root)  # warm-up: import paths, object store
        print(f"{args.trials} trials x {REPORTS} reports, 2 at a time")
        for i in range(args.repeat):
            # Each measured run starts from the same state, after a rest: Ray's prestarted idle
            # workers were used up by the warm-up (Ray does not refill that pool), so both sides
            # start their two worker processes from scratch inside the measured time.
            time.sleep(SETTLE_S)
            ours = run_raytuner(args.trials, os.path.join(root, f"ours{i}"))
            time.sleep(SETTLE_S)
            theirs = run_ray_tune(args.trials, os.path.join(root, f"tune{i}"))
            ratios.append(theirs / ours)
            ours_s.append(ours)
            print(f"  raytuner {ours:6.2f} s ({1000 * ours / args.trials:5.1f} ms/trial)   "
                  f"Ray Tune {theirs:6.2f} s ({1000 * theirs / args.trials:5.1f} ms/trial)   "
                  f"Ray Tune / raytuner = {theirs / ours:.1f}x", flush=True)
        if args.repeat > 1:
            print(f"  median ratio {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max {max(ratios):.1f}x)")
        if args.flat:
            time.sleep(SETTLE_S)
            flat = run_raytuner(args.flat, os.path.join(root, "flat"))
            ours = statistics.median(ours_s)
            ratio = (flat / args.flat) / (ours / args.trials)
            print(f"{args.flat} trials: raytuner {flat:.2f} s ({1000 * flat / args.flat:.1f} ms/trial); "
                  f"per-trial cost {ratio:.2f}x that at {args.trials}")
    ray.shutdown()


if __name__ == "__main__":
    main()
