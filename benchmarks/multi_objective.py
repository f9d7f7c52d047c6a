"""Multi-objective search, simulated without Ray: TPESearcher beside Optuna 5's TPESampler and
NSGAIISampler, MO-ASHA beside multi-objective random search, and the cost of a suggestion.

``--part quality``: each (problem, method, seed) is one sweep of ``--trials`` trials,
``--workers`` (2) at a time, simulated as tpe_quality.py's sweeps are (_sweeps.py: lognormal
trial durations drawn from the seed, so every method sees the same order of ends). Problems
(_mo_problems.py): ``zdt1``, ``dtlz2`` (3 objectives), ``mixed`` (continuous, log, integer
and categorical) and ``mlp-digits`` (validation error against parameter count, a table of
real runs), each with a fixed reference point and a known front. Methods: ``tpesearcher``
(options after dashes, as _methods.py reads them: ``tpesearcher-gamma=0.2``), ``optuna``
(Optuna's default ``TPESampler(seed=seed)``, multi-objective since Optuna 3), ``nsga2``
(``NSGAIISampler(seed=seed)``), ``random``; Optuna's samplers run through OptunaSearcher,
which asks exactly what Optuna's own ask/tell loop asks (tests/search/test_multi_objective.py).
Score: the hypervolume of every value found (higher is better), and its regret, the true
front's hypervolume minus it; per method the median over seeds, the ratio of median regrets
to Optuna's TPE with its 90% paired bootstrap interval (_stats.py), and wins/ties/losses.

With ``--ray`` the same sweeps run for real on a local Ray (``--workers`` CPUs): one
``rt.Tuner(metric=["f0", "f1"], mode="min", max_concurrent=workers)`` per (problem,
method, seed), each trial reporting its values once (``mlp-digits``: from the table of real
training runs); the hypervolume of what the trials reported, and the sweep's milliseconds
per trial. Which
of two running trials ends first is then Ray's timing, not the seeded clock's.

``--part asha``: search_sim.py's multi-fidelity simulation with two objectives: R = 27,
eta = 3, ``--workers`` slots, new trials while fewer than ``--budget`` x R epochs have run.
``random/asha`` is MO-ASHA (random configs, ASHAScheduler ranking its rungs by the Pareto
order), ``random/fifo`` multi-objective random search (every trial to R), ``tpesearcher/...``
the same with TPESearcher. Score: the hypervolume of the front of every report (each report
is a model one could keep), by the values the searcher saw and by the true values of those
reports (the test error, or the noise-free loss), with its regret against the true front's;
the ratio of median true regrets to ``random/fifo``'s with its 90% interval, wins/ties/losses.

``--part latency``: milliseconds per suggestion after ``--history`` two-objective trials on
the ``mixed`` problem: TPESearcher, and Optuna's multi-objective TPESampler (``study.ask``
with the distributions), each given the same history and asked ``--asks`` times.

    python benchmarks/multi_objective.py --part quality --seeds 30 --trials 80
    python benchmarks/multi_objective.py --part quality --ray --problems mlp-digits --seeds 10 --trials 80
    python benchmarks/multi_objective.py --part asha --seeds 30 --budget 10
    python benchmarks/multi_objective.py --part latency --history 1000 --asks 30
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _methods  # noqa: E402
import _mo_problems as mo  # noqa: E402
import _sweeps  # noqa: E402
import _synthetic  # noqa: E402
import mlp_curves  # noqa: E402
import search_sim  # noqa: E402
from _stats import median_ratio, record  # noqa: E402

from raytuner._pareto import hypervolume, pareto_front  # noqa: E402

METHODS = ("tpesearcher", "optuna", "nsga2", "random")
MF_METHODS = ("random/asha", "random/fifo", "tpesearcher/asha", "tpesearcher/fifo")
CLOCK = 11  # the stream of trial durations, as tpe_quality.py's


def searcher(method: str, seed: int, space: dict[str, Any]) -> Any:
    """The searcher a method names (see the module docstring)."""
    import optuna

    from raytuner.search import OptunaSearcher

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if method == "optuna":
        return OptunaSearcher(space, sampler=optuna.samplers.TPESampler(seed=seed))
    if method == "nsga2":
        return OptunaSearcher(space, sampler=optuna.samplers.NSGAIISampler(seed=seed))
    return _methods.searcher(method, seed, space)


def quality(args: argparse.Namespace) -> None:
    if args.ray:
        with _sweeps.local_ray(args.workers, mo, mlp_curves, _synthetic) as root:
            return _quality(args, root)
    return _quality(args, None)


def _quality(args: argparse.Namespace, root: str | None) -> None:
    where = (f"real sweeps on a local Ray ({args.workers} CPUs)" if root else
             f"simulated asynchronous, jitter {args.jitter:g}; ms per ask")
    print(f"{args.seeds} seeds from {args.first_seed}, {args.trials} trials, {args.workers} at a time ({where})")
    for name in args.problems:
        spec = mo.problem(name)
        k = len(spec.reference)
        found: dict[str, list[float]] = {m: [] for m in args.methods}
        seconds = {m: 0.0 for m in args.methods}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods:
                if root is not None:  # the same sweep through rt.Tuner: metric=["f0", "f1"], every trial on Ray
                    values, spent = _sweeps.on_ray(searcher(method, seed, spec.space()), spec.space(), spec.values,
                                                   args.trials, args.workers, root, f"{name}-{method}-{seed}", k)
                else:
                    values, spent = _sweeps.simulate(searcher(method, seed, spec.space()), spec.values, args.trials,
                                                     args.workers, np.random.default_rng([seed, CLOCK]), args.jitter,
                                                     objectives=k)
                found[method].append(hypervolume(values, spec.reference))
                seconds[method] += spent / args.seeds / args.trials
        ref, regret = regrets(found, spec.front_hv, "optuna")
        table(f"\n{name} ({k} objectives, reference {spec.reference}, the front's hypervolume "
              f"{spec.front_hv:.4f}): median hypervolume, median regret, ratio of median regrets to "
              f"{ref}'s [90% bootstrap interval over seeds], wins/ties/losses vs {ref}, "
              f"{'ms per trial (the sweep)' if root else 'ms per ask'}",
              args.methods,
              lambda m: f"{m:<28} {np.median(found[m]):9.4f} {np.median(regret[m]):9.4f}  "
                        f"{versus(regret[m], regret[ref])}  {1e3 * seconds[m]:6.2f} ms")


def regrets(found: dict[str, list[float]], best: float, preferred: str) -> tuple[str, dict[str, np.ndarray]]:
    """The method the others are compared to (``preferred`` if it ran, else the first) and
    each method's regrets, ``best`` less the hypervolumes it found."""
    ref = preferred if preferred in found else next(iter(found))
    return ref, {m: best - np.array(v) for m, v in found.items()}


def table(heading: str, methods: list[str], row: Callable[[str], str]) -> None:
    """Print a heading and a row a method, flushed so that a long run shows each problem as it ends."""
    print(heading)
    for method in methods:
        print(f"  {row(method)}", flush=True)


def versus(values: np.ndarray, ref: np.ndarray) -> str:
    """The ratio of medians to the reference's with its 90% bootstrap interval, and wins/ties/losses."""
    ratio, low, high = median_ratio(values, ref)
    return f"x{ratio:5.3f} [{low:.2f}, {high:.2f}]  {record(values, ref)}"


def front_hypervolume(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    return hypervolume(np.asarray(points)[pareto_front(points)], reference) if points else 0.0


def asha(args: argparse.Namespace) -> None:
    budget = args.budget * mo.R
    print(f"{args.seeds} seeds from {args.first_seed}, budget {budget} epochs ({args.budget} x R={mo.R}), "
          f"{args.workers} workers, jitter {args.jitter:g}")
    for name in args.mf_problems:
        spec = mo.mf_problem(name)
        seen: dict[str, list[float]] = {m: [] for m in args.mf_methods}
        true: dict[str, list[float]] = {m: [] for m in args.mf_methods}
        trials: dict[str, list[int]] = {m: [] for m in args.mf_methods}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.mf_methods:
                run = search_sim.simulate(method, seed, budget, workers=args.workers, jitter=args.jitter,
                                          spec=spec, objectives=2)
                rows = run.rows[:budget]
                losses = [row["loss"] for row in rows]
                front = pareto_front(losses) if losses else []
                seen[method].append(front_hypervolume(losses, spec.reference))
                true[method].append(hypervolume([rows[i]["true_loss"] for i in front], spec.reference))
                trials[method].append(run.trials)
        ref, regret = regrets(true, spec.true_front_hv, "random/fifo")
        table(f"\n{name} (reference {spec.reference}, the true front's hypervolume {spec.true_front_hv:.4f}): "
              f"median hypervolume of the reports' front as the searcher saw it, then by the true values, "
              f"median true regret, its ratio to {ref}'s [90%], wins/ties/losses, median trials started",
              args.mf_methods,
              lambda m: f"{m:<22} {np.median(seen[m]):8.4f} {np.median(true[m]):8.4f} "
                        f"{np.median(regret[m]):8.4f} {versus(regret[m], regret[ref])}  {np.median(trials[m]):5.0f}")
        if hasattr(spec, "seen_front_hv"):  # the front of what the searchers see is known too
            _, seen_regret = regrets(seen, spec.seen_front_hv, ref)
            table(f"  regret by the values seen (the front's {spec.seen_front_hv:.4f}), ratio to {ref}'s [90%]:",
                  args.mf_methods,
                  lambda m: f"{m:<22} {np.median(seen_regret[m]):8.4f} {versus(seen_regret[m], seen_regret[ref])}")


def latency(args: argparse.Namespace) -> None:
    import optuna

    from raytuner.search import Outcome, RandomSearcher, TPESearcher, TrialEnd
    from raytuner.search._optuna_space import distributions

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = mo.problem("mixed")
    draws = RandomSearcher(spec.space(), seed=0)
    draws.setup(None, args.history)
    past = [(c, spec.values(c)) for c in (draws.suggest(str(i)) for i in range(args.history))]

    ours = TPESearcher(spec.space(), seed=0, warm_start=past)
    ours.setup(None, 100_000, 2)
    ours_s = []
    for i in range(args.asks):
        began = time.perf_counter()
        config = ours.suggest(f"t{i}")
        ours_s.append(time.perf_counter() - began)
        ours.on_trial_complete(f"t{i}", Outcome(TrialEnd.COMPLETED, spec.values(config)))

    dists = distributions(spec.space())
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials([optuna.trial.create_trial(params=c, distributions=dists, values=list(v)) for c, v in past])
    optuna_s = []
    for _ in range(args.asks):
        began = time.perf_counter()
        trial = study.ask(dists)
        optuna_s.append(time.perf_counter() - began)
        study.tell(trial, list(spec.values(trial.params)))

    print(f"ms per suggestion after {args.history} finished two-objective trials (mixed space)")
    base = np.median(optuna_s)
    for name, times in (("TPESearcher", ours_s), ("Optuna 5 TPESampler", optuna_s)):
        ms = 1e3 * np.array(times)
        print(f"  {name:<22} median {np.median(ms):7.2f}  p90 {np.percentile(ms, 90):7.2f}  "
              f"x{np.median(times) / base:5.2f} of Optuna  ({len(ms)} asks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("quality", "asha", "latency"), default="quality")
    parser.add_argument("--ray", action="store_true",
                        help="--part quality: real sweeps through rt.Tuner on a local Ray instead of the simulation")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jitter", type=float, default=0.3, help="lognormal sd of a trial's (an epoch's) duration")
    parser.add_argument("--problems", nargs="+", default=list(mo.PROBLEMS), choices=mo.PROBLEMS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--budget", type=int, default=10, help="--part asha: epochs, in full runs of R")
    parser.add_argument("--mf-problems", nargs="+", default=list(mo.MF_PROBLEMS), choices=mo.MF_PROBLEMS)
    parser.add_argument("--mf-methods", nargs="+", default=list(MF_METHODS))
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--asks", type=int, default=30)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental warnings
        {"quality": quality, "asha": asha, "latency": latency}[args.part](args)


if __name__ == "__main__":
    main()
