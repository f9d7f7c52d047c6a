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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from raytuner.errors import ConfigError

from ._domains import (
    Choice,
    Grid,
    RandInt,
    Range,
    _is_hyperopt_expr,
    plain,
    same_value,
)

INACTIVE = 0.5
"""The value of every column of a parameter that is not active in a config."""

_NUMERIC = (Range, RandInt)


@dataclass(frozen=True)
class Column:
    """One numeric parameter: one column of the cube.

    Attributes:
        label: Dotted path, as in the HyperOpt searcher (``"opt[1].beta"``).
        domain: Its domain.
        index: Its column.
        conditions: ``(choice index into Encoding.choices, option)`` pairs that must all
            hold for the parameter to be active.
    """

    label: str
    domain: Any
    index: int
    conditions: tuple[tuple[int, int], ...]

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

    def value(self, u: float) -> Any:
        """The plain Python value a config holds for column value ``u``."""
        x = float(self.decode(np.array([u]))[0])
        d = self.domain
        if isinstance(d, RandInt) or d.is_int:
            return int(round(x))
        return x


@dataclass(frozen=True)
class OneHot:
    """A ``choice`` of n >= 2 options: n columns starting at ``start``."""

    label: str
    domain: Choice
    start: int
    conditions: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return len(self.domain.options)


class Encoding:
    """The unit-cube encoding of one search space.

    Args:
        space: A raytuner space (domains, dicts, ``choice`` with dict options, constants).
        owner: The searcher's name, for error messages.

    Raises:
        ConfigError: If the space holds a ``grid()`` or a native hyperopt expression.
    """

    def __init__(self, space: Mapping[str, Any], owner: str = "GPSearcher") -> None:
        self.space = space
        self.columns: list[Column] = []
        self.choices: list[OneHot] = []
        self._owner = owner
        self.dim = 0
        self._walk(space, "", ())

    def _take(self, n: int) -> int:
        start = self.dim
        self.dim += n
        return start

    def _walk(self, value: Any, label: str, conditions: tuple[tuple[int, int], ...]) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                self._walk(item, f"{label}.{key}" if label else key, conditions)
        elif isinstance(value, _NUMERIC):
            self.columns.append(Column(label, value, self._take(1), conditions))
        elif isinstance(value, Choice):
            here = conditions
            if len(value.options) >= 2:
                self.choices.append(OneHot(label, value, self._take(len(value.options)), conditions))
                index = len(self.choices) - 1
            for option, item in enumerate(value.options):
                if len(value.options) >= 2:
                    here = conditions + ((index, option),)
                self._walk(item, f"{label}[{option}]", here)
        elif isinstance(value, Grid) or _is_hyperopt_expr(value):
            kind = "a grid() axis" if isinstance(value, Grid) else "a native hyperopt expression"
            msg = (
                f"{self._owner} cannot model {label!r}: it is {kind} ({value!r:.60}). Use "
                f"{'GridSearcher' if isinstance(value, Grid) else 'HyperOptSearcher'}, or "
                "replace it by a raytuner domain (uniform, loguniform, randint, choice, ...)."
            )
            raise ConfigError(msg)

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
        columns = {c.label: c for c in self.columns}
        choices = {g.label: g for g in self.choices}

        def build(value: Any, label: str) -> Any:
            if isinstance(value, Mapping):
                return {k: build(item, f"{label}.{k}" if label else k) for k, item in value.items()}
            if isinstance(value, _NUMERIC):
                column = columns[label]
                return column.value(u[column.index])
            if isinstance(value, Choice):
                if label in choices:
                    group = choices[label]
                    option = int(np.argmax(u[group.start : group.start + group.size]))
                else:
                    option = 0
                return build(value.options[option], f"{label}[{option}]")
            return plain(value)

        return build(self.space, "")

    def encode(self, config: Mapping[str, Any]) -> np.ndarray | None:
        """The point of ``config``, or None if the config does not fit the space.

        A config fits when every active parameter is present and inside its domain and
        every choice matches one of its options (constants inside a choice's options decide
        which). Constants outside choices are not checked, so that an earlier experiment
        whose constants differed can still warm-start this one.
        """
        u = np.full(self.dim, INACTIVE)
        columns = {c.label: c for c in self.columns}
        choices = {g.label: g for g in self.choices}

        def match(space: Any, value: Any, label: str, strict: bool) -> bool:
            if isinstance(space, Mapping):
                if not isinstance(value, Mapping):
                    return False
                return all(
                    key in value and match(item, value[key], f"{label}.{key}" if label else key, strict)
                    for key, item in space.items()
                    if key in value or _needs_value(item) or strict
                )
            if isinstance(space, _NUMERIC):
                return _fits(columns[label], value, u)
            if isinstance(space, Choice):
                for option, item in enumerate(space.options):
                    saved = u.copy()
                    if match(item, value, f"{label}[{option}]", True):
                        if label in choices:
                            group = choices[label]
                            u[group.start : group.start + group.size] = np.eye(group.size)[option]
                        return True
                    u[:] = saved
                return False
            return not strict or same_value(plain(space), plain(value))

        return u if match(self.space, config, "", False) else None


def _fits(column: Column, value: Any, u: np.ndarray) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    x = float(value)
    d = column.domain
    if isinstance(d, RandInt):
        ok = x.is_integer() and d.low <= x <= d.high - 1
    elif d.q is not None:
        # A quantized value may lie up to q/2 beyond the bounds (see quniform's docstring);
        # a log one may round to 0, which is placed at the first step, q, as decode() does.
        ok = d.low - d.q / 2 <= x <= d.high + d.q / 2
        x = max(x, d.q) if column.is_log else x
    else:
        ok = d.low <= x <= d.high
    if ok:
        u[column.index] = column.encode(x)
    return ok


def _needs_value(space: Any) -> bool:
    if isinstance(space, Mapping):
        return any(_needs_value(item) for item in space.values())
    return isinstance(space, (*_NUMERIC, Choice))

