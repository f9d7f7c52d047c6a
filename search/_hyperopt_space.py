"""Translate raytuner search spaces to hyperopt and map values both ways.

hyperopt identifies each hyperparameter by a *label* and stores one value per label (a
``hp.choice`` stores the index of the option). Labels here are the dotted path of the
entry: ``"lr"``, ``"model.units"``, and ``"opt[1].beta"`` for the ``beta`` of the second
option of the choice ``opt``. Configs are rebuilt from the label values by walking our own
space (not hyperopt's ``space_eval``, which turns lists into tuples and sorts dict keys), so
trials receive the space's own structure with plain Python values.

Conversion table (raytuner → hyperopt):

=========================  ===================================================
``uniform(a, b)``          ``hp.uniform(label, a, b)``
``loguniform(a, b)``       ``hp.loguniform(label, log(a), log(b))``
``quniform(a, b, q)``      ``hp.quniform(label, a, b, q)`` (int when a, b, q are)
``qloguniform(a, b, q)``   ``hp.qloguniform(label, log(a), log(b), q)`` (idem)
``randint(a, b)``          ``hp.quniform(label, a - 0.5, b - 0.5, 1)`` as int
``choice([...])``          ``hp.choice(label, [...])``, dict options recursively
dict                       dict of converted entries
constant                   the constant
``hp`` expression          itself
``grid([...])``            ConfigError: grid search is GridSearcher's job
=========================  ===================================================

``randint`` is not ``hp.randint``: hyperopt treats that as unordered categories, so TPE
could not learn that 64 units are close to 65. Rounding a uniform draw over
``[a - 0.5, b - 0.5)`` gives every int in ``[a, b)`` the same prior mass while TPE models it
as an ordered quantity.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from hyperopt import hp, pyll
from hyperopt.pyll import scope

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


class NoFit(Exception):
    """A config does not fit the space (missing key, value out of range, no such option)."""


def _child(label: str, key: str) -> str:
    return f"{label}.{key}" if label else key


def to_hyperopt(space: Mapping[str, Any]) -> Any:
    """Convert ``space`` to a hyperopt expression (a dict of ``hp`` nodes and constants)."""
    return _convert(space, "")


def _convert(value: Any, label: str) -> Any:
    if isinstance(value, Mapping):
        return {key: _convert(item, _child(label, key)) for key, item in value.items()}
    if isinstance(value, Range) and value.q is None and not value.log:
        return hp.uniform(label, value.low, value.high)
    if isinstance(value, Range) and value.q is None:
        return hp.loguniform(label, math.log(value.low), math.log(value.high))
    if isinstance(value, Range) and not value.log:
        node = hp.quniform(label, value.low, value.high, value.q)
        return scope.int(node) if value.is_int else node
    if isinstance(value, Range):
        node = hp.qloguniform(label, math.log(value.low), math.log(value.high), value.q)
        return scope.int(node) if value.is_int else node
    if isinstance(value, RandInt):
        return scope.int(hp.quniform(label, value.low - 0.5, value.high - 0.5, 1))
    if isinstance(value, Choice):
        options = [_convert(opt, f"{label}[{i}]") for i, opt in enumerate(value.options)]
        return hp.choice(label, options)
    if isinstance(value, Grid):
        msg = (
            f"HyperOptSearcher cannot search the grid axis {label!r} ({value!r}): TPE "
            "samples, it does not enumerate. Use GridSearcher, or replace grid([...]) by "
            "choice([...])."
        )
        raise ConfigError(msg)
    return value


def config_from_vals(space: Mapping[str, Any], vals: Mapping[str, Any]) -> dict[str, Any]:
    """Build the trial config from hyperopt label values (choice labels hold indices)."""
    return _build(space, "", vals)


def _build(value: Any, label: str, vals: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return {key: _build(item, _child(label, key), vals) for key, item in value.items()}
    if isinstance(value, Range) and value.q is None:
        return float(vals[label])
    if isinstance(value, Range):
        return int(round(vals[label])) if value.is_int else float(vals[label])
    if isinstance(value, RandInt):
        # Clipped because np.round(a - 0.5) may round half to even, below `a`; a draw of
        # exactly a - 0.5 has probability ~0 but must still give a valid int.
        return min(max(int(round(vals[label])), value.low), value.high - 1)
    if isinstance(value, Choice):
        index = int(vals[label])
        return _build(value.options[index], f"{label}[{index}]", vals)
    if _is_hyperopt_expr(value):
        from hyperopt import space_eval

        return plain(space_eval(value, dict(vals)))
    return plain(value)


def vals_from_config(space: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperopt label values that produce ``config``; the inverse of config_from_vals.

    Constants are not checked outside choices (a warm start may come from an experiment
    whose constants differed); inside a choice they decide which option matches.

    Raises:
        NoFit: If ``config`` lacks a parameter, holds a value outside its domain, or
            matches no option of a choice.
    """
    vals: dict[str, Any] = {}
    _match(space, config, "", vals, strict=False)
    return vals


def _where(label: str) -> str:
    return repr(label) if label else "the config"


def _number(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NoFit(f"{_where(label)} is {value!r}, not a number")
    return float(value)


def _within(value: float, low: float, high: float, label: str) -> float:
    if not low <= value <= high:
        raise NoFit(f"{_where(label)} is {value!r}, outside [{low}, {high}]")
    return value


def _match(space: Any, value: Any, label: str, vals: dict[str, Any], strict: bool) -> None:
    if isinstance(space, Mapping):
        if not isinstance(value, Mapping):
            raise NoFit(f"{_where(label)} is {value!r}, not a dict")
        for key, item in space.items():
            here = _child(label, key)
            if key in value:
                _match(item, value[key], here, vals, strict)
            elif _needs_value(item) or strict:
                raise NoFit(f"{here!r} is missing")
    elif isinstance(space, Range) and space.q is None:
        vals[label] = _within(_number(value, label), space.low, space.high, label)
    elif isinstance(space, Range):
        # A quantized value may lie up to q/2 beyond the bounds (see quniform's docstring).
        half = space.q / 2
        vals[label] = _within(_number(value, label), space.low - half, space.high + half, label)
    elif isinstance(space, RandInt):
        number = _number(value, label)
        if not number.is_integer():
            raise NoFit(f"{_where(label)} is {value!r}, not an int")
        vals[label] = _within(number, space.low, space.high - 1, label)
    elif isinstance(space, Choice):
        _match_choice(space.options, value, label, vals)
    elif _is_hyperopt_expr(space):
        _match_native(pyll.as_apply(space), value, label, vals, strict)
    elif strict and not same_value(plain(space), plain(value)):
        raise NoFit(f"{_where(label)} is {value!r}, not {space!r}")


def _match_choice(options: Any, value: Any, label: str, vals: dict[str, Any]) -> None:
    for index, option in enumerate(options):
        scratch: dict[str, Any] = {}
        try:
            _match(option, value, f"{label}[{index}]", scratch, strict=True)
        except NoFit:
            continue
        vals.update(scratch)
        vals[label] = index
        return
    raise NoFit(f"{_where(label)} is {value!r}, which matches none of its options")


def _needs_value(space: Any) -> bool:
    if isinstance(space, Mapping):
        return any(_needs_value(item) for item in space.values())
    return isinstance(space, (Range, RandInt, Choice)) or (
        _is_hyperopt_expr(space)
    )


def _literal_args(node: Any) -> list[Any]:
    return [pyll.rec_eval(arg) for arg in node.pos_args]


def _match_native(node: Any, value: Any, label: str, vals: dict[str, Any], strict: bool) -> None:
    """Inverse of hyperopt's evaluation for the nodes that ``hp`` builds."""
    name = node.name
    if name == "literal":
        if strict and not same_value(plain(node.obj), plain(value)):
            raise NoFit(f"{_where(label)} is {value!r}, not {node.obj!r}")
    elif name == "dict":
        _match({key: child for key, child in node.named_args}, value, label, vals, strict)
    elif name == "pos_args":
        if not isinstance(value, (list, tuple)) or len(value) != len(node.pos_args):
            raise NoFit(f"{_where(label)} is {value!r}, not a sequence of {len(node.pos_args)}")
        for index, (child, item) in enumerate(zip(node.pos_args, value)):
            _match_native(child, item, f"{label}[{index}]", vals, strict)
    elif name in ("float", "int"):
        _match_native(node.pos_args[0], value, label, vals, strict)
    elif name == "hyperopt_param":
        param = node.pos_args[0].obj
        dist = node.pos_args[1]
        number = _number(value, param)
        args = _literal_args(dist)
        if dist.name == "uniform":
            _within(number, args[0], args[1], param)
        elif dist.name == "loguniform":
            _within(number, math.exp(args[0]), math.exp(args[1]), param)
        elif dist.name == "randint":
            low, high = (0, args[0]) if len(args) == 1 else (args[0], args[1])
            _within(number, low, high - 1, param)
        vals[param] = number
    elif name == "switch":
        _match_choice(node.pos_args[1:], value, node.pos_args[0].pos_args[0].obj, vals)
    else:
        raise NoFit(f"{_where(label)}: cannot invert the hyperopt node {name!r}")
