"""The single-fidelity problems of tpe_quality.py, gp_optuna.py and tpe_latency.py.

Each is a function of a config (one value per trial, no epochs) with a known minimum, so
that the score is the regret: the best value found minus the minimum.

Designed for issue 13 (TPESearcher):

- ``mixed``: 5 parameters (loguniform, an ordered choice of batch sizes, uniform, randint,
  a categorical) with two interactions: the best learning rate grows with the batch size,
  the best dropout with the depth. Minimum 0.
- ``conditional``: a choice of three model families with their own sub-parameters
  (2-3 each, interacting) and one shared parameter. Minimum 0 (the second family).

Tables of real training runs on data that ships inside scikit-learn (nothing is
downloaded):

- ``svc-cancer``, ``sgd-digits``: 3-fold cross-validated error of every grid point, SVC on
  breast_cancer (13 C x 13 gamma x 2 kernels) and SGDClassifier on digits (13 alpha x
  5 l1_ratio x 3 losses), searched as a ``choice`` of the grid values each. Computed once
  per process (a minute or two on 2 cores).
- ``mlp-digits``: mlp_curves.py's 1,120 MLP runs on digits (4 ordered parameters), scored
  by validation log loss after the last epoch (shipped as data/mlp_digits_curves.npz).

From the Bayesian-optimisation literature and issue 17 (GPSearcher):

- ``branin``: Branin-Hoo, 2 continuous parameters, minimum 0.397887 (smooth);
- ``hartmann6``: Hartmann 6-D on the unit cube, minimum -3.32237 (smooth, multimodal);
- ``synthetic``: the final loss of _synthetic.py (log, stepped, linear and a categorical
  parameter), minimum 0.1;
- ``cat8``: 8 categorical parameters of 5 options with additive random effects plus one
  continuous parameter (categorical-heavy: where one-hot GPs are weak).
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from typing import Any, Callable, NamedTuple

import numpy as np

import raytuner as rt


class Problem(NamedTuple):
    space: dict[str, Any]
    loss: Callable[[dict[str, Any]], float]
    minimum: float


def problem(name: str) -> Problem:
    """A fresh space with the problem's loss and least value."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name]()


# -- designed for TPESearcher ------------------------------------------------------------


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


# -- tables of real training runs --------------------------------------------------------


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


def tabular(name: str) -> Problem:
    space, table = _table(name)
    keys = list(space)
    return Problem(space, lambda c: table[tuple(c[k] for k in keys)], min(table.values()))


def mlp_table() -> Problem:
    """mlp_curves.py's table of 1,120 MLP runs on digits, at its last epoch: the
    validation log loss after 27 epochs, as a single-fidelity tabular benchmark."""
    import mlp_curves

    val = mlp_curves.curves("logloss")[0][:, -1].copy()
    index = {tuple(c.values()): i for i, c in enumerate(mlp_curves.configs())}
    keys = list(mlp_curves.GRID)
    return Problem(mlp_curves.space(), lambda c: float(val[index[tuple(c[k] for k in keys)]]), float(val.min()))


# -- from the Bayesian-optimisation literature -------------------------------------------


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


_CAT_EFFECTS = np.random.default_rng(2026).random((8, 5))


def cat8(c: dict[str, Any]) -> float:
    return float(sum(_CAT_EFFECTS[i, c[f"c{i}"]] for i in range(8)) + (c["x"] - 0.3) ** 2)


def _synthetic_final() -> Problem:
    import _synthetic as syn

    return Problem(syn.space(), syn.final_loss, 0.1)


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "mixed": lambda: Problem(mixed_space(), mixed_loss, 0.0),
    "conditional": lambda: Problem(conditional_space(), conditional_loss, 0.0),
    "svc-cancer": lambda: tabular("svc-cancer"),
    "sgd-digits": lambda: tabular("sgd-digits"),
    "mlp-digits": mlp_table,
    "branin": lambda: Problem({"x1": rt.uniform(-5, 10), "x2": rt.uniform(0, 15)}, branin, 0.397887),
    "hartmann6": lambda: Problem({f"x{i}": rt.uniform(0, 1) for i in range(6)}, hartmann6, -3.32237),
    "synthetic": _synthetic_final,
    "cat8": lambda: Problem({**{f"c{i}": rt.choice(list(range(5))) for i in range(8)}, "x": rt.uniform(0, 1)}, cat8,
                            float(_CAT_EFFECTS.min(axis=1).sum())),
}
