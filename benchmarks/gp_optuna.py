"""GPSearcher and OptunaSearcher beside the other searchers, without Ray.

Four problems, each a function of a config (no noise, so that differences are the
searchers'):

- ``branin``: Branin-Hoo, 2 continuous parameters, minimum 0.397887 (smooth);
- ``hartmann6``: Hartmann 6-D on the unit cube, minimum -3.32237 (smooth, multimodal);
- ``mixed``: the final loss of benchmarks/_synthetic.py (log, stepped, linear and a 4-way
  categorical parameter), minimum 0.1;
- ``cat8``: 8 categorical parameters of 5 options with additive random effects plus one
  continuous parameter, minimum known (categorical-heavy: where one-hot GPs are weak).

Each method proposes ``--budget`` configs per seed. With ``--workers 1`` a trial ends before
the next is asked (serial); with ``--workers W`` W trials run at once on a simulated clock,
each taking a lognormal time (sigma 0.5) drawn from the seed, so that results land out of
order and each searcher must handle pending trials. The score is the simple regret
(best value found - minimum) after 10, 20, ... trials; per method the median over seeds,
and the ratio of medians to ``gp``'s.

Methods: ``gp`` (GPSearcher, defaults), ``gp:key=value,...`` (other arguments, e.g.
``gp:n_startup=5`` or ``gp:pending=constant_liar``), ``optuna`` (OptunaSearcher with
Optuna's default TPESampler), ``hyperopt`` (HyperOptSearcher), ``random``, and ``tpe``
(TPESearcher, when search/_tpe.py is present).

``--equality`` checks that OptunaSearcher asks exactly the configs of Optuna's own ask/tell
loop (``study.ask()``, ``trial.suggest_*`` with the same distributions, ``study.tell``) on
the same seeds, serially. ``--latency`` times one suggestion against the number of
observations (the history given as ``warm_start``). ``--ray`` runs the comparison through
the Tuner on a local Ray (2 CPUs), ``--workers`` trials at a time.

    python benchmarks/gp_optuna.py --problems branin hartmann6 mixed cat8 --seeds 8 --budget 40
    python benchmarks/gp_optuna.py --workers 4 --methods gp gp:pending=constant_liar optuna random
    python benchmarks/gp_optuna.py --equality --seeds 20
    python benchmarks/gp_optuna.py --latency
    python benchmarks/gp_optuna.py --ray --problems branin --seeds 3 --budget 30 --workers 2
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synthetic as syn  # noqa: E402

import raytuner as rt  # noqa: E402
from raytuner.search import Outcome, TrialEnd  # noqa: E402

# --- problems ---------------------------------------------------------------------------


def branin(c: dict) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(c: dict) -> float:
    x = np.array([c[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


_CAT_EFFECTS = np.random.default_rng(2026).random((8, 5))


def cat8(c: dict) -> float:
    return float(sum(_CAT_EFFECTS[i, c[f"c{i}"]] for i in range(8)) + (c["x"] - 0.3) ** 2)


PROBLEMS: dict[str, tuple[dict, Any, float]] = {
    "branin": ({"x1": rt.uniform(-5, 10), "x2": rt.uniform(0, 15)}, branin, 0.397887),
    "hartmann6": ({f"x{i}": rt.uniform(0, 1) for i in range(6)}, hartmann6, -3.32237),
    "mixed": (syn.space(), syn.final_loss, 0.1),
    "cat8": ({**{f"c{i}": rt.choice(list(range(5))) for i in range(8)}, "x": rt.uniform(0, 1)}, cat8,
             float(_CAT_EFFECTS.min(axis=1).sum())),
}

# --- methods ----------------------------------------------------------------------------


def make(method: str, space: dict, seed: int, **kwargs: Any):
    name, _, args = method.partition(":")
    for item in filter(None, args.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = int(value) if value.lstrip("-").isdigit() else value
    if name == "gp":
        from raytuner.search import GPSearcher

        return GPSearcher(space, seed=seed, **kwargs)
    if name == "optuna":
        from raytuner.search import OptunaSearcher

        return OptunaSearcher(space, seed=seed, **kwargs)
    if name == "hyperopt":
        from raytuner.search import HyperOptSearcher

        return HyperOptSearcher(space, seed=seed, **kwargs)
    if name == "random":
        from raytuner.search import RandomSearcher

        return RandomSearcher(space, seed=seed)
    if name == "tpe":
        from raytuner.search._tpe import TPESearcher  # on branch tpe; not committed here

        return TPESearcher(space, seed=seed, **kwargs)
    raise SystemExit(f"unknown method {method!r}")


def run(method: str, problem: str, seed: int, budget: int, workers: int) -> list[float]:
    """Values of the trials in the order they finished."""
    space, f, _ = PROBLEMS[problem]
    searcher = make(method, space, seed)
    searcher.setup(None, budget)
    clock = np.random.default_rng([seed, 99])
    running: list[tuple[float, int, dict]] = []
    values: list[float] = []
    now, asked = 0.0, 0
    while len(values) < budget:
        while asked < budget and len(running) < workers:
            config = searcher.suggest(str(asked))
            if config is None:  # "not now": wait for a result
                break
            duration = float(clock.lognormal(0.0, 0.5)) if workers > 1 else 1.0
            heapq.heappush(running, (now + duration, asked, config))
            asked += 1
        now, trial, config = heapq.heappop(running)
        value = float(f(config))
        searcher.on_trial_complete(str(trial), Outcome(TrialEnd.COMPLETED, value))
        values.append(value)
    return values


def compare(args: argparse.Namespace) -> None:
    checkpoints = list(range(10, args.budget + 1, 10))
    for problem in args.problems:
        optimum = PROBLEMS[problem][2]
        print(f"\n{problem}: simple regret (median over {args.seeds} seeds; ratio to gp's median), "
              f"{args.workers} worker(s)")
        print(f"{'method':32s}" + "".join(f"{f'@{n}':>18s}" for n in checkpoints) + f"{'s/run':>8s}")
        medians: dict[str, list[float]] = {}
        for method in args.methods:
            regrets, spent = [], 0.0
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                start = time.perf_counter()
                values = run(method, problem, seed, args.budget, args.workers)
                spent += time.perf_counter() - start
                best = np.minimum.accumulate(values)
                regrets.append([best[n - 1] - optimum for n in checkpoints])
            medians[method] = list(np.median(regrets, axis=0))
            base = medians.get(args.methods[0], medians[method])
            cells = "".join(f"{m:10.4f} ({m / b if b > 0 else math.inf:5.2f})" for m, b in zip(medians[method], base))
            print(f"{method:32s}{cells}{spent / args.seeds:8.2f}", flush=True)


def equality(args: argparse.Namespace) -> None:
    import optuna

    from raytuner.search import OptunaSearcher
    from raytuner.search._optuna_space import ask, distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for problem in args.problems:
        space, f, _ = PROBLEMS[problem]
        same = 0
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            ours = OptunaSearcher(space, seed=seed)
            ours.setup(None, args.budget)
            mine = []
            for i in range(args.budget):
                config = ours.suggest(str(i))
                mine.append(config)
                ours.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, f(config)))
            # Optuna's own loop: the same distributions, asked in the space's key order.
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
            table, theirs = distributions(space), []
            for _ in range(args.budget):
                trial = study.ask()
                config = ask(space, table, trial)
                theirs.append(config)
                study.tell(trial, f(config))
            same += mine == theirs
        print(f"{problem}: OptunaSearcher asked exactly Optuna's own configs on {same} of {args.seeds} seeds "
              f"({args.budget} trials each)")


def latency(args: argparse.Namespace) -> None:
    space, f, _ = PROBLEMS["hartmann6"]
    sizes = [10, 25, 50, 100, 200, 400, 800]
    print("\nhartmann6 (6 parameters): seconds per suggestion after N observations (median of 3)")
    print(f"{'method':12s}" + "".join(f"{f'N={n}':>10s}" for n in sizes))
    history = []
    sampler = make("random", space, 0)
    sampler.setup(None, max(sizes))
    for i in range(max(sizes)):
        config = sampler.suggest(str(i))
        history.append((config, f(config)))
    for method in args.methods:
        row = []
        for n in sizes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # GPSearcher's comfort-zone warning
                searcher = make(method, space, 1, warm_start=history[:n])
                searcher.setup(None, n + 10)
                times = []
                for k in range(3):
                    start = time.perf_counter()
                    searcher.suggest(f"t{k}")
                    times.append(time.perf_counter() - start)
            row.append(float(np.median(times)))
            if row[-1] > 20:
                break
        print(f"{method:12s}" + "".join(f"{t:10.3f}" for t in row), flush=True)


def _one_shot(config: dict) -> None:
    rt.report({"value": PROBLEMS[config.pop("_problem")][1](config)})


def on_ray(args: argparse.Namespace) -> None:
    """The same comparison through the Tuner on a local Ray, ``--workers`` trials at a time."""
    import tempfile

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    for problem in args.problems:
        space, _, optimum = PROBLEMS[problem]
        print(f"\n{problem} on local Ray: median simple regret after {args.budget} trials over {args.seeds} seeds, "
              f"{args.workers} at a time")
        for method in args.methods:
            regrets, spent = [], 0.0
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                start = time.perf_counter()
                with tempfile.TemporaryDirectory() as root:
                    results = rt.Tuner(_one_shot, metric="value",
                                       num_trials=args.budget, max_concurrent=args.workers,
                                       searcher=make(method, {**space, "_problem": problem}, seed),
                                       storage_path=root, verbose=0, tensorboard=False).fit()
                    regrets.append(min(t.metrics["value"] for t in results.trials) - optimum)
                spent += time.perf_counter() - start
            print(f"{method:32s}{np.median(regrets):10.4f}{spent / args.seeds:8.1f} s/run", flush=True)
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", nargs="+", default=["branin", "hartmann6", "mixed", "cat8"],
                        choices=sorted(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=["gp", "optuna", "hyperopt", "random"])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--equality", action="store_true")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--ray", action="store_true", help="run through the Tuner on a local Ray")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.equality:
        equality(args)
    elif args.latency:
        latency(args)
    elif args.ray:
        on_ray(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
