"""Search quality under a multi-fidelity scheduler, simulated: search_quality.py without Ray.

A problem of _mf_problems.py is replayed on a simulated clock with ``--workers`` slots.
Each epoch takes one time unit, jittered (lognormal, ``--jitter``) per (seed, trial,
epoch), so results land in a realistic, seed-dependent order. A scheduler (raytuner's
``ASHAScheduler(max_resource=27, reduction_factor=3)``, ``FIFOScheduler``, Ray Tune's
``AsyncHyperBandScheduler`` driven standalone, or Optuna's ``SuccessiveHalvingPruner``)
decides after each report; a searcher proposes a config whenever a slot is free. A trial
the scheduler stops ends with its last report: raytuner's searchers get
``Outcome(STOPPED, ...)``, Ray Tune's ``on_trial_complete(trial_id, result)`` with the last
result, as the Ray Tune controller does. New trials start while fewer than ``--budget`` x R
epochs have been run; reports are scored as in search_quality.py (the incumbent is the
report with the lowest noisy loss, after the budget).

A method is ``searcher/scheduler``. Searchers: those of _methods.py (``random``,
``tpesearcher``, ``hyperopt``, ``gp``, with options after dashes), every model-based one
starting after 10 trials as Ray Tune's adapters do; ``optuna``: Optuna's default
TPESampler through ask/tell, driven as an Optuna objective would (``report``, and for the
``sha`` scheduler ``should_prune``, after each epoch; a stopped trial is told PRUNED);
``raytune``: Ray Tune's HyperOptSearch. Schedulers: ``asha``, ``fifo``, ``rayasha`` (Ray
Tune's ASHA), ``sha`` (Optuna's pruner, with ``optuna`` only).

Because nothing else varies, two methods on the same seed see the same noise and the same
epoch times, and Ray's own timing is out of the comparison.
``hyperopt-stopped_trials=last-n_startup=9-rayseeds/asha`` (our adapter with Ray Tune's
stopped-trial policy, its start-up count at 2 workers and, with the flag ``rayseeds``, its
seed stream) reproduces ``raytune/asha`` run for run.

``--order`` mimics how the frameworks order reports on local Ray, where an epoch of the
synthetic problem takes microseconds: ``serial`` (Ray Tune: a trial reports all its epochs
before the next trial's first; ``raytune/asha --order serial`` reproduces its local-Ray runs
of search_quality.py), ``rungs`` (raytuner: reports up to the next rung come at once).
``--close-late`` asks raytuner's searchers for the next trial before closing the trial
whose slot it takes, as raytuner's controller does on a STOP.

``--problem``: ``synthetic`` (_synthetic.py's crossing, overfitting curves), ``counting-ones``
(the BOHB paper's benchmark, _counting_ones.py) or ``mlp-digits`` (real MLPClassifier runs
replayed from mlp_curves.py's table: the searcher sees the validation log loss, ``-error``
the error rate, ``-ordinal`` the grid as ``randint`` indices; the incumbent is scored by its
test value, and a seed changes only the searchers and the epoch timings). Every problem
prints the regret of the incumbent with the ratio of medians to ``--ref`` (Optuna's TPE
under ASHA by default) and its 90% bootstrap interval over seeds. Figures:
benchmarks/RESULTS.md.

    python benchmarks/search_sim.py --seeds 100          # the default methods, synthetic problem
    python benchmarks/search_sim.py --problem counting-ones --seeds 100 --budget 30 --stats
    python benchmarks/search_sim.py --methods hyperopt-stopped_trials=last-n_startup=9-rayseeds/asha raytune/asha
    python benchmarks/search_sim.py --order serial --methods hyperopt/asha raytune/asha  # as on local Ray
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _methods  # noqa: E402
import _mf_report  # noqa: E402
from _mf_problems import PROBLEMS, R, problem  # noqa: E402

ETA, N_STARTUP = 3, 10
METHODS = ("tpesearcher/asha", "optuna/asha", "optuna/sha", "hyperopt/asha", "random/asha")


# -- searchers: one interface over raytuner's, Ray Tune's and Optuna's -------------------


class _Ours:
    """A raytuner searcher behind the simulator's calls (told the objectives if several)."""

    def __init__(self, searcher: Any, objectives: int = 1) -> None:
        self.searcher = searcher
        if objectives == 1:
            self.searcher.setup(None, 10_000)
        else:
            self.searcher.setup(None, 10_000, objectives)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return self.searcher.suggest(trial_id)

    def result(self, trial_id: str, epoch: int, loss: float) -> None:
        self.searcher.on_trial_result(trial_id, epoch, loss)

    def complete(self, trial_id: str, stopped: bool, epoch: int, loss: float) -> None:
        from raytuner.search import Outcome, TrialEnd

        end = TrialEnd.STOPPED if stopped else TrialEnd.COMPLETED
        self.searcher.on_trial_complete(trial_id, Outcome(end, loss, epoch, R))


class _RayTune:
    """Ray Tune's HyperOptSearch, used standalone (it needs no Ray runtime)."""

    def __init__(self, seed: int, space: dict[str, Any]) -> None:
        from ray.tune.search.hyperopt import HyperOptSearch

        logging.getLogger("ray.tune.search.hyperopt.hyperopt_search").setLevel(logging.ERROR)
        self.searcher = HyperOptSearch(space, metric="loss", mode="min",
                                       n_initial_points=N_STARTUP, random_state_seed=seed)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = self.searcher.suggest(trial_id)
        return None if config is None else {**config, "width": int(config["width"])}

    def result(self, trial_id: str, epoch: int, loss: float) -> None:
        self.searcher.on_trial_result(trial_id, {"loss": loss, "training_iteration": epoch})

    def complete(self, trial_id: str, stopped: bool, epoch: int, loss: float) -> None:
        self.searcher.on_trial_complete(trial_id, {"loss": loss, "training_iteration": epoch})


class _Optuna:
    """Optuna's default TPESampler through ask/tell, the space asked define-by-run as
    OptunaSearcher asks it; a trial the scheduler stops is told PRUNED after its reports,
    as Optuna's own pruners leave it (Optuna ranks pruned trials by their last
    intermediate value and step). The study's pruner (Optuna's SuccessiveHalvingPruner)
    acts only when the ``sha`` scheduler asks ``should_prune``."""

    def __init__(self, seed: int, space: dict[str, Any]) -> None:
        import optuna

        from raytuner.search._optuna_space import distributions

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.optuna = optuna
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=ETA)
        self.study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
        self.space, self.table = space, distributions(space)
        self.trials: dict[str, Any] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        from raytuner.search._optuna_space import ask

        trial = self.study.ask()
        self.trials[trial_id] = trial
        return ask(self.space, self.table, trial)

    def result(self, trial_id: str, epoch: int, loss: float) -> None:
        self.trials[trial_id].report(loss, epoch)

    def complete(self, trial_id: str, stopped: bool, epoch: int, loss: float) -> None:
        trial = self.trials.pop(trial_id)
        if stopped:
            self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, loss)


def make_searcher(method: str, seed: int, problem_name: str = "synthetic", spec: Any = None,
                  objectives: int = 1) -> Any:
    """The searcher of a method's ``searcher`` part (see the module docstring); ``spec``: a
    problem of another table than _mf_problems' (multi_objective.py's), ``objectives`` its
    number of objectives (raytuner's searchers only)."""
    spec = spec or problem(problem_name)
    if method == "raytune":
        return _RayTune(seed, spec.hyperopt_space())
    if method == "optuna":
        return _Optuna(seed, spec.space())
    rayseeds = method.startswith("hyperopt") and "rayseeds" in _methods.parse(method)[2]
    searcher = _methods.searcher(method, seed, spec.space(), defaults={"n_startup": N_STARTUP},
                                 flags=("rayseeds",) if rayseeds else ())
    if rayseeds:
        # A check, not a setting: draw the per-suggestion seeds as Ray Tune's adapter
        # does, so that with ``-stopped_trials=last-n_startup=9`` both adapters see the
        # same history.
        searcher._rng = _RaySeeds(seed)
    return _Ours(searcher, objectives)


class _RaySeeds:
    """Ray Tune's per-suggestion seed stream (``RandomState(seed).randint``)."""

    def __init__(self, seed: int) -> None:
        self.state = np.random.RandomState(seed)

    def integers(self, high: int) -> int:
        return int(self.state.randint(high))


# -- schedulers --------------------------------------------------------------------------


class _RayASHA:
    """Ray Tune's AsyncHyperBandScheduler driven with stand-in trials (no controller)."""

    def __init__(self) -> None:
        from ray.tune.schedulers import ASHAScheduler

        self.scheduler = ASHAScheduler(time_attr="training_iteration", metric="loss", mode="min",
                                       max_t=R, grace_period=1, reduction_factor=ETA)

    def add(self, trial_id: str) -> None:
        self.scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial_id))

    def stop(self, trial_id: str, epoch: int, loss: float) -> bool:
        result = {"training_iteration": epoch, "loss": loss}
        return self.scheduler.on_trial_result(None, SimpleNamespace(trial_id=trial_id), result) == "STOP"


class _OptunaSHA:
    """Optuna's pruner (the study's SuccessiveHalvingPruner) asked after each report, as an
    Optuna objective asks ``trial.should_prune()``; it can prune at epoch R, too."""

    end_is_stop = True

    def __init__(self, searcher: Any) -> None:
        if not isinstance(searcher, _Optuna):
            raise ValueError("the sha scheduler is Optuna's pruner: it needs the optuna searcher")
        self.searcher = searcher

    def add(self, trial_id: str) -> None:
        pass

    def stop(self, trial_id: str, epoch: int, loss: float) -> bool:
        return self.searcher.trials[trial_id].should_prune()


class _OurScheduler:
    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def add(self, trial_id: str) -> None:
        self.scheduler.on_trial_add(trial_id)

    def stop(self, trial_id: str, epoch: int, loss: float) -> bool:
        from raytuner.schedulers import Decision

        return self.scheduler.on_result(trial_id, epoch, loss) in (Decision.STOP, Decision.COMPLETE)


def make_scheduler(name: str, searcher: Any = None, objectives: int = 1) -> Any:
    from raytuner.schedulers import ASHAScheduler, FIFOScheduler

    if name == "sha":
        return _OptunaSHA(searcher)
    if name in ("asha", "fifo"):
        ours = ASHAScheduler(max_resource=R, reduction_factor=ETA) if name == "asha" else FIFOScheduler()
        ours.set_objectives(objectives)
        return _OurScheduler(ours)
    if name == "rayasha":
        return _RayASHA()
    raise ValueError(f"unknown scheduler {name!r}")


# -- the simulation ----------------------------------------------------------------------


@dataclass
class Run:
    """What one simulated experiment produced."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    trials: int = 0
    full: int = 0
    waits: int = 0


ORDERS = ("interleaved", "serial", "rungs")
RUNGS = frozenset(ETA**k for k in range(round(math.log(R, ETA))))  # ASHA's rungs below R: 1, 3, 9


def simulate(method: str, seed: int, budget: int, *, overfit: float = 1.0, workers: int = 2,
             jitter: float = 0.3, startup: float = 0.0, noise_sd: float = 0.02, order: str = "interleaved",
             close_late: bool = False, problem_name: str = "synthetic", spec: Any = None,
             objectives: int = 1) -> Run:
    """One experiment of ``method`` (``searcher/scheduler``) on the synthetic problem.

    ``order`` sets which trial reports next: "interleaved" (every epoch takes its own time),
    "serial" (a trial reports all its epochs before the next trial's first, as Ray Tune runs
    millisecond epochs on local Ray) or "rungs" (the epochs up to the next rung take one
    time unit, as raytuner's workers stream reports up to the scheduler's next decision).
    ``close_late``: raytuner's searchers are asked for the next trial before they are told
    how the trial that freed the slot ended, as raytuner's controller does on a STOP.
    ``problem_name``: one of ``PROBLEMS`` (``noise_sd`` and ``overfit`` are the synthetic one's);
    ``spec`` a problem with the same interface instead, whose reports have ``objectives``
    values (multi_objective.py's; raytuner's searchers and schedulers only).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}")
    searcher_name, scheduler_name = method.split("/")
    spec = spec or problem(problem_name)
    searcher = make_searcher(searcher_name, seed, problem_name, spec, objectives)
    scheduler = make_scheduler(scheduler_name, searcher, objectives)
    rng = np.random.default_rng([seed, 7])
    run = Run()
    events: list[tuple[float, int, str]] = []  # (time, count, trial_id)
    configs: dict[str, dict[str, Any]] = {}
    epochs: dict[str, int] = {}
    count = 0
    last_start = 0.0  # "serial": each new trial queues behind the ones already waiting

    def start(now: float) -> bool:
        nonlocal count, last_start
        trial_id = f"{run.trials:05d}"
        config = searcher.suggest(trial_id)
        if config is None:
            run.waits += 1
            return False
        run.trials += 1
        scheduler.add(trial_id)
        configs[trial_id] = {**config, "_overfit": overfit}
        epochs[trial_id] = 0
        first = (max(now, last_start) if order == "serial" else now) + startup + _epoch_time(rng, jitter)
        last_start = first
        heapq.heappush(events, (first, count, trial_id))
        count += 1
        return True

    idle = workers
    while idle and start(0.0):
        idle -= 1
    while events and len(run.rows) < budget:
        now, _, trial_id = heapq.heappop(events)
        epochs[trial_id] += 1
        epoch, config = epochs[trial_id], configs[trial_id]
        loss, true = spec.report(config, epoch, seed, noise_sd)
        run.rows.append({"trial": trial_id, "loss": loss, "true_loss": true, "epoch": epoch})
        searcher.result(trial_id, epoch, loss)
        pruned = scheduler.stop(trial_id, epoch, loss)
        stop = pruned or epoch >= R
        if not stop:
            same_step = order == "serial" or (order == "rungs" and epoch not in RUNGS)
            heapq.heappush(events, (now if same_step else now + _epoch_time(rng, jitter), count, trial_id))
            count += 1
            continue
        run.full += epoch >= R
        stopped = epoch < R or (pruned and getattr(scheduler, "end_is_stop", False))
        late = close_late and isinstance(searcher, _Ours)
        if not late:
            searcher.complete(trial_id, stopped, epoch, loss)
        idle += 1
        # Slots left idle by a searcher's "not now" are retried after every end.
        while idle and len(run.rows) < budget and start(now):
            idle -= 1
        if late:
            searcher.complete(trial_id, stopped, epoch, loss)
    return run


def _epoch_time(rng: np.random.Generator, jitter: float) -> float:
    return float(rng.lognormal(0.0, jitter)) if jitter > 0 else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=10, help="epochs per method, in full runs of R=27")
    parser.add_argument("--overfit", type=float, default=1.0, help="scale of late overfitting (see _synthetic)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jitter", type=float, default=0.3, help="lognormal sd of an epoch's duration")
    parser.add_argument("--startup", type=float, default=0.0,
                        help="time before a new trial's first epoch, in epochs (Ray starts trials slowly)")
    parser.add_argument("--order", choices=ORDERS, default="interleaved",
                        help="which trial reports next (serial: Ray Tune on local Ray; rungs: raytuner)")
    parser.add_argument("--close-late", action="store_true",
                        help="raytuner's searchers suggest before hearing how the freed slot's trial ended")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        help="searcher/scheduler (see above): searchers random, tpesearcher, hyperopt, gp (options "
                             "after dashes), optuna, raytune; schedulers asha, fifo, rayasha, sha")
    parser.add_argument("--ref", help="the method regret ratios are to (default optuna/asha if run, else the first)")
    parser.add_argument("--stats", action="store_true", help="also trials and full-budget trials per run")
    parser.add_argument("--problem", choices=PROBLEMS, default="synthetic",
                        help="the synthetic curves, the BOHB paper's counting ones, or the MLPClassifier table "
                             "(log loss, or error rate); see _mf_problems")
    args = parser.parse_args()
    if args.ref is not None and args.ref not in args.methods:
        parser.error(f"--ref {args.ref!r} is not one of --methods; add it there or leave --ref out")

    budget = args.budget * R
    spec = problem(args.problem)
    target = float(np.quantile(spec.finals(args.overfit), 0.05))
    scores = _mf_report.Scores(args.methods)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        for method in args.methods:
            began = time.perf_counter()
            run = simulate(method, seed, budget, overfit=args.overfit, workers=args.workers, jitter=args.jitter,
                           startup=args.startup, order=args.order, close_late=args.close_late,
                           problem_name=args.problem)
            scores.add(method, run.rows, budget, target, R, time.perf_counter() - began, trials=run.trials)

    print(f"problem {args.problem}, simulation: {len(seeds)} seeds ({seeds.start}-{seeds.stop - 1}), "
          f"budget {budget} epochs ({args.budget} x R={R}), "
          f"{args.workers} workers, jitter {args.jitter:g}, startup {args.startup:g}, order {args.order}"
          f"{', close late' if args.close_late else ''}, overfit x{args.overfit:g}, "
          f"target true loss <= {target:.3f}")
    _mf_report.results(scores, "random/asha" if "random/asha" in args.methods else args.methods[0], args.stats)
    _mf_report.regrets(scores, spec, args.ref or ("optuna/asha" if "optuna/asha" in args.methods else args.methods[0]))


if __name__ == "__main__":
    main()
