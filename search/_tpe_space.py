"""A search space as TPE models it: encoded columns, kernels per domain, parameter groups.

Each parameter of the space (see ``_params``: labels such as ``"opt[0].momentum"``)
is one column of an observation matrix, in *encoded* form: model-space values for
continuous domains (log for ``loguniform``), allowed values for discrete ones, option
indices for ``choice``; NaN where a point lacks the parameter (inactive, or unknown in a
fork).

**Group decomposition.** Parameters that are active under the same conditions (the same
chain of choice options above them) always appear together in a config, so each such
group is modelled jointly by one multivariate Parzen estimator, and groups are sampled in
turn, outermost first: a choice is sampled with the rest of its group, and the groups
below the option it took are sampled next. In a space without conditional choices there is
one group, and the model is fully multivariate.

**Ordinal choices.** A ``choice`` of three or more distinct plain numbers (batch sizes,
widths, a grid of learning rates) is ordered: 64 lies between 32 and 128, and a good 64
says something about 32. With ``ordinal=True`` such a choice is encoded by the *rank* of
its option (0 for the smallest value) and modelled like ``randint(0, K)``: a discretised
Gaussian over the ranks, so neighbouring values share evidence. Ranks rather than values
make a geometric grid (16, 32, 64) and a linear one (0.1, 0.2, 0.3) evenly spaced alike.
Other choices (strings, booleans, dicts, mixed types, two options) stay categorical.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._domains import Choice, Domain, RandInt, Range
from ._params import Point, parameters
from ._parzen import CategoricalDim, Dim, NumericDim


_NAN_CODE = -1.2345e150  # stands for NaN in the projection of :meth:`EncodedSpace.repeats`


@functools.cache
def _weights(d: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(d)


def _equal_rows(matrix: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Which rows of ``matrix`` equal ``row``, NaN equal to NaN."""
    return np.all((matrix == row) | (np.isnan(matrix) & np.isnan(row)), axis=1)


def _project(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_j w_j x_j per row, column by column: elementwise operations round the same way
    whatever the array's shape, so equal rows project to equal numbers (a BLAS product
    need not)."""
    out = np.zeros(len(rows))
    for j, w in enumerate(weights):
        out += np.nan_to_num(rows[:, j], nan=_NAN_CODE) * w
    return out


def ordinal_order(domain: Domain) -> np.ndarray | None:
    """For an ordered ``choice`` (three or more distinct plain numbers), the option index
    at each rank (smallest value first); None for any other domain."""
    if not isinstance(domain, Choice) or len(domain.options) < 3:
        return None
    options = domain.options
    if not all(isinstance(o, numbers.Real) and not isinstance(o, bool) for o in options):
        return None
    values = np.array([float(o) for o in options])
    if not np.all(np.isfinite(values)) or len(np.unique(values)) < len(values):
        return None
    return np.argsort(values, kind="stable")


def dim_of(domain: Domain, order: np.ndarray | None = None) -> Dim:
    """The kernel dimension of a domain; an ordered choice by rank if ``order`` is given
    (:func:`ordinal_order`)."""
    if order is not None:
        size = len(order)
        return NumericDim(-0.5, size - 0.5, q=1.0, grid_low=0.0, grid_high=float(size - 1))
    if isinstance(domain, Range) and domain.q is None:
        return NumericDim(domain.low, domain.high, log=domain.log)
    if isinstance(domain, Range):
        q = float(domain.q)
        return NumericDim(float(domain.low), float(domain.high), log=domain.log,
                          q=q, grid_low=float(np.round(domain.low / q) * q),
                          grid_high=float(np.round(domain.high / q) * q))
    if isinstance(domain, RandInt):
        # Every int in [low, high) owns the bin [v - 1/2, v + 1/2]: equal prior mass, and
        # an ordered quantity for the kernel (64 units is near 65).
        return NumericDim(domain.low - 0.5, domain.high - 0.5, q=1.0,
                          grid_low=float(domain.low), grid_high=float(domain.high - 1))
    if isinstance(domain, Choice):
        return CategoricalDim(len(domain.options))
    msg = f"TPESearcher cannot model the domain {domain!r}."  # pragma: no cover
    raise TypeError(msg)


@dataclass(frozen=True)
class Group:
    """Parameters modelled jointly: the same activation conditions.

    Attributes:
        conditions: ``(choice label, option index)`` pairs that must all hold.
        labels: The group's parameter labels.
        columns: Their column indices in the observation matrix.
        dims: Their kernel dimensions.
    """

    conditions: tuple[tuple[str, int], ...]
    labels: tuple[str, ...]
    columns: np.ndarray
    dims: tuple[Dim, ...]


class EncodedSpace:
    """The columns, kernels and groups of one search space.

    Args:
        space: The search space.
        ordinal: Model ordered choices by rank (see the module docstring).

    Raises:
        ConfigError: If the space holds a grid or a native hyperopt expression.
    """

    def __init__(self, space: Mapping[str, Any], ordinal: bool = False) -> None:
        self.params = parameters(space, "TPESearcher")
        self.labels = list(self.params)
        self.column = {label: i for i, label in enumerate(self.labels)}
        # Ordered choices modelled by rank: column -> option index at each rank, and back.
        self._index_at_rank: dict[int, np.ndarray] = {}
        self._rank_of: dict[int, np.ndarray] = {}
        self.dims = []
        for j, param in enumerate(self.params.values()):
            order = ordinal_order(param.domain) if ordinal else None
            if order is not None:
                self._index_at_rank[j] = order
                self._rank_of[j] = np.argsort(order)
            self.dims.append(dim_of(param.domain, order))
        by_conditions: dict[tuple[tuple[str, int], ...], list[str]] = {}
        for label, param in self.params.items():
            by_conditions.setdefault(param.conditions, []).append(label)
        # Outermost first: a group's conditions name choices of shallower groups.
        ordered = sorted(by_conditions.items(), key=lambda item: len(item[0]))
        self.groups = [
            Group(conditions, tuple(labels), np.array([self.column[x] for x in labels]),
                  tuple(self.dims[self.column[x]] for x in labels))
            for conditions, labels in ordered
        ]
        # Columns of the choices that other groups depend on.
        self.parents = sorted({self.column[label] for g in self.groups for label, _ in g.conditions})

    def encode(self, params: Point) -> np.ndarray:
        """A point as one row of the observation matrix (NaN where absent)."""
        row = np.full(len(self.labels), np.nan)
        for label, value in params.items():
            j = self.column[label]
            dim = self.dims[j]
            if isinstance(dim, CategoricalDim):
                row[j] = value
            elif j in self._rank_of:
                row[j] = self._rank_of[j][int(value)]
            elif dim.q is None:
                row[j] = dim.to_model(np.float64(value))
            else:
                row[j] = dim.from_model(dim.to_model(np.float64(value)))  # snapped to the grid
        return row

    def decode(self, columns: np.ndarray, values: np.ndarray) -> Point:
        """Encoded values of some columns back to plain parameter values."""
        out: Point = {}
        for j, x in zip(columns.tolist(), values.tolist()):
            dim = self.dims[j]
            if isinstance(dim, CategoricalDim):
                out[self.labels[j]] = int(x)
            elif j in self._index_at_rank:
                out[self.labels[j]] = int(self._index_at_rank[j][int(x)])
            elif dim.q is None:
                out[self.labels[j]] = float(dim.from_model(np.float64(x)))
            else:
                out[self.labels[j]] = float(x)
        return out

    def active_rows(self, group: Group, matrix: np.ndarray) -> np.ndarray:
        """Rows where ``group`` is active and holds at least one value."""
        mask = ~np.all(np.isnan(matrix[:, group.columns]), axis=1)
        for label, index in group.conditions:
            mask &= matrix[:, self.column[label]] == index
        return mask

    @staticmethod
    def repeats(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Which encoded ``rows`` (m, d) equal a row of ``matrix`` (n, d); NaN equals NaN.

        Rows are first compared by a random projection (O((n + m) d)); only rows whose
        projections match are compared value by value.
        """
        if len(rows) == 1 or not len(matrix):  # one row: compare directly
            return np.array([_equal_rows(matrix, row).any() for row in rows], dtype=bool)
        weights = _weights(matrix.shape[1])
        a, b = _project(matrix, weights), _project(rows, weights)
        out = np.zeros(len(rows), dtype=bool)
        for i in np.flatnonzero(np.isin(b, a)):
            out[i] = _equal_rows(matrix[a == b[i]], rows[i]).any()
        return out

    def known(self, matrix: np.ndarray, params: Point) -> bool:
        """Whether a row of ``matrix`` has exactly these parameters (never for an empty point)."""
        return bool(params) and bool(self.repeats(matrix, self.encode(params)[None])[0])

    def novel(self, matrix: np.ndarray, point: Point, group: Group, ranked: np.ndarray) -> Point | None:
        """``point``, or if a row of ``matrix`` has it, the first of the ``ranked`` candidates
        for ``group`` (the last group sampled, encoded, best first) that makes a point no row
        has, keeping the choices other groups depend on; None if every candidate repeats."""
        if not self.known(matrix, point):
            return point
        row = self.encode(point)
        rows = np.repeat(row[None], len(ranked), axis=0)
        rows[:, group.columns] = ranked
        keep = np.all(rows[:, self.parents] == row[self.parents], axis=1)
        fresh = np.flatnonzero(keep & ~self.repeats(matrix, rows))
        return {**point, **self.decode(group.columns, ranked[fresh[0]])} if len(fresh) else None

    @staticmethod
    def is_active(group: Group, point: Point) -> bool:
        """Whether ``group`` is active in a (partial) point."""
        return all(point.get(label) == index for label, index in group.conditions)
