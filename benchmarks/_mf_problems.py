"""The multi-fidelity problems of search_sim.py, behind one interface.

- ``synthetic``: config-dependent learning curves over a known function (``_synthetic``);
  noisy reports, regret against the least true loss any config reaches.
- ``counting-ones``: the BOHB paper's benchmark, 8 binary and 8 continuous parameters,
  budgets as Bernoulli sample counts (``_counting_ones``); regret against the optimum -1.
- ``mlp-digits`` (and ``-error``, ``-ordinal``): real MLPClassifier training runs replayed
  from a table (``mlp_curves``); the searcher sees the validation value, the incumbent is
  scored by its test value, regret against the table's least test value.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import _counting_ones as ones
import _synthetic as syn
import mlp_curves

R = syn.MAX_EPOCHS
assert mlp_curves.MAX_EPOCHS == R == ones.MAX_EPOCHS

PROBLEMS = ("synthetic", "counting-ones", "mlp-digits", "mlp-digits-error", "mlp-digits-ordinal",
            "mlp-digits-ordinal-error")


def problem(name: str) -> SimpleNamespace:
    """What the simulation needs of a problem: ``space``, ``hyperopt_space``,
    ``report(config, epoch, seed, noise_sd) -> (loss, true_loss)``, ``finals(overfit)`` (true
    losses at R of random configs, for the target), ``minimum`` (the least true loss, for
    regret) and, where the searcher sees a validation value of its own, ``val_minimum``."""
    if name == "synthetic":
        def report(config: dict[str, Any], epoch: int, seed: int, noise_sd: float) -> tuple[float, float]:
            true = syn.true_loss(config, epoch, R)
            return true + syn.noise(config, epoch, seed, noise_sd), true

        return SimpleNamespace(name=name, space=syn.space, hyperopt_space=syn.hyperopt_space, report=report,
                               finals=lambda overfit: [syn.true_loss({**c, "_overfit": overfit}, R)
                                                       for c in syn.random_configs()], minimum=syn.minimum(R))
    if name == "counting-ones":
        return SimpleNamespace(name=name, space=ones.space, hyperopt_space=ones.hyperopt_space,
                               report=lambda config, epoch, seed, sd: ones.report(config, epoch, seed),
                               finals=lambda overfit: [ones.true_loss(c) for c in ones.random_configs()],
                               minimum=ones.MINIMUM)
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; one of {', '.join(PROBLEMS)}")
    metric, ordinal = "error" if name.endswith("-error") else "logloss", "-ordinal" in name
    val, test = mlp_curves.curves(metric)
    return SimpleNamespace(name=name, space=lambda: mlp_curves.space(ordinal),
                           hyperopt_space=lambda: mlp_curves.hyperopt_space(ordinal),
                           report=lambda config, epoch, seed, sd: mlp_curves.lookup(config, epoch, metric, ordinal),
                           finals=lambda overfit: test[:, -1], minimum=float(test.min()),
                           val_minimum=float(val.min()))
