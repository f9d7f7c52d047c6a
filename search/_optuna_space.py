"""Translate raytuner search spaces to Optuna distributions and map values both ways.

Each parameter of the space (``_params``: labels such as ``"lr"``, ``"model.units"``,
``"opt[1].beta"`` for the ``beta`` of the second option of the choice ``opt``) gets one
fixed Optuna distribution. A trial is asked for the labels that are active in its config,
as ``_params.config_from_params`` reaches them (define-by-run, in the space's key order),
so conditional sub-spaces reach Optuna as conditional parameters.

Conversion table (raytuner → Optuna):

=========================  ==============================================================
``uniform(a, b)``          ``FloatDistribution(a, b)``
``loguniform(a, b)``       ``FloatDistribution(a, b, log=True)``
``quniform(a, b, q)``      ``IntDistribution(A, B, step=q)`` when a, b, q are ints, else
                           ``FloatDistribution(A, B, step=q)``, with ``A = round(a/q) q``
                           and ``B = round(b/q) q``, the lowest and highest values the
                           domain samples, written with the decimals of ``q`` (below)
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

**The float bounds of ``quniform``.** In binary floating point ``round(b/q) q`` misses the
decimal it stands for: ``quniform(0, 0.9, 0.3)`` samples 0, 0.3, 0.6 and ``3 × 0.3 =
0.8999999999999999``. Optuna checks in decimal that ``q`` divides ``B - A`` (its
``_adjust_discrete_uniform_high``, on ``str`` of each number) and, where it does not,
warns and lowers ``B`` to the last step that fits, 0.6, so the top value could never be
suggested. ``A`` and ``B`` are therefore rounded to the d decimals of ``q`` (``q = m × 10^-d``
as ``repr(q)`` writes it): ``k q`` is then, to the nearest float, the decimal ``k m × 10^-d``,
which ``q`` divides. The values Optuna suggests, ``A + i q`` up to ``B``, are the domain's
own to within a unit of the last place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._domains import Choice, RandInt, Range, _quantize
from ._params import config_from_params, parameters

_PRIMITIVE = (type(None), bool, int, float, str)


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
    for label, param in parameters(space, owner).items():
        domain = param.domain
        if isinstance(domain, Choice):
            n = len(domain.options)
            table[label] = CategoricalDistribution(list(domain.options) if _by_value(domain) else list(range(n)))
        elif isinstance(domain, RandInt):
            table[label] = IntDistribution(domain.low, domain.high - 1)
        elif domain.q is None or domain.log:  # Optuna has no stepped log floats: rounded in ask()
            table[label] = FloatDistribution(domain.low, domain.high, log=domain.log)
        else:
            if domain.is_int:
                low, high = _quantize(domain.low, domain.q, True), _quantize(domain.high, domain.q, True)
                table[label] = IntDistribution(low, high, step=domain.q)
            else:
                low, high = _on_steps(domain.low, domain.q), _on_steps(domain.high, domain.q)
                table[label] = FloatDistribution(low, high, step=domain.q)
    return table


def _on_steps(bound: float, q: float) -> float:
    """``round(bound / q) q`` rounded to the decimals of ``q`` (as :func:`._domains._quantize`
    writes every value), so that Optuna's decimal check finds it on the steps (the module
    docstring)."""
    return float(_quantize(bound, q, False))


def ask(space: Mapping[str, Any], table: Mapping[str, Any], trial: Any) -> dict[str, Any]:
    """The config of an Optuna ``trial``, asking it for each active label in key order."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    domains = {label: param.domain for label, param in parameters(space).items()}

    def value(label: str) -> Any:
        dist, domain = table[label], domains[label]
        if isinstance(dist, CategoricalDistribution):
            return _position(dist.choices, trial.suggest_categorical(label, dist.choices))
        if isinstance(dist, FloatDistribution):
            number = trial.suggest_float(label, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            number = trial.suggest_int(label, dist.low, dist.high, step=dist.step, log=dist.log)
        if isinstance(domain, Range) and domain.log and domain.q is not None:
            return _quantize(number, domain.q, False)
        return number

    return config_from_params(space, value)


def optuna_value(domain: Any, distribution: Any, value: float) -> Any:
    """The Optuna parameter value for a domain's value in a point (a number; a choice's
    option index), inside ``distribution``.

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
