"""Argument checks in the one message template of :func:`raytuner.errors.invalid`.

Every message names the scheduler, the argument, the bad value, the rule and the fix.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Sequence

from raytuner.errors import ConfigError, invalid


def _fail(owner: str, name: str, value: Any, rule: str, fix: str) -> None:
    raise invalid(owner, name, value, rule, fix)


def is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and not math.isnan(value)


def check_reduction_factor(owner: str, value: Any) -> None:
    if not is_number(value) or not 2 <= value < math.inf:
        _fail(
            owner, "reduction_factor", value, "a finite number >= 2 (eta)",
            "Pass reduction_factor=3 (the papers' default) or 4 (Ray Tune's).",
        )


def check_max_resource(owner: str, value: Any) -> None:
    if not is_number(value) or not 1 <= value < math.inf:
        _fail(
            owner, "max_resource", value, "a finite number >= 1 (R)",
            "Pass the resource a full trial runs to, e.g. max_resource=27 epochs.",
        )


def check_min_resource(owner: str, value: Any, max_resource: Any) -> None:
    if not is_number(value) or value < 1:
        _fail(
            owner, "min_resource", value, "a number >= 1 (r)",
            "Pass the smallest resource worth judging a trial at, e.g. min_resource=1.",
        )
    if value > max_resource:
        _fail(
            owner, "min_resource", value, f"<= max_resource ({max_resource!r})",
            "Lower min_resource or raise max_resource.",
        )


def check_int(owner: str, name: str, value: Any, minimum: int, fix: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(owner, name, value, f"an int >= {minimum}", fix)


def check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        options = " or ".join(repr(c) for c in choices)
        _fail(owner, name, value, f"one of {options}", f"Pass {name}={choices[0]!r}.")


def check_resource_attr(owner: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        _fail(
            owner, "resource_attr", value, "None or a non-empty str",
            "Pass the report key that counts progress (e.g. 'epoch'), or None to count "
            "reports.",
        )


def check_restore(owner: str, state: dict[str, Any], config: dict[str, Any]) -> None:
    if state.get("config") != config:
        msg = (
            f"{owner}.restore: `state` was made by a scheduler built with "
            f"{state.get('config')!r}, but this one was built with {config!r}. Build the "
            f"scheduler with the same arguments before restoring."
        )
        raise ConfigError(msg)
