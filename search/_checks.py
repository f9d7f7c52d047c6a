"""Checks of searcher options: a clear error naming the searcher, the option, the value and the rule."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from raytuner.errors import ConfigError, invalid


def int_at_least(owner: str, name: str, value: Any, low: int, usual: str = "") -> int:
    """``value`` as an int, if it is an int (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        tail = f"; {usual}." if usual else "."
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but must be an int >= {low}{tail}")
    return int(value)


def real_in(owner: str, name: str, value: Any, low: float, high: float, usual: str,
            *, inclusive: bool = False) -> float:
    """``value`` as a float, if it is a finite number (not a bool) with low < value <= high
    (low <= value if ``inclusive``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low <= value if inclusive else low < value) or not value <= high:
        upper = "" if math.isinf(high) else f" and <= {high}"
        rule = f"must be a number {'>=' if inclusive else '>'} {low}{upper}; {usual} is usual"
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but {rule}.")
    return float(value)


def flag(owner: str, name: str, value: Any) -> bool:
    """``value``, if it is True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but must be True or False.")
    return value


def one_of(owner: str, name: str, value: Any, allowed: Sequence[str]) -> Any:
    """``value``, if it is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but must be one of {', '.join(map(repr, allowed))}.")
    return value


def check_seed(owner: str, value: Any) -> int | None:
    """``value``, if it is a seed: a non-negative int, or None."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise invalid(owner, "seed", value, "a non-negative int or None",
                      "Pass e.g. seed=0 for a repeatable search, or None.")
    return value


def make_rng(owner: str, value: Any) -> np.random.Generator:
    """A generator seeded with ``value``, after checking it (:func:`check_seed`)."""
    return np.random.default_rng(check_seed(owner, value))
