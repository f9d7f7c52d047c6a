"""One single-fidelity sweep of a searcher on a problem of _problems.py, simulated or on Ray.

Simulated (:func:`simulate`, no Ray): ``workers`` slots; each trial takes a lognormal time
drawn from a clock the script seeds, a free slot asks the searcher at once, and a finished
trial is told to the searcher before the next ask (a searcher that answers "not now" waits
for the next result). Every method sees the same durations on the same seed, so the
searcher is the only thing that differs; with one worker, trials run one at a time.

On a local Ray (:func:`on_ray`): one ``rt.Tuner(...).fit()`` with ``max_concurrent=workers``,
``num_trials=trials``, ``metric="loss"`` (or several, ``["f0", "f1"]``), ``verbose=0``. The trainable reports the problem's
loss once; it is a closure shipped to the workers by value (a table, built in the driver,
travels inside it). Trials take milliseconds, so which of two running trials ends first is
Ray's timing: with more than one worker a run is not reproducible from its seeds, though
the searcher sees exactly what a replay of the same order without Ray gives it.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import raytuner as rt
from _methods import searcher
from _problems import PROBLEMS, problem
from raytuner.search import Outcome, TrialEnd


def simulate(searcher: Any, loss: Callable[[dict[str, Any]], Any], trials: int, workers: int,
             clock: np.random.Generator, sigma: float, objectives: int = 1) -> tuple[list[Any], float]:
    """The values of ``trials`` trials in the order they finished, and the seconds the
    searcher spent suggesting. A trial lasts ``clock.lognormal(0, sigma)`` time units.
    With ``objectives`` k >= 2, ``loss`` returns k values and the searcher is told so."""
    if objectives == 1:
        searcher.setup(None, trials)
    else:
        searcher.setup(None, trials, objectives)
    running: list[tuple[float, int, dict[str, Any]]] = []
    values: list[float] = []
    now, asked, ask_s = 0.0, 0, 0.0
    while len(values) < trials:
        while asked < trials and len(running) < workers:
            began = time.perf_counter()
            config = searcher.suggest(f"{asked:05d}")
            ask_s += time.perf_counter() - began
            if config is None:  # "not now": wait for a result
                break
            heapq.heappush(running, (now + float(clock.lognormal(0.0, sigma)), asked, config))
            asked += 1
        now, trial, config = heapq.heappop(running)
        value = float(loss(config)) if objectives == 1 else tuple(map(float, loss(config)))
        searcher.on_trial_complete(f"{trial:05d}", Outcome(TrialEnd.COMPLETED, value))
        values.append(value)
    return values, ask_s


def on_ray(searcher: Any, space: dict[str, Any], loss: Callable[[dict[str, Any]], Any], trials: int,
           workers: int, root: str, name: str, objectives: int = 1) -> tuple[list[Any], float]:
    """The values of one real sweep on the running local Ray, and its seconds. With
    ``objectives`` k >= 2, ``loss`` returns k values, reported as ``f0``, ``f1``, ... (all
    minimised: ``metric=["f0", "f1", ...]``), and the values are tuples."""
    metrics = ["loss"] if objectives == 1 else [f"f{i}" for i in range(objectives)]
    began = time.perf_counter()
    results = rt.Tuner(_trainable_of(loss, metrics), space=None if searcher.space is not None else space,
                       metric=metrics[0] if objectives == 1 else metrics, num_trials=trials, max_concurrent=workers,
                       searcher=searcher, storage_path=root, name=name, verbose=0).fit()
    seconds = time.perf_counter() - began
    reported = [t for t in results.trials if all(m in t.metrics for m in metrics)]
    values = [t.metrics["loss"] if objectives == 1 else tuple(t.metrics[m] for m in metrics) for t in reported]
    if len(values) != trials:
        print(f"  note: {name}: {len(values)} of {trials} trials reported", flush=True)
    return values, seconds


def _trainable_of(loss: Callable[[dict[str, Any]], Any], metrics: Sequence[str]) -> Callable[[dict[str, Any]], None]:
    """A trainable that reports ``loss(config)`` once, as ``metrics`` (a closure: cloudpickle
    ships it and its table)."""

    def trainable(config: dict[str, Any]) -> None:
        value = loss(config)
        rt.report(dict(zip(metrics, value if len(metrics) > 1 else [value])))

    return trainable


# -- what tpe_quality.py and gp_optuna.py share ------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, *, problems: Sequence[str], methods: Sequence[str],
                  seeds: int, trials: int, workers: int, jitter: float) -> None:
    """The flags of a single-fidelity comparison, with the script's defaults."""
    parser.add_argument("--problems", nargs="+", default=list(problems), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(methods),
                        help="searchers of _methods.py, options after dashes: random, tpesearcher, hyperopt, "
                             "optuna, gp (e.g. tpesearcher-bandwidth=0.07, gp-pending=constant_liar)")
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=trials)
    parser.add_argument("--workers", type=int, default=workers, help="trials at a time")
    parser.add_argument("--jitter", type=float, default=jitter,
                        help="lognormal sd of a trial's duration; 0: trials end in the order they started")
    parser.add_argument("--ray", action="store_true", help="real sweeps on a local Ray instead of the simulation")


def sweep(args: argparse.Namespace, problem_name: str, method: str, seed: int, clock: int,
          root: str | None = None) -> tuple[list[float], float]:
    """One sweep as the flags say: the values in the order the trials finished, and the
    seconds spent asking (simulated) or the sweep's seconds (``--ray``, under ``root``).
    ``clock``: the stream the trial durations are drawn from, ``default_rng([seed, clock])``."""
    spec = problem(problem_name)
    if args.ray:
        assert root is not None
        return on_ray(searcher(method, seed), spec.space, spec.loss, args.trials, args.workers, root,
                      f"{problem_name}-{method}-{seed}")
    return simulate(searcher(method, seed, spec.space), spec.loss, args.trials, args.workers,
                    np.random.default_rng([seed, clock]), args.jitter)


@contextmanager
def local_ray(workers: int, *ship: Any) -> Iterator[str]:
    """A local Ray for ``--ray`` sweeps, after one warm-up sweep (so that starting the
    workers is not timed); yields the folder the sweeps store their results in. ``ship``:
    more modules the trainables need, sent to the workers by value."""
    import _local_ray
    import _problems
    import _synthetic

    _local_ray.start(sys.modules[__name__], _problems, _synthetic, *ship)
    try:
        with tempfile.TemporaryDirectory() as root:
            spec = problem("mixed")
            on_ray(searcher("random", 0), spec.space, spec.loss, 2 * workers, workers, root, "warm-up")
            yield root
    finally:
        _local_ray.stop()
