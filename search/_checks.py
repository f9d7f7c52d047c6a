"""Checks of searcher options: a clear error naming the searcher, the option, the value and the rule."""

from __future__ import annotations

import math
import numbers
from typing import Any

from raytuner.errors import ConfigError


def int_at_least(owner: str, name: str, value: Any, low: int, usual: str = "") -> int:
    """``value`` as an int, if it is an int (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        tail = f"; {usual}." if usual else "."
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but must be an int >= {low}{tail}")
    return int(value)


def real_in(owner: str, name: str, value: Any, low: float, high: float, usual: str) -> float:
    """``value`` as a float, if it is a number (not a bool) with low < value <= high."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not low < value <= high:
        upper = "" if math.isinf(high) else f" and <= {high}"
        rule = f"must be a number > {low}{upper}; {usual} is usual"
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but {rule}.")
    return float(value)


def flag(owner: str, name: str, value: Any) -> bool:
    """``value``, if it is True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: `{name}` is {value!r}, but must be True or False.")
    return value
