"""raytuner's cost per trivial trial with warm workers, against Ray's own floor.

The floor is the least any actor-based tuner can do per trial on Ray: one actor call per
trial to one of two actors, answered with the trial's 10 reports, and nothing else (no
search, no scheduling, no files). raytuner runs the same trials (10 reports each, 2 at a
time) with its workers kept warm from an earlier experiment, so neither side starts a
process inside the measured time. Runs alternate.

    python benchmarks/per_trial.py                # 200 trials, 5 runs each
    python benchmarks/per_trial.py --no-tensorboard
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

REPORTS = 10


def trainable(config):
    import raytuner as rt

    for i in range(REPORTS):
        rt.report({"loss": config["x"] + i})


def run_raytuner(num_trials: int, root: str, tensorboard: bool) -> float:
    import raytuner as rt

    start = time.perf_counter()
    rt.Tuner(trainable, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=num_trials, max_concurrent=2,
             storage_path=root, verbose=0, tensorboard=tensorboard).fit()
    return time.perf_counter() - start


class _Echo:
    def run(self, config):
        return [{"loss": config["x"] + i, "iteration": i + 1} for i in range(REPORTS)]


def run_floor(actors: list, num_trials: int) -> float:
    """One call per trial, two actors kept busy: the loop of a tuner that does nothing else."""
    import ray

    start = time.perf_counter()
    busy = {actor.run.remote({"x": 0.5}): actor for actor in actors}
    sent = len(busy)
    while busy:
        (ref,), _ = ray.wait(list(busy), num_returns=1)
        actor = busy.pop(ref)
        ray.get(ref)
        if sent < num_trials:
            busy[actor.run.remote({"x": 0.5})] = actor
            sent += 1
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    args = parser.parse_args()

    import ray

    import raytuner as rt

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ours, floor = [], []
    with tempfile.TemporaryDirectory() as root:
        for i in range(args.repeat):
            # raytuner first: a small experiment warms its workers, which the next one reuses.
            run_raytuner(4, os.path.join(root, f"warm{i}"), args.tensorboard)
            time.sleep(1)
            ours.append(run_raytuner(args.trials, os.path.join(root, f"run{i}"), args.tensorboard))
            rt.release_workers()  # their CPUs, for the floor's actors
            actors = [ray.remote(num_cpus=1)(_Echo).remote() for _ in range(2)]
            run_floor(actors, 4)
            time.sleep(1)
            floor.append(run_floor(actors, args.trials))
            for actor in actors:
                ray.kill(actor)
            print(f"  raytuner {1000 * ours[-1] / args.trials:.2f} ms/trial   "
                  f"Ray floor {1000 * floor[-1] / args.trials:.2f} ms/trial", flush=True)
    ours_ms, floor_ms = (1000 * statistics.median(x) / args.trials for x in (ours, floor))
    print(f"{args.trials} trials x {REPORTS} reports, warm workers, TensorBoard {'on' if args.tensorboard else 'off'}: "
          f"raytuner {ours_ms:.2f} ms/trial, Ray's floor {floor_ms:.2f} ms/trial (medians of {args.repeat}); "
          f"raytuner's own cost {ours_ms - floor_ms:.2f} ms/trial")
    ray.shutdown()


if __name__ == "__main__":
    main()
