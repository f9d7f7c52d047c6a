"""Checks of searcher options, in the one message template of ``raytuner.errors.invalid``:
the searcher, the option, the value, the rule and the fix."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from raytuner.errors import invalid


def int_at_least(owner: str, name: str, value: Any, low: int, usual: str) -> int:
    """``value`` as an int, if it is an int (not a bool) >= ``low``; ``usual`` is the value
    the fix suggests."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise invalid(owner, name, value, f"an int >= {low}", f"Pass {name}={usual}.")
    return int(value)


def real_in(owner: str, name: str, value: Any, low: float, high: float, usual: str,
            *, inclusive: bool = False) -> float:
    """``value`` as a float, if it is a finite number (not a bool) in ``(low, high]``
    (``[low, high]`` if ``inclusive``); ``usual`` is the value the fix suggests."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low <= value if inclusive else low < value) or not value <= high:
        if math.isinf(high):
            rule = f"a finite number {'>=' if inclusive else '>'} {low:g}"
        else:
            rule = f"in {'[' if inclusive else '('}{low:g}, {high:g}]"
        raise invalid(owner, name, value, rule, f"Pass {name}={usual}.")
    return float(value)


def flag(owner: str, name: str, value: Any) -> bool:
    """``value``, if it is True or False."""
    if not isinstance(value, bool):
        raise invalid(owner, name, value, "True or False", f"Pass {name}=True or {name}=False.")
    return value


def one_of(owner: str, name: str, value: Any, allowed: Sequence[str]) -> Any:
    """``value``, if it is one of ``allowed`` (the first is the default the fix suggests)."""
    if value not in allowed:
        rule = f"one of {', '.join(map(repr, allowed))}"
        raise invalid(owner, name, value, rule, f"Pass {name}={allowed[0]!r}.")
    return value


def check_seed(owner: str, value: Any, below: int | None = None) -> int | None:
    """``value``, if it is a seed: a non-negative int (less than ``below``, if given: the
    library behind ``owner`` takes no more), or None."""
    bad = isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
    if value is not None and (bad or (below is not None and value >= below)):
        rule = "a non-negative int or None" if below is None else f"an int in [0, {below - 1}] or None"
        raise invalid(owner, "seed", value, rule, "Pass e.g. seed=0 for a repeatable search, or None.")
    return value


def make_rng(owner: str, value: Any) -> np.random.Generator:
    """A generator seeded with ``value``, after checking it (:func:`check_seed`)."""
    return np.random.default_rng(check_seed(owner, value))


def count_objectives(owner: str, value: Any) -> tuple[int, str]:
    """(k, how the objectives read in a message) of an ``objectives`` argument, if it is an
    int >= 1 or a non-empty sequence of distinct metric names."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value), f"{value} objectives"
    names = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    if names and all(isinstance(name, str) for name in names) and len(set(names)) == len(names):
        return len(names), f"metric={names!r}"
    raise invalid(owner, "objectives", value, "an int >= 1 or a list of distinct metric names",
                  "Pass the Tuner's metrics, e.g. objectives=['val_loss', 'params'].")

