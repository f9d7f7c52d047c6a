"""GPSearcher and OptunaSearcher beside the TPEs and random, by regret after 10, 20, ... trials.

The sweeps are tpe_quality.py's (_sweeps.py, _problems.py, _methods.py), on the problems
of issue 17 by default: ``branin`` and ``hartmann6`` (smooth, continuous), ``synthetic``
(the final loss of _synthetic.py: log, stepped, linear and categorical parameters) and
``cat8`` (categorical-heavy), noise-free so that differences are the searchers'. With
``--workers 1`` (the default) a trial ends before the next is asked; with ``--workers W``
W trials run at once and each takes a lognormal time (sd ``--jitter``, 0.5) drawn from the
seed, so that results land out of order and each searcher must handle pending trials. The
score is the simple regret (best value found - minimum) after 10, 20, ... trials; per
method the median over seeds, and in brackets the ratio of medians to the first method's.
Methods (_methods.py): ``gp``, ``gp-n_startup=5``, ``gp-pending=constant_liar``,
``optuna``, ``tpesearcher``, ``hyperopt``, ``random``.

``--equality`` checks that OptunaSearcher asks exactly the configs of Optuna's own ask/tell
loop (``study.ask()``, ``trial.suggest_*`` with the same distributions, ``study.tell``) on
the same seeds, serially. ``--latency`` times one suggestion against the number of
observations (the history given as ``warm_start``). ``--ray`` runs the sweeps through the
Tuner on a local Ray (2 CPUs). Figures: benchmarks/RESULTS.md.

    python benchmarks/gp_optuna.py --seeds 8 --trials 40 --methods gp optuna tpesearcher hyperopt random
    python benchmarks/gp_optuna.py --workers 4 --problems branin hartmann6 --methods gp gp-pending=constant_liar optuna
    python benchmarks/gp_optuna.py --equality --seeds 20
    python benchmarks/gp_optuna.py --latency --methods gp optuna tpesearcher hyperopt
    python benchmarks/gp_optuna.py --ray --problems branin hartmann6 --seeds 10 --trials 30 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _sweeps  # noqa: E402
from _methods import searcher  # noqa: E402
from _problems import problem  # noqa: E402

from raytuner.search import Outcome, TrialEnd  # noqa: E402

PROBLEMS = ("branin", "hartmann6", "synthetic", "cat8")
METHODS = ("gp", "optuna", "hyperopt", "random")
CLOCK = 99  # the stream of trial durations RESULTS.md's figures were measured with


def compare(args: argparse.Namespace, root: str | None) -> None:
    checkpoints = list(range(10, args.trials + 1, 10)) if args.trials >= 10 else [args.trials]
    where = " on local Ray" if args.ray else ""
    for problem_name in args.problems:
        optimum = problem(problem_name).minimum
        print(f"\n{problem_name}{where}: simple regret (median over {args.seeds} seeds; ratio to "
              f"{args.methods[0]}'s median), {args.workers} worker(s)")
        print(f"{'method':32s}" + "".join(f"{f'@{n}':>18s}" for n in checkpoints) + f"{'s/run':>8s}")
        medians: dict[str, list[float]] = {}
        for method in args.methods:
            regrets, spent = [], 0.0
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                start = time.perf_counter()
                values, _ = _sweeps.sweep(args, problem_name, method, seed, CLOCK, root)
                spent += time.perf_counter() - start
                best = np.minimum.accumulate(values)
                regrets.append([best[n - 1] - optimum for n in checkpoints])
            medians[method] = list(np.median(regrets, axis=0))
            base = medians.get(args.methods[0], medians[method])
            cells = "".join(f"{m:10.4f} ({m / b if b > 0 else math.inf:5.2f})" for m, b in zip(medians[method], base))
            print(f"{method:32s}{cells}{spent / args.seeds:8.2f}", flush=True)


def equality(args: argparse.Namespace) -> None:
    import optuna

    from raytuner.search._optuna_space import ask, distributions

    for problem_name in args.problems:
        space, f, _ = problem(problem_name)
        same = 0
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            ours = searcher("optuna", seed, space)
            ours.setup(None, args.trials)
            mine = []
            for i in range(args.trials):
                config = ours.suggest(str(i))
                mine.append(config)
                ours.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, f(config)))
            # Optuna's own loop: the same distributions, asked in the space's key order.
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
            table, theirs = distributions(space), []
            for _ in range(args.trials):
                trial = study.ask()
                config = ask(space, table, trial)
                theirs.append(config)
                study.tell(trial, f(config))
            same += mine == theirs
        print(f"{problem_name}: OptunaSearcher asked exactly Optuna's own configs on {same} of {args.seeds} seeds "
              f"({args.trials} trials each)")


def latency(args: argparse.Namespace) -> None:
    space, f, _ = problem("hartmann6")
    sizes = [10, 25, 50, 100, 200, 400, 800]
    print("\nhartmann6 (6 parameters): seconds per suggestion after N observations (median of 3)")
    print(f"{'method':12s}" + "".join(f"{f'N={n}':>10s}" for n in sizes))
    history = []
    sampler = searcher("random", 0, space)
    sampler.setup(None, max(sizes))
    for i in range(max(sizes)):
        config = sampler.suggest(str(i))
        history.append((config, f(config)))
    for method in args.methods:
        row = []
        for n in sizes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # GPSearcher's comfort-zone warning
                suggester = searcher(method, 1, space, defaults={"warm_start": history[:n]})
                suggester.setup(None, n + 10)
                times = []
                for k in range(3):
                    start = time.perf_counter()
                    suggester.suggest(f"t{k}")
                    times.append(time.perf_counter() - start)
            row.append(float(np.median(times)))
            if row[-1] > 20:
                break
        print(f"{method:12s}" + "".join(f"{t:10.3f}" for t in row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _sweeps.add_arguments(parser, problems=PROBLEMS, methods=METHODS, seeds=8, trials=40, workers=1, jitter=0.5)
    parser.add_argument("--equality", action="store_true", help="OptunaSearcher against Optuna's own ask/tell loop")
    parser.add_argument("--latency", action="store_true", help="seconds per suggestion against observations")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.equality:
        equality(args)
    elif args.latency:
        latency(args)
    else:
        with _sweeps.local_ray(args.workers) if args.ray else contextlib.nullcontext() as root:
            compare(args, root)


if __name__ == "__main__":
    main()
