"""Population based training on Ray Tune's own example problem, raytuner against Ray Tune.

The problem is Ray Tune's ``pbt_function`` (python/ray/tune/examples/pbt_function.py, Ray
2.60), rewritten here step for step: an "accuracy" grows fastest when ``lr`` is near an
optimal value that rises and then falls as the accuracy grows (a triangle wave), with
Gaussian noise; every population starts at ``lr = 0.0001`` (as in the example), so only
exploits and explores find the schedule. The same settings on both sides: population 8,
2 trials at a time on a local Ray with 2 CPUs, ``perturbation_interval`` 4 reports (the
example: 5), a checkpoint every 4 reports (aligned with the perturbations, as the example
advises), 200 reports per trial (``--steps``; fewer when accuracy passes 200, the example's
``done``; the example allows 1000),
``hyperparam_mutations`` ``lr: uniform(0.0001, 0.02)`` and ``some_other_factor: [1, 2]``,
quantile 0.25, resample probability 0.25, factors 0.8 and 1.2. raytuner keeps the newest two
checkpoints of each trial; Ray Tune keeps all of them, as with the example's setting (the
best two by accuracy) it fails clones whose donor's checkpoint it pruned while they waited
for a slot (ray#9036; ``--ray-tune-keep 2`` runs that setting and counts the failed
trials). Ray Tune reuses its actors (its fastest setting).

The score of a run is the best final accuracy in its population (what
``get_best_result`` reports); wall time is ``fit()`` end to end. ``--part pb2`` compares
raytuner's PB2 with its PBT at a population of 4, the PB2 paper's setting.

    python benchmarks/pbt.py --part versus --seeds 5
    python benchmarks/pbt.py --part pb2 --seeds 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

import numpy as np

INTERVAL = 4


def accuracy_step(acc: float, lr: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """One step of Ray Tune's pbt_function: (new accuracy, optimal lr, q_err)."""
    midpoint, q_tolerance, noise_level = 100, 3, 2
    optimal_lr = 0.01 * acc / midpoint if acc < midpoint else 0.01 - 0.01 * (acc - midpoint) / midpoint
    optimal_lr = min(0.01, max(0.001, optimal_lr))
    q_err = max(lr, optimal_lr) / min(lr, optimal_lr)
    if q_err < q_tolerance:
        acc += (1.0 / q_err) * rng.random()
    elif lr > optimal_lr:
        acc -= (q_err - q_tolerance) * rng.random()
    acc += noise_level * rng.normal()
    return max(0.0, acc), optimal_lr, q_err


def _train(config, restored, report):
    """The example's loop; ``report(metrics, folder or None)`` is each library's."""
    acc, step = 0.0, 1
    if restored is not None:
        with open(os.path.join(restored, "checkpoint.json")) as handle:
            state = json.load(handle)
        acc, step = state["acc"], state["step"] + 1
    rng = np.random.default_rng()
    while step <= config["steps"]:
        acc, optimal_lr, q_err = accuracy_step(acc, config["lr"], rng)
        metrics = {"mean_accuracy": acc, "cur_lr": config["lr"], "optimal_lr": optimal_lr, "q_err": q_err,
                   "done": int(acc > 200)}
        if step % config["checkpoint_interval"] == 0:
            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "checkpoint.json"), "w") as handle:
                    json.dump({"acc": acc, "step": step}, handle)
                report(metrics, folder)
        else:
            report(metrics, None)
        if acc > 200:
            return
        step += 1


def raytuner_trainable(config):
    import raytuner as rt

    checkpoint = rt.get_checkpoint()
    _train(config, None if checkpoint is None else str(checkpoint), lambda m, f: rt.report(m, checkpoint=f))


def tune_trainable(config):
    from ray import tune

    checkpoint = tune.get_checkpoint()

    def report(metrics, folder):
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)

    if checkpoint is None:
        _train(config, None, report)
    else:
        with checkpoint.as_directory() as folder:
            _train(config, folder, report)


SPACE = {"lr": 0.0001, "some_other_factor": 1, "checkpoint_interval": INTERVAL}


def run_raytuner(seed: int, root: str, population: int, steps: int, pb2: bool = False) -> dict:
    import raytuner as rt

    kind = rt.PB2Scheduler if pb2 else rt.PBTScheduler
    scheduler = kind(perturbation_interval=INTERVAL, max_resource=steps, seed=seed,
                     mutations={"lr": rt.uniform(0.0001, 0.02), "some_other_factor": [1, 2]})
    start = time.perf_counter()
    results = rt.Tuner(raytuner_trainable, space={**SPACE, "steps": steps}, metric="mean_accuracy", mode="max",
                       num_trials=population, max_concurrent=2, scheduler=scheduler, storage_path=root,
                       checkpoints_to_keep=2, verbose=0, keep_workers_s=0, tensorboard=False, seed=seed).fit()
    wall = time.perf_counter() - start
    assert not results.errors, results.errors
    return {"score": max(t.metrics["mean_accuracy"] for t in results.trials), "wall_s": wall}


def run_ray_tune(seed: int, root: str, population: int, steps: int, keep: int | None = None) -> dict:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    random.seed(seed)  # Ray Tune's PBT draws donors and explores from Python's global random
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=INTERVAL,
                                  hyperparam_mutations={"lr": tune.uniform(0.0001, 0.02),
                                                        "some_other_factor": [1, 2]},
                                  quantile_fraction=0.25, resample_probability=0.25, perturbation_factors=(1.2, 0.8))
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune_trainable,
        param_space={**SPACE, "steps": steps},
        tune_config=tune.TuneConfig(scheduler=pbt, metric="mean_accuracy", mode="max", num_samples=population,
                                    max_concurrent_trials=2, reuse_actors=True),
        # The trainable ends at model step `steps`, as raytuner's max_resource does: Ray
        # Tune's training_iteration counts the trial's own reports, not its model's steps,
        # so stopping there would end a clone that moved back to an earlier donor short.
        # Every checkpoint kept: with the example's setting (the best two by accuracy) or
        # the newest two, Ray Tune prunes checkpoints that paused clones still need and
        # fails them ("Could not recover from checkpoint as it does not exist on storage
        # anymore", ray#9036); --ray-tune-keep 2 shows it.
        run_config=tune.RunConfig(storage_path=root, verbose=0, stop={"done": 1},
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_score_attribute="mean_accuracy",
                                                                          num_to_keep=keep)),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - start
    if grid.errors:
        return {"failed_trials": len(grid.errors), "error": str(grid.errors[0])[:200], "wall_s": wall}
    return {"score": max(r.metrics["mean_accuracy"] for r in grid), "wall_s": wall}


def summary(name: str, runs: list[dict]) -> str:
    scores, walls = [r["score"] for r in runs if "score" in r], [r["wall_s"] for r in runs]
    failed = [r["failed_trials"] for r in runs if "failed_trials" in r]
    text = f"{name:<22}"
    if scores:
        spread = f" +- {statistics.stdev(scores):.1f}" if len(scores) > 1 else ""
        text += (f" score {statistics.mean(scores):7.1f}{spread} (median {statistics.median(scores):.1f}, "
                 f"runs {', '.join(f'{s:.1f}' for s in scores)})")
    if failed:
        text += f" {len(failed)} of {len(runs)} runs failed trials ({', '.join(map(str, failed))} of each population)"
    return text + f"   wall {statistics.mean(walls):6.1f} s (runs {', '.join(f'{w:.1f}' for w in walls)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["versus", "pb2"], default="versus")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200, help="reports per trial at most")
    parser.add_argument("--ray-tune-keep", type=int, default=None,
                        help="Ray Tune's num_to_keep (default: every checkpoint)")
    args = parser.parse_args()
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _local_ray

    _local_ray.start()  # the trainables are this script's (__main__): they travel by value
    runs: dict[str, list[dict]] = {}
    try:
        with tempfile.TemporaryDirectory() as root:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if args.part == "versus":
                    # Alternate which side goes first: a warm cluster favours the second.
                    order = ["raytuner PBT (8)", "Ray Tune PBT (8)"]
                    for name in order if seed % 2 == 0 else order[::-1]:
                        run = (run_raytuner(seed, root, 8, args.steps) if name.startswith("raytuner")
                               else run_ray_tune(seed, root, 8, args.steps, args.ray_tune_keep))
                        runs.setdefault(name, []).append(run)
                        print(json.dumps({"method": name, "seed": seed, **run}), flush=True)
                else:
                    for name, pb2 in (("raytuner PBT (4)", False), ("raytuner PB2 (4)", True)):
                        run = run_raytuner(seed, root, 4, args.steps, pb2=pb2)
                        runs.setdefault(name, []).append(run)
                        print(json.dumps({"method": name, "seed": seed, **run}), flush=True)
    finally:
        _local_ray.stop()
    for name, done in runs.items():
        print(summary(name, done))


if __name__ == "__main__":
    main()
