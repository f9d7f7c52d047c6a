"""Search-space domains: what one hyperparameter may take and how to sample it.

Each constructor (:func:`uniform`, :func:`loguniform`, ...) returns a small frozen object that
validates its arguments at once, so that a typo fails when the space is written rather than
hours into an experiment. Domains are plain data: searchers translate them (the HyperOpt
searcher into ``hp`` expressions) or sample them with a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import abc
import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np

from raytuner.errors import ConfigError


def _is_hyperopt_expr(value: Any) -> bool:
    # Duck-typed so that this module (and the controller, which validates spaces) never
    # imports hyperopt; pyll's Apply lives in ``hyperopt.pyll.base``.
    return type(value).__module__.startswith("hyperopt.")


def plain(value: Any) -> Any:
    """Return ``value`` with numpy scalars and arrays turned into Python values, deeply."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    return value


def same_value(a: Any, b: Any) -> bool:
    """Whether two config values are the same: ``True`` is not ``1``, lists and tuples
    compare by items, dicts by keys and values, a path as its string (``config.json`` holds
    ``Path("/data")`` as ``"/data"``); an object whose ``__eq__`` raises is not."""
    if isinstance(a, PurePath) or isinstance(b, PurePath):
        a, b = (str(v) if isinstance(v, PurePath) else v for v in (a, b))
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  # an odd constant's __eq__ must not abort a match
        return False


def resolve(value: Any, rng: np.random.Generator) -> Any:
    """Sample every domain in ``value`` (a domain, a dict sub-space or a constant)."""
    if isinstance(value, Domain):
        return value.sample(rng)
    if isinstance(value, Mapping):
        return {key: resolve(item, rng) for key, item in value.items()}
    return plain(value)


def to_json(value: Any) -> Any:
    """JSON-friendly description of a space entry (see :func:`search.space_to_json`)."""
    if isinstance(value, Domain):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if _is_hyperopt_expr(value):
        return {"type": "hyperopt", "expr": str(value)}
    value = plain(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return {"type": "constant", "repr": repr(value)}


def from_json(value: Any) -> Any:
    """The space entry that :func:`to_json` described."""
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    kind = value.get("type")
    if kind in _FROM_JSON:
        return _FROM_JSON[kind](value)
    if kind in ("hyperopt", "constant"):
        msg = (
            f"space_from_json: `description` holds {value!r:.100}, which stands for an object "
            "JSON cannot carry. Such a space cannot be rebuilt from its description; keep the "
            "space itself (the Tuner pickles a searcher built on one)."
        )
        raise ConfigError(msg)
    return {key: from_json(item) for key, item in value.items()}


_FROM_JSON: dict[str, Any] = {
    "uniform": lambda d: uniform(d["low"], d["high"]),
    "loguniform": lambda d: loguniform(d["low"], d["high"]),
    # As stored: a q range from before bounds had to be multiples of q resumes as it ran.
    "quniform": lambda d: Range(d["low"], d["high"], q=d["q"]),
    "qloguniform": lambda d: Range(d["low"], d["high"], log=True, q=d["q"]),
    "randint": lambda d: randint(d["low"], d["high"]),
    "choice": lambda d: choice([from_json(option) for option in d["options"]]),
    "grid": lambda d: grid([from_json(value) for value in d["values"]]),
}


def _contains_domain(value: Any) -> bool:
    if isinstance(value, Domain):
        return True
    if isinstance(value, Mapping):
        return any(_contains_domain(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_domain(item) for item in value)
    return False


def _contains_grid(value: Any) -> bool:
    if isinstance(value, Grid):
        return True
    if isinstance(value, Choice):
        return any(_contains_grid(option) for option in value.options)
    if isinstance(value, Mapping):
        return any(_contains_grid(item) for item in value.values())
    return False


def _real(ctor: str, name: str, value: Any) -> int | float:
    """Check that ``value`` is a finite real number; return it as a Python int or float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = (
            f"{ctor}: `{name}` is {value!r} ({type(value).__name__}), but must be a real "
            f"number. Pass an int or a float, e.g. {name}=1."
        )
        raise ConfigError(msg)
    if not math.isfinite(value):
        msg = f"{ctor}: `{name}` is {value!r}, but must be finite. Pass a finite bound."
        raise ConfigError(msg)
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _bounds(ctor: str, low: Any, high: Any, *, log: bool = False) -> tuple[Any, Any]:
    low, high = _real(ctor, "low", low), _real(ctor, "high", high)
    if log and low <= 0:
        msg = (
            f"{ctor}: `low` is {low!r}, but log-scale bounds must be > 0. Pass a positive "
            "`low` (e.g. 1e-5), or use uniform() for a range that includes 0."
        )
        raise ConfigError(msg)
    if not low < high:
        msg = (
            f"{ctor}: `low` is {low!r} and `high` is {high!r}, but `low` must be < `high`. "
            "Swap them, or use a constant for a fixed value."
        )
        raise ConfigError(msg)
    return low, high


def _quantum(ctor: str, q: Any) -> int | float:
    q = _real(ctor, "q", q)
    if q <= 0:
        msg = f"{ctor}: `q` is {q!r}, but must be > 0. Pass the step size, e.g. q=1."
        raise ConfigError(msg)
    return q


def _values(ctor: str, name: str, values: Any) -> tuple[Any, ...]:
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, range)):
        msg = (
            f"{ctor}: `{name}` is {values!r}, but must be a list of values. "
            f"Pass e.g. {ctor.split('(')[0]}([32, 64, 128])."
        )
        raise ConfigError(msg)
    if len(values) == 0:
        msg = f"{ctor}: `{name}` is empty, but needs at least one value. Pass a non-empty list."
        raise ConfigError(msg)
    for index, value in enumerate(values):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value):
            msg = (
                f"{ctor}: `{name}[{index}]` is nan, which equals no value, itself included (nan != nan): "
                "a trial's config could not be matched to its option, which the searchers and a resume "
                "rely on. Pass None, or a string such as 'nan', and map it to nan in the trainable."
            )
            raise ConfigError(msg)
    return tuple(values)


class Domain(abc.ABC):
    """Base class of the values one hyperparameter may take."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one plain Python value with ``rng``."""

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """JSON-friendly description: ``{"type": <constructor name>, <arguments>...}``."""


def _quantize(value: float, q: int | float, is_int: bool) -> int | float:
    # round(x / q) * q, as hyperopt's quniform does, so that random and TPE phases agree;
    # a float written with q's decimals, so that 3 * 0.1 is 0.3 as the user wrote the bound,
    # not 0.30000000000000004 (above it) and 7 * 0.7 is 4.9, not 4.8999999999999995.
    quantized = float(np.round(value / q) * q)
    return int(round(quantized)) if is_int else round(quantized, q_decimals(q))


@functools.lru_cache(maxsize=256)
def q_decimals(q: int | float) -> int:
    """The decimals ``q`` is written with (0.25: 2, 1e-3: 3, 16.0: 0)."""
    return max(0, -int(Decimal(repr(float(q))).as_tuple().exponent))


@dataclass(frozen=True, repr=False)
class Range(Domain):
    """Numbers between ``low`` and ``high``: drawn uniformly on ``[low, high)``, or with a
    uniform logarithm when ``log``, and rounded to a multiple of ``q`` (``round(x / q) * q``)
    when ``q`` is given. Built by :func:`uniform`, :func:`loguniform`, :func:`quniform` and
    :func:`qloguniform`; a range without ``q`` holds float bounds, one with ``q`` keeps
    its arguments' types, so that ints in give ints out.
    """

    low: int | float
    high: int | float
    log: bool = False
    q: int | float | None = None

    def __post_init__(self) -> None:
        step = "" if self.q is None else f", q={self.q!r}"
        ctor = f"{self.name}(low={self.low!r}, high={self.high!r}{step})"
        low, high = _bounds(ctor, self.low, self.high, log=self.log)
        if self.q is None:
            low, high = float(low), float(high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.q is not None:
            object.__setattr__(self, "q", _quantum(ctor, self.q))

    @property
    def name(self) -> str:
        """The constructor that builds this range: ``uniform``, ``qloguniform``..."""
        return f"{'q' if self.q is not None else ''}{'log' if self.log else ''}uniform"

    @property
    def is_int(self) -> bool:
        """Whether samples are ints (a ``q`` range whose low, high and q are all ints)."""
        return self.q is not None and all(isinstance(x, int) for x in (self.low, self.high, self.q))

    def sample(self, rng: np.random.Generator) -> int | float:
        if self.log:
            value = np.exp(rng.uniform(np.log(self.low), np.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return float(value) if self.q is None else _quantize(value, self.q, self.is_int)

    def to_json(self) -> dict[str, Any]:
        step = {} if self.q is None else {"q": self.q}
        return {"type": self.name, "low": self.low, "high": self.high, **step}

    def __repr__(self) -> str:
        step = "" if self.q is None else f", q={self.q!r}"
        return f"{self.name}({self.low!r}, {self.high!r}{step})"


@dataclass(frozen=True, repr=False)
class RandInt(Domain):
    """Ints uniform on ``low, low + 1, ..., high - 1`` (``high`` excluded, as in numpy)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        ctor = f"randint(low={self.low!r}, high={self.high!r})"
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                msg = (
                    f"{ctor}: `{name}` is {value!r} ({type(value).__name__}), but must be an "
                    "int. Pass ints, or use quniform() for a stepped float range."
                )
                raise ConfigError(msg)
        low, high = _bounds(ctor, int(self.low), int(self.high))
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high))

    def to_json(self) -> dict[str, Any]:
        return {"type": "randint", "low": self.low, "high": self.high}

    def __repr__(self) -> str:
        return f"randint({self.low!r}, {self.high!r})"


@dataclass(frozen=True, repr=False, eq=False)
class Choice(Domain):
    """One of ``options``, uniformly; dict options are sub-spaces sampled recursively."""

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        ctor = "choice(options=...)"
        options = _values(ctor, "options", self.options)
        for index, option in enumerate(options):
            if _contains_grid(option):
                msg = (
                    f"choice(): option {index} contains a grid(), which cannot be nested in a "
                    "choice (the grid would depend on the draw). Move the grid() to the "
                    "top level of the space."
                )
                raise ConfigError(msg)
        object.__setattr__(self, "options", options)

    def sample(self, rng: np.random.Generator) -> Any:
        return resolve(self.options[int(rng.integers(len(self.options)))], rng)

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "options": [to_json(option) for option in self.options]}

    def __eq__(self, other: object) -> bool:
        return type(other) is Choice and self.options == other.options

    __hash__ = None  # type: ignore[assignment]  # options may hold dicts

    def __repr__(self) -> str:
        return f"choice({list(self.options)!r})"


@dataclass(frozen=True, repr=False, eq=False)
class Grid(Domain):
    """Every one of ``values`` in turn: grid search (see :class:`search.GridSearcher`)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        values = _values("grid(values=...)", "values", self.values)
        for index, value in enumerate(values):
            if _contains_domain(value):
                msg = (
                    f"grid(): value {index} is {value!r}, which contains a domain; grid "
                    "values must be constants. Put the domain next to the grid() in the space."
                )
                raise ConfigError(msg)
        object.__setattr__(self, "values", tuple(plain(value) for value in values))

    def sample(self, rng: np.random.Generator) -> Any:
        msg = (
            f"{self!r} is a grid axis and cannot be sampled at random. Use GridSearcher "
            "(the Tuner picks it when the space has a grid())."
        )
        raise ConfigError(msg)

    def to_json(self) -> dict[str, Any]:
        return {"type": "grid", "values": [to_json(value) for value in self.values]}

    def __eq__(self, other: object) -> bool:
        return type(other) is Grid and self.values == other.values

    __hash__ = None  # type: ignore[assignment]  # values may hold dicts

    def __repr__(self) -> str:
        return f"grid({list(self.values)!r})"


def uniform(low: float, high: float) -> Range:
    """Floats drawn uniformly from ``[low, high)``.

    Raises:
        ConfigError: If a bound is not a finite real number or ``low >= high``.
    """
    return Range(low, high)


def loguniform(low: float, high: float) -> Range:
    """Floats drawn log-uniformly from ``[low, high)``: each decade equally likely.

    The usual prior for learning rates and regularisation strengths (Bergstra and Bengio,
    "Random search for hyper-parameter optimization", JMLR 2012).

    Example:
        >>> loguniform(1e-4, 1e-1)
        loguniform(0.0001, 0.1)

    Raises:
        ConfigError: If ``low <= 0`` or ``low >= high``.
    """
    return Range(low, high, log=True)


def randint(low: int, high: int) -> RandInt:
    """Ints drawn uniformly from ``low`` to ``high - 1``: the upper bound is excluded.

    Example:
        >>> randint(1, 4)  # 1, 2 or 3
        randint(1, 4)

    Raises:
        ConfigError: If a bound is not an int or ``low >= high``.
    """
    return RandInt(low, high)


def choice(options: Sequence[Any]) -> Choice:
    """One of ``options``, each equally likely.

    An option may be a constant, a domain (sampled when chosen) or a dict, which is a
    conditional sub-space: its domains are sampled only when that option is chosen.

    Example:
        >>> opt = choice([{"name": "sgd", "momentum": uniform(0, 0.99)}, {"name": "adam"}])

    Raises:
        ConfigError: If ``options`` is empty, not a list, or nests a :func:`grid`.
    """
    return Choice(options)  # type: ignore[arg-type]


def grid(values: Sequence[Any]) -> Grid:
    """Grid search over ``values``: every value is tried, crossed with the other grids.

    A space with a grid is searched by :class:`search.GridSearcher`, which runs the whole
    cross product ``num_trials`` times, as Ray Tune's ``grid_search`` does.

    Raises:
        ConfigError: If ``values`` is empty, not a list, or holds a domain.
    """
    return Grid(values)  # type: ignore[arg-type]
