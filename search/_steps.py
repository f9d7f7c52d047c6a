"""Ranges in steps of ``q``: :func:`quniform` and :func:`qloguniform`, and the rule that
their bounds be multiples of ``q`` (as Ray Tune requires), with the example a refusal gives.
The rounding itself (``round(x / q) * q``, written with ``q``'s decimals) is the domain's:
:func:`._domains._quantize`."""

from __future__ import annotations

import math
from fractions import Fraction

from raytuner.errors import ConfigError

from ._domains import Range


def quniform(low: float, high: float, q: float) -> Range:
    """``round(uniform(low, high) / q) * q``: a uniform range in steps of ``q``.

    Values are ints when ``low``, ``high`` and ``q`` are all ints (``quniform(16, 256, 16)``
    gives 16, 32, ..., 256), floats otherwise. ``low`` and ``high`` must be multiples of
    ``q`` (within float rounding), as Ray Tune requires: the rounding then keeps every
    value in ``[low, high]`` (``quniform(1, 10, 4)`` would give 0).

    Raises:
        ConfigError: If a bound is invalid, ``q <= 0``, ``q > high - low`` or a bound is
            not a multiple of ``q``.
    """
    return _on_steps(Range(low, high, q=q))


def qloguniform(low: float, high: float, q: float) -> Range:
    """``round(loguniform(low, high) / q) * q``; ints when all three arguments are ints.

    ``low`` and ``high`` must be multiples of ``q``, as for :func:`quniform`
    (``qloguniform(1, 100, 10)`` would give 0, outside the log domain, in a third of draws).

    Raises:
        ConfigError: If ``low <= 0``, ``low >= high``, ``q <= 0``, ``q > high - low`` or a
            bound is not a multiple of ``q``.
    """
    return _on_steps(Range(low, high, log=True, q=q))


_STEP_TOLERANCE = 1e-9  # relative: 0.3 / 0.1 is a hair below 3 in floats, and counts as 3


def _is_multiple(value: int | float, q: int | float) -> bool:
    quotient = value / q
    return abs(quotient - round(quotient)) <= _STEP_TOLERANCE * max(1.0, abs(quotient))


def _number(value: float, is_int: bool) -> int | float:
    """``value`` as an example shows it: an int for an int range, else without float noise."""
    return int(round(value)) if is_int else float(f"{value:.12g}")


def _on_steps(domain: Range) -> Range:
    """``domain``, if its bounds are multiples of its ``q`` (and so ``q <= high - low``).

    A stored space is rebuilt without this check (:func:`from_json`), so that an experiment
    started before it resumes with the domain it ran with.
    """
    low, high, q = domain.low, domain.high, domain.q
    assert q is not None  # only q ranges come here
    ctor = f"{domain.name}(low={low!r}, high={high!r}, q={q!r})"
    if q > (high - low) * (1 + _STEP_TOLERANCE):
        msg = (
            f"{ctor}: `q` is {q!r}, larger than high - low = {_number(high - low, domain.is_int)!r}, so "
            "the draws would all round to one or two values, possibly outside [low, high]. Pass a "
            f"smaller q that divides both bounds, e.g. {domain.name}({low!r}, {high!r}, "
            f"{_common_step(low, high, domain.is_int)!r}), or a constant for a single value."
        )
        raise ConfigError(msg)
    off = [f"`{name}` ({bound!r})" for name, bound in (("low", low), ("high", high)) if not _is_multiple(bound, q)]
    if off:
        first = math.ceil(low / q - _STEP_TOLERANCE)
        last = max(math.floor(high / q + _STEP_TOLERANCE), first + 1)
        reached = [round(bound / q) * q for bound in (low, high)]
        outside = sorted({_number(v, domain.is_int) for v in reached if not low <= v <= high})
        beyond = f" (here {', '.join(map(repr, outside))}, outside [low, high])" if outside else ""
        msg = (
            f"{ctor}: {' and '.join(off)} {'is not a multiple' if len(off) == 1 else 'are not multiples'} "
            f"of `q`, as Ray Tune requires too: each draw is rounded to a multiple of q, so the bounds "
            f"are not the range's ends{beyond}. Pass bounds that are multiples of q, e.g. "
            f"{domain.name}({_number(first * q, domain.is_int)!r}, {_number(last * q, domain.is_int)!r}, {q!r})."
        )
        raise ConfigError(msg)
    return domain


def _common_step(low: int | float, high: int | float, is_int: bool) -> int | float:
    """The largest step that both bounds are multiples of (their greatest common divisor, of
    their decimal values for floats)."""
    a, b = (Fraction(repr(bound)) if isinstance(bound, float) else Fraction(bound) for bound in (low, high))
    step = Fraction(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator), a.denominator * b.denominator)
    return int(step) if is_int else float(step)
