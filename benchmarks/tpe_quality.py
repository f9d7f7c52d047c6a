"""Search quality of TPESearcher beside HyperOptSearcher, Optuna 5's TPESampler and random.

Ray-free simulation of an asynchronous sweep: ``--workers`` slots (2), each trial takes a
lognormal time (sd 0.3, per seed and trial), a free slot asks the searcher at once, and a
finished trial is told to it before the next ask. Every method sees the same durations on
the same seed. Optuna 5 runs its default ``TPESampler(seed=seed)`` through ask/tell
(define-by-run, so conditional parameters are asked only under their option).

Problem families (see issue 13):

- ``mixed``: 5 parameters (loguniform, an ordered choice of batch sizes, uniform, randint,
  a categorical) with two interactions: the best learning rate grows with the batch size,
  the best dropout with the depth. Minimum 0.
- ``conditional``: a choice of three model families with their own sub-parameters
  (2-3 each, interacting) and one shared parameter. Minimum 0 (the second family).
- ``mlp-digits``: benchmarks/mlp_curves.py's 1,120 real MLP runs on digits (4 ordered
  parameters, a ``choice`` of the grid values each), scored by validation log loss after
  the last epoch; built once and shipped as benchmarks/data/mlp_digits_curves.npz.
- ``svc-cancer``, ``sgd-digits``: tabular benchmarks of real training runs computed here on
  data that ships inside scikit-learn (3-fold cross-validated error of every grid point:
  SVC on breast_cancer, 13 C x 13 gamma x 2 kernels; SGDClassifier on digits, 13 alpha x
  5 l1_ratio x 3 losses). No public tabular benchmark with its data inside a PyPI package
  was found (see RESULTS.md); these are real runs on bundled data, the table is computed
  once per process (a few seconds).

The multi-fidelity family runs through benchmarks/search_sim.py (``tpesearcher/asha``,
``optuna/asha``...). Score: regret, the best loss found minus the problem's minimum, after
``--trials`` trials; the ratio of medians to Optuna's comes with a 90% bootstrap interval over
the seeds (``_stats``), and a 40-seed median is good to about 30%. ``--first-seed`` moves the
seeds, to check a choice on seeds it was not made on.

``--ray`` runs the same comparison for real instead of simulating it: each (problem, method,
seed) is one ``rt.Tuner(...).fit()`` sweep on a local Ray (2 CPUs, started once per process;
one warm-up sweep first so that worker start-up is not timed) with ``max_concurrent=--workers``
(2), ``num_trials=--trials``, ``metric="loss"``, ``verbose=0`` and a temporary storage path.
The trainable reports the problem's loss once; it is a closure shipped to the workers by
value (a tabular problem's table, built in the driver, travels inside it). The searchers are
raytuner's own: ``TPESearcher``, ``HyperOptSearcher``, ``RandomSearcher`` and, for
``optuna``, ``OptunaSearcher(sampler=optuna.samplers.TPESampler(seed=seed))`` (Optuna 5's
default TPE: multivariate, constant liar, which sees the running trial, as it is RUNNING in
the study). The trials take milliseconds, so two run at once nearly always and which ends
first is Ray's timing: a run is not reproducible from its seeds (10-seed medians moved by a
factor of 2 between identical runs), though the searcher sees exactly what a replay of the
same event order without Ray gives it. The last column is seconds per sweep, not ms per ask.

    python benchmarks/tpe_quality.py --seeds 10 --trials 60
    python benchmarks/tpe_quality.py --problems svc-cancer sgd-digits --trials 100
    python benchmarks/tpe_quality.py --ray --seeds 10 --trials 60 --problems mixed conditional
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
import warnings
from functools import cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import raytuner as rt  # noqa: E402
from raytuner.search import Outcome, TrialEnd  # noqa: E402
from raytuner.search._domains import Choice, RandInt, Range  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import median_ratio  # noqa: E402

# -- problems ----------------------------------------------------------------------------


def mixed_space() -> dict[str, Any]:
    return {"lr": rt.loguniform(1e-5, 1.0), "batch": rt.choice([16, 32, 64, 128, 256]),
            "dropout": rt.uniform(0.0, 0.8), "layers": rt.randint(1, 6),
            "act": rt.choice(["relu", "tanh", "sigmoid"])}


def mixed_loss(c: dict[str, Any]) -> float:
    best_lr = -3.0 + 0.5 * math.log2(c["batch"] / 16) / 2  # log10: 1e-3 at 16 .. 10**-2 at 256
    loss = (math.log10(c["lr"]) - best_lr) ** 2
    loss += 4 * (c["dropout"] - 0.12 * c["layers"]) ** 2
    loss += 0.05 * (c["layers"] - 4) ** 2
    return loss + {"relu": 0.0, "tanh": 0.1, "sigmoid": 0.4}[c["act"]]


def conditional_space() -> dict[str, Any]:
    return {
        "model": rt.choice([
            {"type": "svm", "C": rt.loguniform(1e-3, 1e3), "gamma": rt.loguniform(1e-4, 10.0)},
            {"type": "mlp", "lr": rt.loguniform(1e-5, 1.0), "width": rt.quniform(16, 512, 16),
             "l2": rt.loguniform(1e-6, 1e-1)},
            {"type": "tree", "depth": rt.randint(1, 20), "min_leaf": rt.randint(1, 50)},
        ]),
        "scale": rt.uniform(0.0, 1.0),
    }


def conditional_loss(c: dict[str, Any]) -> float:
    m = c["model"]
    if m["type"] == "svm":  # best gamma falls as C rises
        loss = 0.1 + 0.3 * (math.log10(m["C"]) - 1) ** 2 / 4 + (math.log10(m["gamma"]) + 1 + 0.5 * math.log10(m["C"])) ** 2 / 4
    elif m["type"] == "mlp":  # best lr rises with width; l2 matters less
        loss = (math.log10(m["lr"]) + 3.5 - math.log2(m["width"] / 16) / 5) ** 2 / 2
        loss += 0.05 * (math.log10(m["l2"]) + 4) ** 2
    else:
        loss = 0.2 + ((m["depth"] - 8) / 8) ** 2 + ((m["min_leaf"] - 5 - m["depth"]) / 20) ** 2
    return loss + (c["scale"] - 0.6) ** 2


@cache
def _table(name: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], float]]:
    """A tabular benchmark: the space (choices over the grid) and the error of every point."""
    from sklearn import datasets
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore")
    grid: dict[str, list[Any]]
    if name == "svc-cancer":
        from sklearn.svm import SVC

        x, y = datasets.load_breast_cancer(return_X_y=True)
        grid = {"C": [float(v) for v in np.logspace(-3, 3, 13)],
                "gamma": [float(v) for v in np.logspace(-5, 1, 13)], "kernel": ["rbf", "sigmoid"]}

        def model(p: dict[str, Any]) -> Any:
            return make_pipeline(StandardScaler(), SVC(**p))
    else:
        from sklearn.linear_model import SGDClassifier

        x, y = datasets.load_digits(return_X_y=True)
        grid = {"alpha": [float(v) for v in np.logspace(-7, -1, 13)], "l1_ratio": [0.0, 0.15, 0.3, 0.6, 1.0],
                "loss": ["hinge", "log_loss", "modified_huber"]}

        def model(p: dict[str, Any]) -> Any:
            return make_pipeline(StandardScaler(), SGDClassifier(penalty="elasticnet", max_iter=30, tol=None,
                                                                random_state=0, **p))
    keys = list(grid)
    table = {}
    for combo in np.array(np.meshgrid(*[range(len(grid[k])) for k in keys], indexing="ij")).reshape(len(keys), -1).T:
        params = {k: grid[k][i] for k, i in zip(keys, combo)}
        table[tuple(params[k] for k in keys)] = 1.0 - float(cross_val_score(model(params), x, y, cv=3).mean())
    return {k: rt.choice(v) for k, v in grid.items()}, table


def tabular(name: str) -> tuple[dict[str, Any], Callable[[dict[str, Any]], float], float]:
    space, table = _table(name)
    keys = list(space)
    return space, lambda c: table[tuple(c[k] for k in keys)], min(table.values())


PROBLEMS: dict[str, Callable[[], tuple[dict[str, Any], Callable[[dict[str, Any]], float], float]]] = {
    "mixed": lambda: (mixed_space(), mixed_loss, 0.0),
    "conditional": lambda: (conditional_space(), conditional_loss, 0.0),
    "svc-cancer": lambda: tabular("svc-cancer"),
    "sgd-digits": lambda: tabular("sgd-digits"),
    "mlp-digits": lambda: mlp_table(),
}


def mlp_table() -> tuple[dict[str, Any], Callable[[dict[str, Any]], float], float]:
    """benchmarks/mlp_curves.py's table of 1,120 MLP runs on digits, at its last epoch: the
    validation log loss after 27 epochs, as a single-fidelity tabular benchmark."""
    import mlp_curves

    val = mlp_curves.curves("logloss")[0][:, -1].copy()
    index = {tuple(c.values()): i for i, c in enumerate(mlp_curves.configs())}
    keys = list(mlp_curves.GRID)
    return mlp_curves.space(), lambda c: float(val[index[tuple(c[k] for k in keys)]]), float(val.min())

# -- searchers ---------------------------------------------------------------------------


class Ours:
    def __init__(self, searcher: Any, space: dict[str, Any]) -> None:
        self.searcher = searcher
        searcher.setup(space, 10_000)

    def ask(self, trial_id: str) -> dict[str, Any]:
        return self.searcher.suggest(trial_id)

    def tell(self, trial_id: str, value: float) -> None:
        self.searcher.on_trial_complete(trial_id, Outcome(TrialEnd.COMPLETED, value))


class Optuna:
    def __init__(self, space: dict[str, Any], seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        self.space = space
        self.trials: dict[str, Any] = {}

    def ask(self, trial_id: str) -> dict[str, Any]:
        trial = self.study.ask()
        self.trials[trial_id] = trial
        return _define(trial, self.space, "")

    def tell(self, trial_id: str, value: float) -> None:
        self.study.tell(self.trials.pop(trial_id), value)


def _define(trial: Any, space: Any, prefix: str) -> Any:
    """Our space, asked define-by-run from an Optuna trial (conditional parameters inside)."""
    if isinstance(space, dict):
        return {k: _define(trial, v, f"{prefix}{k}") for k, v in space.items()}
    if isinstance(space, Range) and space.q is None:
        return trial.suggest_float(prefix, space.low, space.high, log=space.log)
    if isinstance(space, Range) and not space.log:
        return trial.suggest_int(prefix, space.low, space.high, step=space.q)
    if isinstance(space, RandInt):
        return trial.suggest_int(prefix, space.low, space.high - 1)
    if isinstance(space, Choice):
        if all(isinstance(o, (int, float, str)) for o in space.options):
            return trial.suggest_categorical(prefix, list(space.options))
        index = trial.suggest_categorical(prefix, list(range(len(space.options))))
        return _define(trial, space.options[index], f"{prefix}[{index}].")
    return space


def make(method: str, space: dict[str, Any], seed: int) -> Any:
    return Optuna(space, seed) if method == "optuna" else Ours(ray_searcher(method, seed), space)


def type_of(text: str) -> float | int:
    return int(text) if text.isdigit() else float(text)


# -- the simulation ----------------------------------------------------------------------


def simulate(problem: str, method: str, seed: int, trials: int, workers: int,
             jitter: float = 0.3) -> tuple[float, float]:
    """Regret after ``trials`` trials, and the mean seconds per ask."""
    space, loss, minimum = PROBLEMS[problem]()
    searcher = make(method, space, seed)
    durations = np.random.default_rng([seed, 11]).lognormal(0.0, jitter, size=trials)
    events: list[tuple[float, str, float]] = []
    started, best, ask_s = 0, math.inf, 0.0

    def start(now: float) -> None:
        nonlocal started, ask_s
        trial_id = f"{started:05d}"
        began = time.perf_counter()
        config = searcher.ask(trial_id)
        ask_s += time.perf_counter() - began
        heapq.heappush(events, (now + durations[started], trial_id, loss(config)))
        started += 1

    for _ in range(min(workers, trials)):
        start(0.0)
    while events:
        now, trial_id, value = heapq.heappop(events)
        best = min(best, value)
        searcher.tell(trial_id, value)
        if started < trials:
            start(now)
    return best - minimum, ask_s / trials


# -- on a local Ray ----------------------------------------------------------------------


def ray_searcher(method: str, seed: int) -> Any:
    """The method's raytuner searcher (``--ray`` runs ``optuna`` through OptunaSearcher; the
    simulation through its own ask/tell loop, :class:`Optuna`)."""
    from raytuner.search import HyperOptSearcher, OptunaSearcher, RandomSearcher, TPESearcher

    if method == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        # Optuna 5's default, as create_study() builds it: multivariate, constant_liar=True,
        # n_startup_trials=10, n_ei_candidates=24, group=False.
        return OptunaSearcher(sampler=optuna.samplers.TPESampler(seed=seed))
    if method.startswith("tpesearcher"):
        options = {k: type_of(v) for k, _, v in (p.partition("=") for p in method.split("-")[1:])}
        for flag in ("ordinal", "avoid_repeats"):
            if flag in options:
                options[flag] = bool(options[flag])
        return TPESearcher(seed=seed, **options)
    return {"hyperopt": lambda: HyperOptSearcher(seed=seed), "random": lambda: RandomSearcher(seed=seed)}[method]()


def trainable_of(loss: Callable[[dict[str, Any]], float]) -> Callable[[dict[str, Any]], None]:
    """A trainable that reports ``loss(config)`` once (a closure: cloudpickle ships it and its table)."""

    def trainable(config: dict[str, Any]) -> None:
        rt.report({"loss": loss(config)})

    return trainable


def sweep(problem: str, method: str, seed: int, trials: int, workers: int, root: str,
          name: str = "") -> tuple[float, float]:
    """Regret of one real sweep on the running local Ray, and its seconds."""
    space, loss, minimum = PROBLEMS[problem]()
    began = time.perf_counter()
    results = rt.Tuner(trainable_of(loss), space=space, metric="loss", num_trials=trials, max_concurrent=workers,
                       searcher=ray_searcher(method, seed), storage_path=root,
                       name=name or f"{problem}-{method}-{seed}", verbose=0).fit()
    seconds = time.perf_counter() - began
    values = [t.metrics["loss"] for t in results.trials if "loss" in t.metrics]
    if len(values) != trials:
        print(f"  note: {problem} {method} seed {seed}: {len(values)} of {trials} trials reported", flush=True)
    return min(values) - minimum, seconds


def start_ray() -> None:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if __name__ != "__main__":  # imported: the workers cannot import this script, so ship it by value
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])


def print_table(problem: str, methods: list[str], regrets: dict[str, list[float]], last: dict[str, str],
                last_name: str) -> None:
    ref = regrets.get("optuna")
    print(f"\n{problem}: median regret (mean), ratio to optuna's median [90% bootstrap interval over seeds], "
          f"wins/ties/losses vs optuna, {last_name}")
    for method in methods:
        r = np.array(regrets[method])
        line = f"  {method:<28} {np.median(r):10.4g} ({np.mean(r):.4g})"
        if ref is not None:
            ratio, low, high = median_ratio(r, ref)
            w = sum(a < b for a, b in zip(r, ref))
            lo = sum(a > b for a, b in zip(r, ref))
            line += f"  x{ratio:6.3f} [{low:.2f}, {high:.2f}]  {w}/{len(r) - w - lo}/{lo}"
        print(line + f"  {last[method]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=["tpesearcher", "optuna", "hyperopt", "random"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jitter", type=float, default=0.3,
                        help="lognormal sd of a trial's duration; 0: trials end in the order they started")
    parser.add_argument("--ray", action="store_true", help="real sweeps on a local Ray instead of the simulation")
    args = parser.parse_args()
    if args.ray:
        import tempfile

        start_ray()
        root_dir = tempfile.TemporaryDirectory()
        sweep("mixed", "random", 0, 2 * args.workers, args.workers, root_dir.name, "warm-up")  # start the workers once
    where = "rt.Tuner on a local Ray, 2 CPUs" if args.ray else "simulated asynchronous"
    print(f"{args.seeds} seeds from {args.first_seed}, {args.trials} trials, {args.workers} at a time ({where})")
    for problem in args.problems:
        PROBLEMS[problem]()  # build a table before timing
        regrets: dict[str, list[float]] = {m: [] for m in args.methods}
        seconds = {m: 0.0 for m in args.methods}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods:
                if args.ray:
                    regret, sweep_s = sweep(problem, method, seed, args.trials, args.workers, root_dir.name)
                    seconds[method] += sweep_s / args.seeds
                else:
                    regret, ask = simulate(problem, method, seed, args.trials, args.workers, args.jitter)
                    seconds[method] += ask / args.seeds
                regrets[method].append(regret)
        last = {m: f"{s:6.2f} s" if args.ray else f"{1e3 * s:6.2f} ms" for m, s in seconds.items()}
        print_table(problem, args.methods, regrets, last, "s per sweep" if args.ray else "ms per ask")
    if args.ray:
        import ray

        rt.release_workers()  # else the pool's keep-warm timer fires after shutdown and starts a new Ray
        ray.shutdown()
        root_dir.cleanup()


if __name__ == "__main__":
    main()
