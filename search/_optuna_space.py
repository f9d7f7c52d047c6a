"""Translate raytuner search spaces to Optuna distributions and map values both ways.

Each parameter gets a label, its dotted path as in the HyperOpt searcher (``"lr"``,
``"model.units"``, ``"opt[1].beta"`` for the ``beta`` of the second option of the choice
``opt``), and one fixed Optuna distribution. A trial asks for the labels that are active in
its config, walking the space define-by-run, so conditional sub-spaces reach Optuna as
conditional parameters.

Conversion table (raytuner → Optuna):

=========================  ==============================================================
``uniform(a, b)``          ``FloatDistribution(a, b)``
``loguniform(a, b)``       ``FloatDistribution(a, b, log=True)``
``quniform(a, b, q)``      ``IntDistribution(A, B, step=q)`` when a, b, q are ints, else
                           ``FloatDistribution(A, B, step=q)``, with ``A = round(a/q) q``
                           and ``B = round(b/q) q``: the same values the domain samples
``qloguniform(a, b, q)``   ``FloatDistribution(a, b, log=True)``, rounded to ``q`` (an int
                           when a, b, q are) in the config: Optuna has no stepped log
                           floats
``randint(a, b)``          ``IntDistribution(a, b - 1)`` (Optuna's ``high`` is inclusive)
``choice([...])``          ``CategoricalDistribution(options)`` when every option is None,
                           a bool, int, float or str; else ``CategoricalDistribution`` of
                           the option indices, dict options recursively
dict, constant             recurse; passed through
``grid``, hyperopt ``hp``  ConfigError
=========================  ==============================================================

The priors differ from raytuner's sampling only at the edges of ``quniform`` (hyperopt-style
rounding gives the end values half the mass; Optuna gives every step the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raytuner.errors import ConfigError

from ._domains import (
    Choice,
    Grid,
    RandInt,
    Range,
    _is_hyperopt_expr,
    _quantize,
    plain,
)

_PRIMITIVE = (type(None), bool, int, float, str)


def _child(label: str, key: str) -> str:
    return f"{label}.{key}" if label else key


def _by_value(choice: Choice) -> bool:
    """Whether Optuna can hold the choice's options themselves (else their indices)."""
    return all(type(option) in _PRIMITIVE for option in choice.options)


def _position(options: tuple[Any, ...], picked: Any) -> int:
    # By type and value: list.index would take True for 1, and 1.0 for 1.
    return next(i for i, o in enumerate(options) if type(o) is type(picked) and o == picked)


def distributions(space: Mapping[str, Any], owner: str = "OptunaSearcher") -> dict[str, Any]:
    """The Optuna distribution of every label of ``space``, conditional ones included.

    Raises:
        ConfigError: If the space holds a ``grid()`` or a native hyperopt expression.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    table: dict[str, Any] = {}

    def walk(value: Any, label: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, _child(label, key))
        elif isinstance(value, Range) and value.q is None:
            table[label] = FloatDistribution(value.low, value.high, log=value.log)
        elif isinstance(value, Range) and not value.log:
            low = _quantize(value.low, value.q, value.is_int)
            high = _quantize(value.high, value.q, value.is_int)
            kind = IntDistribution if value.is_int else FloatDistribution
            table[label] = kind(low, high, step=value.q)
        elif isinstance(value, Range):
            table[label] = FloatDistribution(value.low, value.high, log=True)
        elif isinstance(value, RandInt):
            table[label] = IntDistribution(value.low, value.high - 1)
        elif isinstance(value, Choice):
            n = len(value.options)
            table[label] = CategoricalDistribution(
                list(value.options) if _by_value(value) else list(range(n))
            )
            for index, option in enumerate(value.options):
                walk(option, f"{label}[{index}]")
        elif isinstance(value, Grid) or _is_hyperopt_expr(value):
            kind = "a grid() axis" if isinstance(value, Grid) else "a native hyperopt expression"
            msg = (
                f"{owner} cannot convert {label!r}: it is {kind} ({value!r:.60}), which has no "
                f"Optuna distribution. Use "
                f"{'GridSearcher' if isinstance(value, Grid) else 'HyperOptSearcher'}, or "
                "replace it by a raytuner domain (uniform, loguniform, randint, choice, ...)."
            )
            raise ConfigError(msg)

    walk(space, "")
    return table


def ask(space: Mapping[str, Any], table: Mapping[str, Any], trial: Any) -> dict[str, Any]:
    """The config of an Optuna ``trial``, asking it for each active label in key order."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    def suggest(label: str) -> Any:
        dist = table[label]
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(label, dist.choices)
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(label, dist.low, dist.high, step=dist.step, log=dist.log)
        return trial.suggest_int(label, dist.low, dist.high, step=dist.step, log=dist.log)

    def build(value: Any, label: str) -> Any:
        if isinstance(value, Mapping):
            return {key: build(item, _child(label, key)) for key, item in value.items()}
        if isinstance(value, Range) and value.q is None:
            return float(suggest(label))
        if isinstance(value, Range) and not value.log:
            return int(suggest(label)) if value.is_int else float(suggest(label))
        if isinstance(value, Range):
            return _quantize(suggest(label), value.q, value.is_int)
        if isinstance(value, RandInt):
            return int(suggest(label))
        if isinstance(value, Choice):
            picked = suggest(label)
            index = _position(value.options, picked) if _by_value(value) else int(picked)
            return build(value.options[index], f"{label}[{index}]")
        return plain(value)

    return build(space, "")


def optuna_value(domain: Any, distribution: Any, value: float) -> Any:
    """The Optuna parameter value for a domain's value as :mod:`._fork` gives it (a number;
    a choice's option index), inside ``distribution``.

    A q-domain's value may lie up to q/2 beyond the bounds, or off the steps in an old
    config: it moves to the nearest step inside the distribution.
    """
    if isinstance(domain, Choice):
        index = int(value)
        return domain.options[index] if _by_value(domain) else index
    if isinstance(domain, RandInt):
        return int(value)
    quantized = isinstance(domain, Range) and domain.q is not None and not domain.log
    if quantized:
        value = _quantize(value, domain.q, domain.is_int)
    low, high = distribution.low, distribution.high
    value = min(max(value, low), high)
    return int(value) if quantized and domain.is_int else float(value)
