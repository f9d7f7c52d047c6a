"""Map a raytuner search space to the unit cube and back, for the Gaussian-process searcher.

A Gaussian process needs points in a fixed-dimensional real space. Each parameter of the
space gets columns of a point ``u`` in ``[0, 1]^D``:

=========================  =========  ==================================================
domain                     columns    ``u`` from the value ``x``
=========================  =========  ==================================================
``uniform(a, b)``          1          ``(x - a) / (b - a)``
``loguniform(a, b)``       1          ``(log x - log a) / (log b - log a)``
``randint(a, b)``          1          ``(x - (a - 1/2)) / (b - a)``: each int owns an
                                      interval of width ``1 / (b - a)``
``quniform(a, b, q)``      1          as ``uniform(a, b)``; decoded as ``round(x/q) q``
``qloguniform(a, b, q)``   1          as ``loguniform(a, b)``; decoded as ``round(x/q) q``
``choice`` of n options    n (n>=2)   one-hot; decoded by the largest column
dict, constant             0          (dicts recurse; constants are passed through)
=========================  =========  ==================================================

Discrete columns are *snapped* (``encode(decode(u))``) before the acquisition function sees a
point, so that the surrogate is asked about the configuration that would really run and not
about a point between two ints (Garrido-Merchán and Hernández-Lobato, "Dealing with
categorical and integer-valued variables in Bayesian optimization with Gaussian processes",
Neurocomputing 2020).

**Conditional parameters.** A parameter inside a dict option of a ``choice`` only exists when
that option is chosen. Its columns always exist, and are set to the constant 1/2 whenever
the parameter is inactive (the option is not chosen, or an enclosing one is not). Two
configs that differ only in inactive parameters therefore encode to the same point, and the
one-hot columns of the choice tell the GP which branch a point is on.

**Unknown parameters.** A fork's old trial may lack an active number: a parameter added
since (its column holds :data:`MISSING`), or a value outside its new range, dropped as a
fork drops it (:data:`DROPPED`). The kernel marginalises both (``_gp_model``). A trial that
lacks an active choice has no point.

The columns are laid out in the order of the space's parameters (``_params``); a config
is built from a point by ``_params.config_from_params`` and taken apart by
``_params.match_config``, as every searcher does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._domains import Choice, RandInt, Range
from ._params import Param, Point, config_from_params, match_config, parameters

INACTIVE = 0.5
"""The value of every column of a parameter that is not active in a config."""

MISSING = -1.0
"""The value of a column whose parameter is active but absent from a fork's old trial (one
added since): outside the cube, so that the kernel (``_gp_model``) can tell and
marginalise it."""

DROPPED = -2.0
"""The value of a column whose parameter a fork's old trial held outside its new domain:
dropped, and marginalised like :data:`MISSING` but for each trial on its own."""


@dataclass(frozen=True)
class Column:
    """One numeric parameter: one column of the cube.

    Attributes:
        param: The parameter (label, domain, conditions by choice label).
        index: Its column.
        conditions: ``(choice index into Encoding.choices, option)`` pairs that must all
            hold for the parameter to be active.
    """

    param: Param
    index: int
    conditions: tuple[tuple[int, int], ...]

    @property
    def label(self) -> str:
        return self.param.label

    @property
    def domain(self) -> Range | RandInt:
        return self.param.domain  # type: ignore[no-any-return]

    @property
    def is_log(self) -> bool:
        return isinstance(self.domain, Range) and self.domain.log

    @property
    def is_discrete(self) -> bool:
        return isinstance(self.domain, RandInt) or self.domain.q is not None

    def _range(self) -> tuple[float, float]:
        d = self.domain
        if isinstance(d, RandInt):
            return d.low - 0.5, d.high - 0.5
        if self.is_log:
            return math.log(d.low), math.log(d.high)
        return float(d.low), float(d.high)

    def encode(self, value: float) -> float:
        low, high = self._range()
        d = self.domain
        if self.is_log and d.q is not None:
            # A log q value may round to 0: it is placed at the first step, q, as decode() does.
            value = max(value, d.q)
        x = math.log(value) if self.is_log else float(value)
        return min(max((x - low) / (high - low), 0.0), 1.0)

    def decode(self, u: np.ndarray) -> np.ndarray:
        """Values (floats, already rounded for discrete domains) for column values ``u``."""
        low, high = self._range()
        x = low + np.clip(u, 0.0, 1.0) * (high - low)
        if self.is_log:
            x = np.exp(x)
        d = self.domain
        if isinstance(d, RandInt):
            return np.clip(np.round(x), d.low, d.high - 1)
        if d.q is not None:
            # Rounded as the domain samples (round(x / q) * q), and kept where a value can be
            # encoded again: a log column cannot hold 0.
            x = np.round(x / d.q) * d.q
            return np.maximum(x, d.q) if self.is_log else x
        return np.clip(x, d.low, d.high)  # exp(log(b)) may exceed b by a rounding error


@dataclass(frozen=True)
class OneHot:
    """A ``choice`` of n >= 2 options: n columns starting at ``start``."""

    param: Param
    start: int
    conditions: tuple[tuple[int, int], ...]

    @property
    def label(self) -> str:
        return self.param.label

    @property
    def size(self) -> int:
        return len(self.param.domain.options)


class Encoding:
    """The unit-cube encoding of one search space, built on its parameters (``_params``).

    Args:
        space: A raytuner space (domains, dicts, ``choice`` with dict options, constants).
        owner: The searcher's name, for error messages.

    Raises:
        ConfigError: If the space holds a ``grid()`` or a native hyperopt expression.
    """

    def __init__(self, space: Mapping[str, Any], owner: str = "GPSearcher") -> None:
        self.space = space
        self.params = parameters(space, owner)
        self.columns: list[Column] = []
        self.choices: list[OneHot] = []
        self.dim = 0
        one_hot: dict[str, int] = {}  # choice label -> its index in self.choices
        for param in self.params.values():
            # A choice of one option has no columns: it always takes that option.
            conditions = tuple((one_hot[label], index) for label, index in param.conditions if label in one_hot)
            if not isinstance(param.domain, Choice):
                self.columns.append(Column(param, self.dim, conditions))
                self.dim += 1
            elif len(param.domain.options) >= 2:
                one_hot[param.label] = len(self.choices)
                self.choices.append(OneHot(param, self.dim, conditions))
                self.dim += len(param.domain.options)

    def free(self, u: np.ndarray) -> np.ndarray:
        """The continuous (uniform, loguniform) columns active at the snapped point ``u``."""
        picked = [
            np.array([np.argmax(u[g.start : g.start + g.size])]) for g in self.choices
        ]
        return np.array(
            [
                c.index
                for c in self.columns
                if not c.is_discrete and self._active(c.conditions, picked, 1)[0]
            ],
            dtype=int,
        )

    def snap(self, u: np.ndarray) -> np.ndarray:
        """Points of the cube that configs encode to: ``encode(decode(u))``, row by row.

        Discrete columns move to the centre of their value's interval, one-hot groups to
        their largest column, and inactive parameters to :data:`INACTIVE`.
        """
        u = np.clip(np.array(u, dtype=float, ndmin=2), 0.0, 1.0)
        picked = []
        for group in self.choices:
            block = u[:, group.start : group.start + group.size]
            pick = np.argmax(block, axis=1)
            u[:, group.start : group.start + group.size] = np.eye(group.size)[pick]
            picked.append(pick)
        for column in self.columns:
            if column.is_discrete:
                values = column.decode(u[:, column.index])
                u[:, column.index] = [column.encode(v) for v in values]
        for column in self.columns:
            u[~self._active(column.conditions, picked, len(u)), column.index] = INACTIVE
        for group in self.choices:
            inactive = ~self._active(group.conditions, picked, len(u))
            u[inactive, group.start : group.start + group.size] = INACTIVE
        return u

    @staticmethod
    def _active(
        conditions: tuple[tuple[int, int], ...], picked: list[np.ndarray], n: int
    ) -> np.ndarray:
        active = np.ones(n, dtype=bool)
        for choice, option in conditions:
            active &= picked[choice] == option
        return active

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        """The config of one point ``u`` (shape ``(D,)``), with plain Python values."""
        u = np.asarray(u, dtype=float)
        point: Point = {label: 0 for label, p in self.params.items() if isinstance(p.domain, Choice)}
        for group in self.choices:
            point[group.label] = int(np.argmax(u[group.start : group.start + group.size]))
        for column in self.columns:
            point[column.label] = float(column.decode(np.array([u[column.index]]))[0])
        return config_from_params(self.space, point)

    def encode(self, config: Mapping[str, Any]) -> np.ndarray | None:
        """The point of ``config``; for an old trial in a fork, :data:`MISSING` in the
        columns of the active numbers it lacks and :data:`DROPPED` in those it holds outside
        their domain. None if it fits no parameter or lacks an active choice (a one-hot
        block is not marginalised).

        The config is taken apart as a fork's old trials are (``_params.match_config``):
        constants outside choices are not compared, constants inside them decide which
        option a config took.
        """
        match = match_config(self.space, config)
        values = match.values
        if self.params and not values:
            return None
        u = np.full(self.dim, INACTIVE)
        for label, param in self.params.items():
            if isinstance(param.domain, Choice) and param.is_active(values) and label not in values:
                return None
        for group in self.choices:
            if group.param.is_active(values):
                u[group.start : group.start + group.size] = np.eye(group.size)[values[group.label]]
        for column in self.columns:
            if column.param.is_active(values):
                value = values.get(column.label)
                if value is not None:
                    u[column.index] = column.encode(value)
                else:
                    u[column.index] = DROPPED if column.label in match.outside else MISSING
        return u
