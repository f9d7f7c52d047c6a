"""Translate raytuner search spaces to hyperopt and map values both ways.

hyperopt identifies each hyperparameter by a *label* and stores one value per label (a
``hp.choice`` stores the index of the option): the labels and points of ``_params``
(``"lr"``, ``"model.units"``, ``"opt[1].beta"``), so hyperopt's values are a point. Configs
are rebuilt from them by ``_params.config_from_params`` (not hyperopt's ``space_eval``,
which turns lists into tuples and sorts dict keys), so trials receive the space's own
structure with plain Python values; ``randint`` values are clamped into their range there
(see ``_params``).

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
from collections.abc import Mapping
from typing import Any

from hyperopt import hp, pyll, space_eval
from hyperopt.pyll import scope

from ._domains import Grid, RandInt, _is_hyperopt_expr, plain, same_value
from ._params import (
    Match,
    Param,
    config_from_params,
    match_config,
    match_into,
    number_in,
    option_label,
    rebuild,
    refuse,
    where,
)


class NoFit(Exception):
    """A config does not fit the space (missing key, value out of range, no such option)."""


def to_hyperopt(space: Mapping[str, Any]) -> Any:
    """Convert ``space`` to a hyperopt expression (a dict of ``hp`` nodes and constants)."""

    def expression(param: Param) -> Any:
        label, domain = param.label, param.domain
        if isinstance(domain, RandInt):
            return scope.int(hp.quniform(label, domain.low - 0.5, domain.high - 0.5, 1))
        low, high = (math.log(domain.low), math.log(domain.high)) if domain.log else (domain.low, domain.high)
        if domain.q is None:
            return (hp.loguniform if domain.log else hp.uniform)(label, low, high)
        node = (hp.qloguniform if domain.log else hp.quniform)(label, low, high, domain.q)
        return scope.int(node) if domain.is_int else node

    def choice(param: Param, option: Any) -> Any:
        return hp.choice(param.label, [option(i) for i in range(len(param.domain.options))])

    def leaf(label: str, value: Any) -> Any:
        if isinstance(value, Grid):
            refuse("HyperOptSearcher", label, value)
        return value  # constants and hp expressions as they are

    return rebuild(space, expression, choice, leaf)


def config_from_vals(space: Mapping[str, Any], vals: Mapping[str, Any]) -> dict[str, Any]:
    """Build the trial config from hyperopt label values (choice labels hold indices)."""

    def leaf(value: Any) -> Any:
        return plain(space_eval(value, dict(vals)) if _is_hyperopt_expr(value) else value)

    return config_from_params(space, vals, leaf)


def vals_from_config(space: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperopt label values that produce ``config``; the inverse of config_from_vals.

    The config is taken apart as every searcher takes one apart (``_params.match_config``),
    native expressions by inverting hyperopt's evaluation. Constants are not checked
    outside choices (a warm start may come from an experiment whose constants differed);
    inside a choice they decide which option matches.

    Raises:
        NoFit: If ``config`` lacks a parameter, holds a value outside its domain, or
            matches no option of a choice.
    """
    match = match_config(space, config, _match_native)
    problems = [*match.outside.values(), *match.missing.values()]
    if problems:
        raise NoFit(problems[0])
    return match.values


def unknown_keys(space: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The dotted keys of ``config`` that ``space`` lacks, those of a choice's dict option
    included (``"opt.m"`` for an ``m`` that the option the config took does not have)."""
    return match_config(space, config, _match_native).removed


def _match_native(node: Any, value: Any, label: str, match: Match) -> None:
    """Inverse of hyperopt's evaluation for the nodes that ``hp`` builds, into ``match``."""
    node = pyll.as_apply(node)
    name = node.name
    if name == "literal":
        if not same_value(plain(node.obj), plain(value)):
            match.outside[label] = f"{where(label)} is {value!r:.60}, not {node.obj!r}"
    elif name == "dict":
        match_into(dict(node.named_args), value, label, match, _match_native)
    elif name == "pos_args":
        if not isinstance(value, (list, tuple)) or len(value) != len(node.pos_args):
            match.outside[label] = f"{where(label)} is {value!r:.60}, not a sequence of {len(node.pos_args)}"
            return
        for index, (item_node, item) in enumerate(zip(node.pos_args, value)):
            _match_native(item_node, item, option_label(label, index), match)
    elif name in ("float", "int"):
        _match_native(node.pos_args[0], value, label, match)
    elif name == "hyperopt_param":
        param, dist = node.pos_args[0].obj, node.pos_args[1]
        args = [pyll.rec_eval(arg) for arg in dist.pos_args]
        low, high = -math.inf, math.inf
        if dist.name == "uniform":
            low, high = args[0], args[1]
        elif dist.name == "loguniform":
            low, high = math.exp(args[0]), math.exp(args[1])
        elif dist.name == "randint":
            low, high = (0, args[0] - 1) if len(args) == 1 else (args[0], args[1] - 1)
        number = number_in(value, low, high, param)
        if isinstance(number, str):
            match.outside[param] = number
        else:
            match.values[param] = number
    elif name == "switch":
        param = node.pos_args[0].pos_args[0].obj
        for index, option in enumerate(node.pos_args[1:]):
            trial = Match()
            _match_native(option, value, option_label(param, index), trial)
            if trial.fits:
                match.values[param] = index
                match.take(trial)
                return
        match.outside[param] = f"{where(param)} is {value!r:.60}, which matches none of its options"
    else:
        match.outside[label] = f"{where(label)}: cannot invert the hyperopt node {name!r}"
