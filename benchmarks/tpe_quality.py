"""Search quality of TPESearcher beside Optuna 5's TPESampler, HyperOptSearcher and random.

Each (problem, method, seed) is one sweep of ``--trials`` trials, ``--workers`` (2) at a
time: simulated without Ray (_sweeps.py: every method sees the same trial durations,
lognormal with sd ``--jitter``, on a seed) or, with ``--ray``, one ``rt.Tuner(...).fit()``
on a local Ray with 2 CPUs. Problems (_problems.py): ``mixed`` and ``conditional``
(designed for issue 13), ``svc-cancer``, ``sgd-digits`` and ``mlp-digits`` (tables of real
training runs on data inside scikit-learn), and the others of that table. Methods
(_methods.py): ``tpesearcher``, ``optuna`` (OptunaSearcher with Optuna 5's default
``TPESampler(seed=seed)``: multivariate, constant liar, which sees the running trials,
RUNNING in the study), ``hyperopt``, ``random``, with options after dashes
(``tpesearcher-bandwidth=0.07``). The multi-fidelity family runs through search_sim.py.

Score: regret, the best loss found minus the problem's minimum, after ``--trials``
trials; per method the median (and mean) over seeds, the ratio of medians to Optuna's
with its 90% paired bootstrap interval over the seeds (_stats.py), wins/ties/losses
against Optuna, and the milliseconds per ask (with ``--ray``: seconds per sweep).
``--first-seed`` moves the seeds, to check a choice on seeds it was not made on. How
much a median moves with the seeds, and between runs on Ray: benchmarks/RESULTS.md.

    python benchmarks/tpe_quality.py --seeds 100 --trials 60 --problems mixed conditional
    python benchmarks/tpe_quality.py --seeds 100 --trials 100 --problems mlp-digits svc-cancer sgd-digits
    python benchmarks/tpe_quality.py --ray --seeds 100 --trials 60 --problems mixed conditional
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _sweeps  # noqa: E402
from _problems import problem  # noqa: E402
from _stats import median_ratio, record  # noqa: E402

PROBLEMS = ("mixed", "conditional", "svc-cancer", "sgd-digits", "mlp-digits")
METHODS = ("tpesearcher", "optuna", "hyperopt", "random")
CLOCK = 11  # the stream of trial durations RESULTS.md's figures were measured with


def print_table(problem_name: str, methods: list[str], regrets: dict[str, list[float]], last: dict[str, str],
                last_name: str) -> None:
    ref = regrets.get("optuna")
    print(f"\n{problem_name}: median regret (mean), ratio to optuna's median [90% bootstrap interval over seeds], "
          f"wins/ties/losses vs optuna, {last_name}")
    for method in methods:
        r = np.array(regrets[method])
        line = f"  {method:<28} {np.median(r):10.4g} ({np.mean(r):.4g})"
        if ref is not None:
            ratio, low, high = median_ratio(r, ref)
            line += f"  x{ratio:6.3f} [{low:.2f}, {high:.2f}]  {record(r, ref)}"
        print(line + f"  {last[method]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _sweeps.add_arguments(parser, problems=PROBLEMS, methods=METHODS, seeds=10, trials=60, workers=2, jitter=0.3)
    args = parser.parse_args()
    with _sweeps.local_ray(args.workers) if args.ray else contextlib.nullcontext() as root:
        where = "rt.Tuner on a local Ray, 2 CPUs" if args.ray else "simulated asynchronous"
        print(f"{args.seeds} seeds from {args.first_seed}, {args.trials} trials, {args.workers} at a time ({where})")
        for problem_name in args.problems:
            minimum = problem(problem_name).minimum  # builds a table before timing
            regrets: dict[str, list[float]] = {m: [] for m in args.methods}
            seconds = {m: 0.0 for m in args.methods}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for method in args.methods:
                    values, spent = _sweeps.sweep(args, problem_name, method, seed, CLOCK, root)
                    regrets[method].append(min(values) - minimum)
                    seconds[method] += spent / args.seeds / (1 if args.ray else args.trials)
            last = {m: f"{s:6.2f} s" if args.ray else f"{1e3 * s:6.2f} ms" for m, s in seconds.items()}
            print_table(problem_name, args.methods, regrets, last, "s per sweep" if args.ray else "ms per ask")


if __name__ == "__main__":
    main()
