"""Search quality at equal total epochs: TPESearcher+ASHA (ours), TPE+ASHA (HyperOptSearcher),
OptunaTPE+ASHA (Optuna 5's default TPESampler through OptunaSearcher) against random+ASHA,
random+FIFO and Ray Tune's HyperOptSearch+ASHAScheduler, on the synthetic multi-fidelity problem
(benchmarks/_synthetic.py: 4 hyperparameters, learning curves that cross and overfit, noise).

Every method gets the same budget of epochs (``--budget`` full runs of R=27 epochs) and runs
2 trials at a time on a local Ray with 2 CPUs. Reports are put in the order they were made
and cut at the budget; the incumbent after each epoch is the report with the lowest noisy
loss so far, and it is scored by its true (noise-free) loss. Per method, over the seeds:
the median (and mean) best loss at the budget, the median epochs until the incumbent's true loss
reaches the target (the 5% quantile of a random config's final loss; "inf" = not within
the budget, which counts as the largest value in the median); the mean number of trials
within the budget and of those that reached R.

``--policies`` also runs TPE+ASHA with each of HyperOptSearcher's ``stopped_trials``
policies, to choose its default.

``--task digits`` runs the same comparison on a real task (benchmarks/_digits.py: a small
Keras MLP on scikit-learn's bundled digits, R=9 epochs; the incumbent is chosen by
validation loss and scored by test loss; no target). benchmarks/search_sim.py replays the
synthetic problem without Ray, to compare searchers over many seeds.

    python benchmarks/search_quality.py                       # 10 seeds, 4 methods
    python benchmarks/search_quality.py --policies            # and the 3 stopped_trials policies
    python benchmarks/search_quality.py --seeds 2 --budget 4  # a quick look
    python benchmarks/search_quality.py --seeds 60 --first-seed 20  # seeds 20-79
    python benchmarks/search_quality.py --task digits --seeds 1 --budget 2
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
import _digits  # noqa: E402
import _synthetic as syn  # noqa: E402
from _stats import median_ratio  # noqa: E402

R, ETA, N_STARTUP, CONCURRENCY = syn.MAX_EPOCHS, 3, 10, 2
MANY = 10_000  # num_trials when the epoch budget ends the search
TARGET_QUANTILE = 0.05  # of a random config's final true loss


OVERFIT = 1.0  # --overfit
TASK = syn  # --task: the module with space(), hyperopt_space(), train() and train_ray_tune()


def constants(seed: int) -> dict:
    return syn.settings(seed, overfit=OVERFIT) if TASK is syn else TASK.settings(seed)


def run_raytuner(searcher_name: str, scheduler_name: str, seed: int, budget: int, root: str,
                 policy: str = "penalize") -> list[dict]:
    import raytuner as rt
    from raytuner.schedulers import ASHAScheduler, FIFOScheduler
    from raytuner.search import HyperOptSearcher, RandomSearcher, TPESearcher

    inner = (HyperOptSearcher(n_startup=N_STARTUP, seed=seed, stopped_trials=policy) if searcher_name == "tpe"
             else TPESearcher(n_startup=N_STARTUP, seed=seed) if searcher_name == "tpesearcher"
             else _optuna_tpe(seed) if searcher_name == "optuna"
             else RandomSearcher(seed=seed))
    scheduler = (ASHAScheduler(max_resource=R, reduction_factor=ETA) if scheduler_name == "asha"
                 else FIFOScheduler())
    space = {**TASK.space(), **constants(seed)}
    results = rt.Tuner(TASK.train, space=space, metric="loss", num_trials=MANY, max_concurrent=CONCURRENCY,
                       searcher=syn.epoch_budget(inner, budget), scheduler=scheduler, storage_path=root,
                       verbose=0).fit()
    return syn.raytuner_reports(results)


def _optuna_tpe(seed: int):
    """Optuna 5's default TPESampler (its own start-up count, 10) behind OptunaSearcher: running
    trials stay RUNNING in the study (its constant liar sees them), ASHA's stops are told PRUNED."""
    import optuna

    from raytuner.search import OptunaSearcher

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return OptunaSearcher(sampler=optuna.samplers.TPESampler(seed=seed))


def run_ray_tune(seed: int, budget: int, root: str) -> list[dict]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.hyperopt import HyperOptSearch

    class EpochBudget(tune.Stopper):
        def __init__(self) -> None:
            self.used = 0

        def __call__(self, trial_id, result) -> bool:
            self.used += 1
            return False

        def stop_all(self) -> bool:
            return self.used >= budget

    searcher = HyperOptSearch(TASK.hyperopt_space(), metric="loss", mode="min", n_initial_points=N_STARTUP,
                              random_state_seed=seed)
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="loss", mode="min", max_t=R, grace_period=1,
                              reduction_factor=ETA)
    tuner = tune.Tuner(
        tune.with_parameters(_tune_trainable, constants=constants(seed)),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=MANY,
                                    max_concurrent_trials=CONCURRENCY, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=root, verbose=0, stop=EpochBudget()),
    )
    grid = tuner.fit()
    rows = []
    for result in grid:
        frame = result.metrics_dataframe
        if frame is None:
            continue
        for row in frame.to_dict("records"):
            rows.append({"trial": result.path, "t": row["timestamp_s"], "loss": row["loss"],
                         "true_loss": row["true_loss"], "epoch": row["epoch"], "began": row["began"]})
    rows.sort(key=lambda r: r["t"])
    return rows


def _tune_trainable(config, constants):
    TASK.train_ray_tune({**config, **constants})


METHODS = {
    "TPESearcher+ASHA": lambda seed, budget, root: run_raytuner("tpesearcher", "asha", seed, budget, root),
    "TPE+ASHA": lambda seed, budget, root: run_raytuner("tpe", "asha", seed, budget, root),
    "OptunaTPE+ASHA": lambda seed, budget, root: run_raytuner("optuna", "asha", seed, budget, root),
    "random+ASHA": lambda seed, budget, root: run_raytuner("random", "asha", seed, budget, root),
    "random+FIFO": lambda seed, budget, root: run_raytuner("random", "fifo", seed, budget, root),
    "RayTune TPE+ASHA": run_ray_tune,
}
POLICIES = {
    f"TPE+ASHA {policy}": (lambda p: lambda seed, budget, root: run_raytuner("tpe", "asha", seed, budget, root, p))(policy)
    for policy in ("penalize", "last", "ignore")
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=10, help="epochs per method, in full runs of R (27; digits 9)")
    parser.add_argument("--policies", action="store_true", help="also compare stopped_trials policies")
    parser.add_argument("--only-policies", action="store_true", help="compare stopped_trials policies only")
    parser.add_argument("--overfit", type=float, default=1.0, help="scale of late overfitting (see _synthetic)")
    parser.add_argument("--task", choices=["synthetic", "digits"], default="synthetic")
    parser.add_argument("--no-ray-tune", action="store_true", help="leave out Ray Tune (about 1 s per trial)")
    parser.add_argument("--methods", nargs="+", default=None, help="run only these (names as printed)")
    args = parser.parse_args()
    global OVERFIT, TASK, R
    OVERFIT = args.overfit
    if args.task == "digits":
        TASK, R = _digits, _digits.MAX_EPOCHS

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    syn.register()
    _digits.register()
    budget = args.budget * R
    if TASK is syn:
        finals = [syn.true_loss({**c, "_overfit": OVERFIT}, R) for c in syn.random_configs()]
        target = float(np.quantile(finals, TARGET_QUANTILE))
    else:
        target = -math.inf  # no known quantile: "epochs to target" reads inf
    methods = {} if args.only_policies else dict(METHODS)
    if args.no_ray_tune:
        methods.pop("RayTune TPE+ASHA", None)
    if args.policies or args.only_policies:
        methods.update(POLICIES)
    if args.methods:
        methods = {name: run for name, run in methods.items() if name in args.methods}
    best: dict[str, list[float]] = {name: [] for name in methods}
    reach: dict[str, list[float]] = {name: [] for name in methods}
    seconds: dict[str, float] = {name: 0.0 for name in methods}
    trials: dict[str, list[int]] = {name: [] for name in methods}
    full: dict[str, list[int]] = {name: [] for name in methods}
    with tempfile.TemporaryDirectory() as root:
        run_raytuner("random", "fifo", 0, R, os.path.join(root, "warm-up"))  # start the workers once
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name, run in methods.items():
                start = time.perf_counter()
                rows = run(seed, budget, os.path.join(root, f"{name.replace(' ', '_')}_{seed}"))
                seconds[name] += time.perf_counter() - start
                curve = syn.incumbent_curve(rows, budget)
                if len(curve) < budget:
                    print(f"  note: {name} seed {seed} ran {len(curve)} of {budget} epochs", flush=True)
                best[name].append(float(curve[-1]))
                reach[name].append(syn.epochs_to(curve, target))
                depth = syn.trial_depths(rows, budget)
                trials[name].append(len(depth))
                full[name].append(sum(epochs >= R for epochs in depth.values()))
            print(f"seed {seed}: " + ", ".join(f"{n} {best[n][-1]:.3f}" for n in methods), flush=True)

    ref = "random+ASHA" if "random+ASHA" in methods else next(iter(methods))
    print(f"\ntask {args.task}, {args.seeds} seeds ({args.first_seed}-{args.first_seed + args.seeds - 1}), "
          f"budget {budget} epochs ({args.budget} x R={R}), {CONCURRENCY} trials at a time, "
          + (f"overfit x{OVERFIT:g}, target true loss <= {target:.3f} ({TARGET_QUANTILE:.0%} quantile of random "
             "configs)" if TASK is syn else "score: test loss of the incumbent by validation loss; no target"))
    print(f"{'method':<22} {'median best':>12} {'mean':>7} {'vs ' + ref:>18} {'epochs to target':>17} {'reached':>8} "
          f"{'W/T/L vs ' + ref:>16} {'trials':>6} {'full':>5} {'s/seed':>7}")
    for name in methods:
        med, ref_med = syn.median(best[name]), syn.median(best[ref])
        wins = sum(a < b for a, b in zip(best[name], best[ref]))
        losses = sum(a > b for a, b in zip(best[name], best[ref]))
        record = f"{wins}/{args.seeds - wins - losses}/{losses}"
        hits = sum(math.isfinite(e) for e in reach[name])
        print(f"{name:<22} {med:12.4f} {np.mean(best[name]):7.4f} {med / ref_med:18.3f} "
              f"{syn.median(reach[name]):17.0f} {hits:>5}/{args.seeds:<2} {record:>16} "
              f"{np.mean(trials[name]):6.1f} {np.mean(full[name]):5.1f} {seconds[name] / args.seeds:7.1f}")
    if TASK is syn:
        _print_regrets(best, "OptunaTPE+ASHA" if "OptunaTPE+ASHA" in best else ref)


def _print_regrets(best: dict[str, list[float]], ref: str) -> None:
    """The synthetic task's regret (incumbent's true loss minus the least any config
    reaches), with ratios of medians to ``ref``'s and their 90% bootstrap intervals."""
    least = syn.minimum(R)
    print(f"\nregret: true loss of the incumbent - {least:.4f} (the least any config reaches); ratio of medians "
          f"to {ref} [90% bootstrap interval over seeds]")
    for name, values in best.items():
        regret, ref_regret = np.asarray(values) - least, np.asarray(best[ref]) - least
        ratio, low, high = median_ratio(regret, ref_regret)
        print(f"{name:<22} {np.median(regret):10.4f} ({np.mean(regret):.4f})  x{ratio:6.3f} [{low:.2f}, {high:.2f}]")


if __name__ == "__main__":
    main()
