"""The multi-objective problems of multi_objective.py: every objective minimised, fixed
reference points, known Pareto fronts.

Single fidelity (``problem(name)``: ``space()``, ``values(config) -> tuple``,
``reference``, ``front_hv``, the hypervolume of the true front with that reference):

- ``zdt1``: ZDT1 (Zitzler, Deb and Thiele, "Comparison of multiobjective evolutionary
  algorithms: empirical results", Evolutionary Computation 2000) with 5 variables in [0, 1]:
  f1 = x1, g = 1 + 9/4 Σ_{i=2..5} x_i, f2 = g (1 - sqrt(f1 / g)). Front: g = 1,
  f2 = 1 - sqrt(f1). Reference (1.1, 11): HV = 1.1 * 11 - 1/3.
- ``dtlz2``: DTLZ2 (Deb, Thiele, Laumanns and Zitzler, 2002) with 3 objectives and 5
  variables: f = (1 + g) (c1 c2, c1 s2, s1), c_i = cos(x_i π/2), s_i = sin(x_i π/2),
  g = Σ_{i=3..5} (x_i - 1/2)^2. Front: the unit sphere's positive octant. Reference
  (1.1, 1.1, 1.1): HV = 1.1^3 - π/6.
- ``mixed``: ZDT1's trade-off over a mixed space, continuous ``x``, log ``lr`` in
  [1e-4, 1], integer ``layers`` in 1..8, categorical ``act``: f1 = x, g = 1 +
  (log10 lr + 2)^2 / 4 + |layers - 5| / 4 + (act != "tanh") / 2 in [1, 3.5],
  f2 = g (1 - sqrt(x / g)), increasing in g. Front: lr = 1e-2, layers = 5, act = "tanh".
  Reference (1.1, 4): HV = 1.1 * 4 - 1/3.
- ``mlp-digits``: the MLP table of mlp_curves.py (1,120 real training runs on scikit-learn's
  digits): the validation error rate after R = 27 epochs against the parameter count of
  the network, 64 w + w + 10 w + 10 for width w, divided by its largest, 19,210. Front: the
  table's own. Reference (1, 1.1).

Multi-fidelity (``mf_problem(name)``, search_sim.py's interface: ``report(config, epoch,
seed, noise_sd) -> (values, true values)``, ``reference``, ``true_front_hv``; searchers see
the first values, the second score):

- ``mlp-digits``: the same table, per epoch: (validation error, size); scored by (test
  error, size) of the same reports. True front: the table's, over every epoch (also
  ``seen_front_hv``, the validation front's).
- ``synthetic``: _synthetic.py's noisy, crossing learning curves against the width/512 (the
  model's size; its best loss is at width 128, and wide models overfit): (loss + noise,
  size); scored by (true loss, size). True front: at width w, the least true loss is
  ``syn.minimum(R) + 0.04 (log2 w - 7)^2`` (dropout 0.3, relu, the best learning rate, epoch
  R: the final loss's width term, see _synthetic.py). Reference (1.5, 1.1).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

import _synthetic as syn
import mlp_curves
from raytuner._pareto import hypervolume

R = mlp_curves.MAX_EPOCHS
PROBLEMS = ("zdt1", "dtlz2", "mixed", "mlp-digits")
MF_PROBLEMS = ("mlp-digits", "synthetic")
_LARGEST = 75 * max(mlp_curves.GRID["width"]) + 10


def size(width: float) -> float:
    """A one-hidden-layer MLP's parameters on digits (64 inputs, 10 classes), over the largest."""
    return (75 * width + 10) / _LARGEST


def _zdt(f1: float, g: float) -> tuple[float, float]:
    return f1, g * (1 - math.sqrt(f1 / g))


def problem(name: str) -> SimpleNamespace:
    """A single-fidelity problem (see the module docstring)."""
    import raytuner as rt

    if name == "zdt1":
        return SimpleNamespace(
            name=name, space=lambda: {f"x{i}": rt.uniform(0.0, 1.0) for i in range(1, 6)},
            values=lambda c: _zdt(c["x1"], 1 + 9 / 4 * sum(c[f"x{i}"] for i in range(2, 6))),
            reference=(1.1, 11.0), front_hv=1.1 * 11 - 1 / 3)
    if name == "dtlz2":
        def dtlz2(c: Mapping[str, Any]) -> tuple[float, float, float]:
            g = sum((c[f"x{i}"] - 0.5) ** 2 for i in range(3, 6))
            a, b = c["x1"] * math.pi / 2, c["x2"] * math.pi / 2
            return ((1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b), (1 + g) * math.sin(a))

        return SimpleNamespace(name=name, space=lambda: {f"x{i}": rt.uniform(0.0, 1.0) for i in range(1, 6)},
                               values=dtlz2, reference=(1.1, 1.1, 1.1), front_hv=1.1**3 - math.pi / 6)
    if name == "mixed":
        def mixed(c: Mapping[str, Any]) -> tuple[float, float]:
            g = 1 + (math.log10(c["lr"]) + 2) ** 2 / 4 + abs(c["layers"] - 5) / 4 + (c["act"] != "tanh") / 2
            return _zdt(c["x"], g)

        return SimpleNamespace(
            name=name, space=lambda: {"x": rt.uniform(0.0, 1.0), "lr": rt.loguniform(1e-4, 1.0),
                                      "layers": rt.randint(1, 9), "act": rt.choice(["relu", "tanh", "elu"])},
            values=mixed, reference=(1.1, 4.0), front_hv=1.1 * 4 - 1 / 3)
    if name == "mlp-digits":
        val, _ = mlp_curves.curves("error")
        sizes = np.array([size(c["width"]) for c in mlp_curves.configs()])
        reference = (1.0, 1.1)
        return SimpleNamespace(
            name=name, space=mlp_curves.space,
            values=lambda c: (mlp_curves.lookup(c, R, "error")[0], size(c["width"])),
            reference=reference, front_hv=hypervolume(np.column_stack([val[:, -1], sizes]), reference))
    raise ValueError(f"unknown problem {name!r}; one of {', '.join(PROBLEMS)}")


def mf_problem(name: str) -> SimpleNamespace:
    """A multi-fidelity problem (see the module docstring), with search_sim.py's interface."""
    if name == "mlp-digits":
        def report(config: Mapping[str, Any], epoch: int, seed: int, sd: float) -> tuple[tuple, tuple]:
            val, test = mlp_curves.lookup(config, epoch, "error")
            return (val, size(config["width"])), (test, size(config["width"]))

        val, test = mlp_curves.curves("error")
        sizes = np.repeat([size(c["width"]) for c in mlp_curves.configs()], R)
        reference = (1.0, 1.1)
        return SimpleNamespace(name=name, space=mlp_curves.space, report=report, reference=reference,
                               seen_front_hv=hypervolume(np.column_stack([val.ravel(), sizes]), reference),
                               true_front_hv=hypervolume(np.column_stack([test.ravel(), sizes]), reference))
    if name == "synthetic":
        def synthetic(config: Mapping[str, Any], epoch: int, seed: int, sd: float) -> tuple[tuple, tuple]:
            true = syn.true_loss(config, epoch, R)
            width = config["width"] / 512
            return (true + syn.noise(config, epoch, seed, sd), width), (true, width)

        widths = np.arange(16, 513, 16)
        front = np.column_stack([syn.minimum(R) + 0.04 * (np.log2(widths) - 7) ** 2, widths / 512])
        reference = (1.5, 1.1)
        return SimpleNamespace(name=name, space=syn.space, report=synthetic, reference=reference,
                               true_front_hv=hypervolume(front, reference))
    raise ValueError(f"unknown multi-fidelity problem {name!r}; one of {', '.join(MF_PROBLEMS)}")
