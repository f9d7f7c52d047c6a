"""Search quality under ASHA at equal total epochs, on a local Ray: raytuner's searchers
beside Ray Tune's HyperOptSearch+ASHAScheduler, on the synthetic multi-fidelity problem
(benchmarks/_synthetic.py: 4 hyperparameters, learning curves that cross and overfit, noise)
or, with ``--task digits``, a small Keras MLP on scikit-learn's bundled digits (_digits.py,
R=9 epochs; the incumbent is chosen by validation loss and scored by test loss; no target).

A method is ``searcher/scheduler``, as in search_sim.py, which replays the synthetic
problem without Ray: searchers of _methods.py (``tpesearcher``, ``hyperopt``, ``optuna``,
``random``, options after dashes), every model-based one starting after 10 trials as Ray
Tune's adapters do; schedulers ``asha`` (``ASHAScheduler(max_resource=R,
reduction_factor=3)``) and ``fifo``; ``raytune/asha`` is Ray Tune's own pair
(``n_initial_points=10``, ``max_t=R, grace_period=1, reduction_factor=3``). ``optuna`` is
Optuna 5's default TPESampler through OptunaSearcher: running trials stay RUNNING in the
study (its constant liar sees them), ASHA's stops are told PRUNED.

Every method gets the same budget of epochs (``--budget`` full runs of R=27 epochs) and runs
2 trials at a time on a local Ray with 2 CPUs. Reports are put in the order they were made
and cut at the budget; the incumbent after each epoch is the report with the lowest noisy
loss so far, and it is scored by its true (noise-free) loss. Per method, over the seeds:
the median (and mean) best loss at the budget, the median epochs until the incumbent's true
loss reaches the target (the 5% quantile of a random config's final loss; "inf" = not
within the budget, which counts as the largest value in the median); the mean number of
trials within the budget and of those that reached R; on the synthetic task, the regret
with its 90% bootstrap interval (_mf_report.py). Which trial reports next is Ray's timing,
so a run is not reproducible from its seeds. Figures: benchmarks/RESULTS.md.

``--policies`` also runs ``hyperopt/asha`` with each of HyperOptSearcher's
``stopped_trials`` policies, to choose its default.

    python benchmarks/search_quality.py --seeds 100 --budget 30 --methods tpesearcher/asha optuna/asha hyperopt/asha random/asha
    python benchmarks/search_quality.py --only-policies --seeds 40
    python benchmarks/search_quality.py --seeds 2 --budget 4              # a quick look
    python benchmarks/search_quality.py --task digits --seeds 10 --methods tpesearcher/asha optuna/asha random/asha
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
import _local_ray  # noqa: E402
import _methods  # noqa: E402
import _mf_report  # noqa: E402
import _synthetic as syn  # noqa: E402
from _mf_problems import problem  # noqa: E402

R, ETA, N_STARTUP, CONCURRENCY = syn.MAX_EPOCHS, 3, 10, 2
MANY = 10_000  # num_trials when the epoch budget ends the search
TARGET_QUANTILE = 0.05  # of a random config's final true loss
METHODS = ("tpesearcher/asha", "hyperopt/asha", "optuna/asha", "random/asha", "random/fifo", "raytune/asha")
POLICIES = tuple(f"hyperopt-stopped_trials={policy}/asha" for policy in ("penalize", "last", "ignore"))

OVERFIT = 1.0  # --overfit
TASK = syn  # --task: the module with space(), hyperopt_space(), train() and train_ray_tune()


def constants(seed: int) -> dict:
    return syn.settings(seed, overfit=OVERFIT) if TASK is syn else TASK.settings(seed)


def run(method: str, seed: int, budget: int, root: str) -> list[dict]:
    """The reports of one experiment of ``method`` (``searcher/scheduler``), in the order made."""
    if method == "raytune/asha":
        return run_ray_tune(seed, budget, root)
    import raytuner as rt
    from raytuner.schedulers import ASHAScheduler, FIFOScheduler

    searcher_name, scheduler_name = method.split("/")
    inner = _methods.searcher(searcher_name, seed, defaults={"n_startup": N_STARTUP})
    scheduler = {"asha": lambda: ASHAScheduler(max_resource=R, reduction_factor=ETA), "fifo": FIFOScheduler}
    space = {**TASK.space(), **constants(seed)}
    results = rt.Tuner(TASK.train, space=space, metric="loss", num_trials=MANY, max_concurrent=CONCURRENCY,
                       searcher=syn.epoch_budget(inner, budget), scheduler=scheduler[scheduler_name](),
                       storage_path=root, verbose=0).fit()
    return syn.raytuner_reports(results)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=10, help="epochs per method, in full runs of R (27; digits 9)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="searcher/scheduler (see above)")
    parser.add_argument("--policies", action="store_true", help="also compare stopped_trials policies")
    parser.add_argument("--only-policies", action="store_true", help="compare stopped_trials policies only")
    parser.add_argument("--overfit", type=float, default=1.0, help="scale of late overfitting (see _synthetic)")
    parser.add_argument("--task", choices=["synthetic", "digits"], default="synthetic")
    parser.add_argument("--no-ray-tune", action="store_true", help="leave out Ray Tune (about 1 s per trial)")
    args = parser.parse_args()
    global OVERFIT, TASK, R
    OVERFIT = args.overfit
    if args.task == "digits":
        TASK, R = _digits, _digits.MAX_EPOCHS
    methods = [] if args.only_policies else [m for m in args.methods if not (args.no_ray_tune and m == "raytune/asha")]
    if args.policies or args.only_policies:
        methods += POLICIES
    for method in methods:
        searcher_name, _, scheduler_name = method.partition("/")
        if method != "raytune/asha" and (_methods.parse(searcher_name)[0] not in _methods.SEARCHERS
                                         or scheduler_name not in ("asha", "fifo")):
            parser.error(f"unknown method {method!r}: searcher/scheduler with a searcher of "
                         f"{', '.join(_methods.SEARCHERS)} and a scheduler asha or fifo, or raytune/asha")

    _local_ray.start(syn, _digits)
    budget = args.budget * R
    spec = problem("synthetic")
    target = float(np.quantile(spec.finals(OVERFIT), TARGET_QUANTILE)) if TASK is syn else -math.inf
    scores = _mf_report.Scores(methods)
    with tempfile.TemporaryDirectory() as root:
        run("random/fifo", 0, R, os.path.join(root, "warm-up"))  # start the workers once
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in methods:
                start = time.perf_counter()
                rows = run(method, seed, budget, os.path.join(root, f"{method.replace('/', '_')}_{seed}"))
                curve = scores.add(method, rows, budget, target, R, time.perf_counter() - start)
                if len(curve) < budget:
                    print(f"  note: {method} seed {seed} ran {len(curve)} of {budget} epochs", flush=True)
            print(f"seed {seed}: " + ", ".join(f"{m} {scores.best[m][-1]:.3f}" for m in methods), flush=True)
    _local_ray.stop()

    ref = "random/asha" if "random/asha" in methods else methods[0]
    print(f"\ntask {args.task}, {args.seeds} seeds ({args.first_seed}-{args.first_seed + args.seeds - 1}), "
          f"budget {budget} epochs ({args.budget} x R={R}), {CONCURRENCY} trials at a time, "
          + (f"overfit x{OVERFIT:g}, target true loss <= {target:.3f} ({TARGET_QUANTILE:.0%} quantile of random "
             "configs)" if TASK is syn else "score: test loss of the incumbent by validation loss; no target"))
    _mf_report.results(scores, ref)
    if TASK is syn:
        print()
        _mf_report.regrets(scores, spec, "optuna/asha" if "optuna/asha" in methods else ref)


if __name__ == "__main__":
    main()
