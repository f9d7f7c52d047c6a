"""Milliseconds per suggestion after ``--history`` finished trials, side by side in one run:
TPESearcher, Optuna 5's default TPESampler (``study.ask`` with the distributions, which
samples every parameter) and HyperOptSearcher.

The space is _problems.py's ``mixed`` (5 parameters). Each method is given the same
history of random configs with their losses (Optuna through ``add_trials``), then asked
``--asks`` times, each suggestion told before the next ask, so the history stays at
about ``--history``. The median and the 90th percentile are reported.

    python benchmarks/tpe_latency.py --history 2000 --asks 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _problems import mixed_loss, mixed_space  # noqa: E402

from raytuner.search import HyperOptSearcher, Outcome, RandomSearcher, TPESearcher, TrialEnd  # noqa: E402


def history(n: int) -> list[tuple[dict[str, Any], float]]:
    draws = RandomSearcher(mixed_space(), seed=0)
    draws.setup(None, n)
    return [(c, mixed_loss(c)) for c in (draws.suggest(str(i)) for i in range(n))]


def time_ours(searcher: Any, asks: int) -> list[float]:
    searcher.setup(None, 100_000)
    out = []
    for i in range(asks):
        began = time.perf_counter()
        config = searcher.suggest(f"t{i}")
        out.append(time.perf_counter() - began)
        searcher.on_trial_complete(f"t{i}", Outcome(TrialEnd.COMPLETED, mixed_loss(config)))
    return out


def time_optuna(past: list[tuple[dict[str, Any], float]], asks: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    d = optuna.distributions
    dists = {"lr": d.FloatDistribution(1e-5, 1.0, log=True), "batch": d.CategoricalDistribution([16, 32, 64, 128, 256]),
             "dropout": d.FloatDistribution(0.0, 0.8), "layers": d.IntDistribution(1, 5),
             "act": d.CategoricalDistribution(["relu", "tanh", "sigmoid"])}
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials([optuna.trial.create_trial(params=c, distributions=dists, value=v) for c, v in past])
    out = []
    for _ in range(asks):
        began = time.perf_counter()
        trial = study.ask(dists)
        out.append(time.perf_counter() - began)
        study.tell(trial, mixed_loss(trial.params))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--asks", type=int, default=30)
    parser.add_argument("--hyperopt-asks", type=int, default=10)
    args = parser.parse_args()
    past = history(args.history)
    rows = {
        "TPESearcher": time_ours(TPESearcher(mixed_space(), seed=0, warm_start=past), args.asks),
        "Optuna 5 TPESampler": time_optuna(past, args.asks),
        "HyperOptSearcher": time_ours(HyperOptSearcher(mixed_space(), seed=0, warm_start=past), args.hyperopt_asks),
    }
    print(f"ms per suggestion after {args.history} finished trials (mixed 5-parameter space)")
    base = np.median(rows["Optuna 5 TPESampler"])
    for name, times in rows.items():
        ms = 1e3 * np.array(times)
        print(f"  {name:<22} median {np.median(ms):7.2f}  p90 {np.percentile(ms, 90):7.2f}  "
              f"x{np.median(times) / base:5.2f} of Optuna  ({len(ms)} asks)")


if __name__ == "__main__":
    main()
