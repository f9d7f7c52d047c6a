"""Framework overhead: trivial trials on local Ray, raytuner vs Ray Tune vs bare Ray, in one run.

Each trial makes 10 reports and does no work, so the wall time is the framework's own
cost: scheduling, the report path, persistence. All run 2 trials at a time on a local Ray
with 2 CPUs; Ray Tune reuses its actors (its fastest setting). The floor is what bare Ray
costs for the same work: two plain actors, one call per trial answered with its 10
reports, which the driver writes into one small file per trial (the least a tuner must
persist), two calls in flight. Each side first runs once unmeasured (imports, first-use
set-up), then the three alternate: raytuner, Ray Tune, the floor.

Where the trial workers come from is measured two ways (``--start``):

- ``fresh``: each run in a local Ray started for it, 5 s before, as a sweep after
  ``ray.init()`` finds it. Ray prestarts one worker process per CPU when a driver
  connects, and both sides' first actors take those.
- ``cold``: every run in one Ray session, after those prestarted processes are used up
  (Ray does not start more until asked), so both sides start their worker processes
  inside the measured time (as long as for an empty actor class: RESULTS.md).

Ray Tune's own time varies widely from run to run (RESULTS.md), so ``--repeat`` runs
both sides that many times, alternating, and reports each ratio and their median.

raytuner runs on the defaults a user gets (TPESearcher, the TensorBoard log); ``--lean``
adds a second raytuner side with random search and no TensorBoard log, to tell what those
two cost from what every sweep costs.

    python benchmarks/overhead.py                 # both ways, 200 trials, plus 2,000 for raytuner
    python benchmarks/overhead.py --start cold --repeat 5 --flat 0
    python benchmarks/overhead.py --start fresh --repeat 5 --flat 0 --no-ray-tune
    python benchmarks/overhead.py --start fresh --repeat 3 --flat 0 --lean
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

REPORTS = 10
SETTLE_S = 5.0
#: raytuner's unmeasured first run: past TPESearcher's random start-up (10 trials), so that
#: its model's first use (scipy.special's import, 0.1-0.3 s) is not in the first measured run.
WARMUP_TRIALS = 16


def raytuner_trainable(config):
    import raytuner as rt

    for i in range(REPORTS):
        rt.report({"loss": config["x"] + i})


def tune_trainable(config):
    from ray import tune

    for i in range(REPORTS):
        tune.report({"loss": config["x"] + i})


class FloorActor:
    """Bare Ray's trial worker: one call runs a trial and returns its reports."""

    def trial(self, x: float) -> list[dict]:
        return [{"loss": x + i, "iteration": i + 1} for i in range(REPORTS)]


def run_floor(num_trials: int, root: str) -> float:
    import json
    import random

    import ray

    os.makedirs(root, exist_ok=True)
    start = time.perf_counter()
    cls = ray.remote(num_cpus=1)(FloorActor)
    actors = [cls.remote() for _ in range(2)]
    calls, started, done = {}, 0, 0
    for actor in actors:
        calls[actor.trial.remote(random.random())] = (actor, started)
        started += 1
    while calls:
        (ref,), _ = ray.wait(list(calls), num_returns=1)
        actor, trial = calls.pop(ref)
        if started < num_trials:
            calls[actor.trial.remote(random.random())] = (actor, started)
            started += 1
        with open(os.path.join(root, f"{trial:05d}.jsonl"), "w") as handle:
            handle.write("".join(json.dumps(row) + "\n" for row in ray.get(ref)))
        done += 1
    elapsed = time.perf_counter() - start
    for actor in actors:
        ray.kill(actor)
    assert done == num_trials
    return elapsed


def run_raytuner(num_trials: int, root: str, lean: bool = False) -> float:
    import raytuner as rt
    from raytuner.search import RandomSearcher

    options = {"searcher": RandomSearcher(), "tensorboard": False} if lean else {}
    start = time.perf_counter()
    results = rt.Tuner(raytuner_trainable, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=num_trials,
                       max_concurrent=2, storage_path=root, verbose=0, keep_workers_s=0, **options).fit()
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


def start_ray() -> None:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)


def measure(run: Callable[[int, str], float], num_trials: int, root: str, fresh: bool) -> float:
    """One run after 5 s of rest; with ``fresh``, in a Ray started for it."""
    import ray

    if fresh:
        start_ray()
    time.sleep(SETTLE_S)  # prestarted workers up, the last run's processes gone
    try:
        return run(num_trials, root)
    finally:
        if fresh:
            ray.shutdown()


def compare(args: argparse.Namespace, root: str, fresh: bool) -> list[float]:
    """Alternating runs of the three sides; raytuner's times."""
    import ray

    how = ("fresh: each run in a Ray started for it" if fresh
           else "cold: one Ray session, worker processes started inside each run")
    print(f"{how}; {args.trials} trials x {REPORTS} reports, 2 at a time", flush=True)
    if not fresh:
        start_ray()
        run_raytuner(4, os.path.join(root, "cold-warmup"))  # takes Ray's prestarted workers
    sides = {"raytuner": run_raytuner, "Ray Tune": run_ray_tune, "floor": run_floor}
    if args.no_ray_tune:
        del sides["Ray Tune"]
    if args.lean:
        sides["lean"] = lambda n, root: run_raytuner(n, root, lean=True)
    times: dict[str, list[float]] = {side: [] for side in sides}
    for i in range(args.repeat):
        tag = f"{'fresh' if fresh else 'cold'}{i}"
        for side, run in sides.items():
            times[side].append(measure(run, args.trials, os.path.join(root, f"{side.replace(' ', '')}-{tag}"), fresh))
        ours, floor = times["raytuner"][-1], times["floor"][-1]
        line = f"  raytuner {ours:6.2f} s ({1000 * ours / args.trials:5.2f} ms/trial)   floor {floor:5.2f} s   " \
               f"raytuner / floor = {ours / floor:.2f}x"
        if "Ray Tune" in times:
            theirs = times["Ray Tune"][-1]
            line += f"   Ray Tune {theirs:6.2f} s   Ray Tune / raytuner = {theirs / ours:.1f}x"
        if "lean" in times:
            line += f"   lean {times['lean'][-1]:5.2f} s   lean / floor = {times['lean'][-1] / floor:.2f}x"
        print(line, flush=True)
    if args.repeat > 1:
        over_floor = [a / b for a, b in zip(times["raytuner"], times["floor"])]
        print(f"  raytuner / floor: median {statistics.median(over_floor):.2f}x (min {min(over_floor):.2f}x, "
              f"max {max(over_floor):.2f}x)")
        if "lean" in times:
            lean = [a / b for a, b in zip(times["lean"], times["floor"])]
            print(f"  lean / floor: median {statistics.median(lean):.2f}x (min {min(lean):.2f}x, max {max(lean):.2f}x)")
        if "Ray Tune" in times:
            ratios = [b / a for a, b in zip(times["raytuner"], times["Ray Tune"])]
            print(f"  Ray Tune / raytuner: median {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, "
                  f"max {max(ratios):.1f}x)")
    ours_s = times["raytuner"]
    if args.flat:
        flat = measure(run_raytuner, args.flat, os.path.join(root, f"flat-{fresh}"), fresh)
        ours = statistics.median(ours_s)
        ratio = (flat / args.flat) / (ours / args.trials)
        print(f"  {args.flat} trials: raytuner {flat:.2f} s ({1000 * flat / args.flat:.1f} ms/trial); "
              f"per-trial cost {ratio:.2f}x that at {args.trials}", flush=True)
    if not fresh:
        ray.shutdown()
    return ours_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--flat", type=int, default=2000, help="trials for the flatness run (0 to skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--start", choices=("fresh", "cold", "both"), default="both",
                        help="where trial workers come from (see above)")
    parser.add_argument("--no-ray-tune", action="store_true", help="raytuner and the floor only")
    parser.add_argument("--lean", action="store_true", help="also raytuner with random search and no TensorBoard log")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    with tempfile.TemporaryDirectory() as root:
        start_ray()  # unmeasured first runs: imports and first-use set-up on both sides
        run_raytuner(WARMUP_TRIALS, os.path.join(root, "warmup"))
        run_floor(4, os.path.join(root, "warmup-floor"))
        if not args.no_ray_tune:
            run_ray_tune(4, os.path.join(root, "warmup-tune"))
        ray.shutdown()
        for fresh in {"fresh": [True], "cold": [False], "both": [True, False]}[args.start]:
            compare(args, root, fresh)


if __name__ == "__main__":
    main()
