"""PBT's explore step: what a mutation is, and how it moves one hyperparameter's value.

A mutation is a raytuner domain (``uniform``, ``loguniform``, ``quniform``, ``randint``,
``choice`` of constants) or an explicit list of values. Its keys name config entries: a
top-level key, or a dotted path into nested dicts (``"optimizer.lr"``).

Explore rules (Jaderberg et al., "Population Based Training of Neural Networks", 2017,
section 4.1 "perturb" and "resample"), with probability ``p`` = ``resample_probability``:

- a numeric value ``x`` (a range or ``randint``) is resampled from its domain with
  probability ``p``; otherwise multiplied by a factor ``f`` drawn from
  ``perturbation_factors``: ``x' = x f``, which shifts ``log x`` by ``log f``. On a log
  domain (``loguniform``) that is a step of constant size in the domain's own scale, the
  scale it is sampled in; on a linear one the step is relative to the value, as in Ray Tune
  (so a linear value of exactly 0 moves only by resampling). ``x'`` is then clipped to the
  domain's bounds (``[low, high]``; ``[low, high - 1]`` for ``randint``) and rounded to its
  step ``q`` where it has one: the nearest multiple of ``q`` in the bounds, as the domain
  itself computes it (:func:`on_grid`). An int value that the rounding would leave
  unchanged moves one step in the factor's direction instead, so small ints (a batch of 2)
  still move;
- a categorical value (a ``choice`` or a value list) is resampled with probability ``p``
  (or when the current value is not among the options); otherwise it moves to a neighbour
  in the options' order, one step up or down at random, staying put at an end (Ray Tune's
  rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from raytuner.errors import ConfigError, invalid

from ._validation import is_number

def _domains() -> Any:
    from raytuner.search import _domains  # pure numpy; imported here to keep this module's import cheap

    return _domains


def parse_mutations(owner: str, mutations: Any) -> dict[str, Any]:
    """``mutations`` checked: a non-empty mapping of config keys to domains or value lists.

    Raises:
        ConfigError: Naming the key and what is wrong with it.
    """
    d = _domains()
    fix = ("Pass e.g. mutations={'lr': rt.loguniform(1e-4, 1e-1), 'batch_size': [32, 64, 128]}: "
           "a domain or a list of values per config key.")
    if not isinstance(mutations, Mapping) or not mutations:
        raise invalid(owner, "mutations", mutations, "a non-empty dict of config keys to domains or value lists", fix)
    parsed: dict[str, Any] = {}
    for key, mutation in mutations.items():
        if not isinstance(key, str) or not key:
            raise invalid(owner, "mutations", mutations, f"str keys; {key!r} is not one", fix)
        if isinstance(mutation, (d.Range, d.RandInt)):
            parsed[key] = mutation
        elif isinstance(mutation, d.Choice):
            if any(isinstance(option, (Mapping, d.Domain)) for option in mutation.options):
                raise invalid(owner, f"mutations[{key!r}]", mutation, "a choice of constants",
                              "A choice of sub-spaces cannot be explored step by step: list constant values.")
            parsed[key] = mutation
        elif isinstance(mutation, (list, tuple)) and mutation:
            if any(isinstance(value, (Mapping, d.Domain)) for value in mutation):
                raise invalid(owner, f"mutations[{key!r}]", mutation, "a list of constant values", fix)
            parsed[key] = tuple(d.plain(list(mutation)))
        else:
            raise invalid(owner, f"mutations[{key!r}]", mutation,
                          "a domain (uniform, loguniform, quniform, randint, choice) or a non-empty list of values", fix)
    return parsed


def mutations_to_json(mutations: Mapping[str, Any]) -> dict[str, Any]:
    """As stored in experiment.json: a domain by its description, a value list as a list."""
    d = _domains()
    return {key: list(m) if isinstance(m, tuple) else d.to_json(m) for key, m in mutations.items()}


def mutations_from_json(stored: Mapping[str, Any]) -> dict[str, Any]:
    d = _domains()
    return {key: list(m) if isinstance(m, list) else d.from_json(m) for key, m in stored.items()}


def get_path(config: Mapping[str, Any], key: str) -> Any:
    """The value at ``key`` (a dotted path into nested dicts); KeyError if absent."""
    value: Any = config
    for part in key.split(".") if key not in config else [key]:
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


def set_path(config: dict[str, Any], key: str, value: Any) -> None:
    """``config`` with the value at ``key`` replaced (nested dicts are copied, not shared)."""
    if key in config or "." not in key:
        config[key] = value
        return
    head, _, rest = key.partition(".")
    inner = dict(config[head])
    set_path(inner, rest, value)
    config[head] = inner


def check_space(owner: str, mutations: Mapping[str, Any], space: Mapping[str, Any]) -> None:
    """Every mutation names an entry of ``space`` (a constant or a domain there).

    Raises:
        ConfigError: For the first key the space lacks, naming the space's keys.
    """
    d = _domains()
    for key, mutation in mutations.items():
        try:
            entry = get_path(space, key)
        except KeyError:
            names = sorted(_flat_keys(space))
            msg = (f"{owner}: `mutations` has {key!r}, which is not in the search space (its keys: "
                   f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}). PBT explores values the "
                   "trials start with: add the key to `space=` (a constant or a domain for the first values), "
                   "or fix its name (nested keys are dotted: 'optimizer.lr').")
            raise ConfigError(msg) from None
        if not isinstance(mutation, (d.Range, d.RandInt)):
            continue  # a list of values: explore moves between them, whatever the trial started with
        low, high = mutation.low, mutation.high - 1 if isinstance(mutation, d.RandInt) else mutation.high
        span = _numeric_span(entry)
        if span is None:
            raise ConfigError(
                f"{owner}: `mutations[{key!r}]` is {mutation!r}, which perturbs a number by a factor, but the space's "
                f"{key!r} is {entry!r}, whose values are not all numbers: PBT would fail at its first exploit. List "
                f"the values to move between instead, e.g. mutations={{{key!r}: [...]}}.")
        if span[1] < low or span[0] > high:
            raise ConfigError(
                f"{owner}: `mutations[{key!r}]` is {mutation!r}, but the space's {key!r} is {entry!r}, whose values "
                f"({span[0]:g} to {span[1]:g}) are all outside it: each perturbation would be clipped into the "
                "mutation's range, which the space never takes. Give the mutation the range of the space's values.")


def _numeric_span(entry: Any) -> tuple[float, float] | None:
    """The least and greatest value a space entry takes, or None if it may take a non-number."""
    d = _domains()
    if isinstance(entry, d.Range):
        return float(entry.low), float(entry.high)
    if isinstance(entry, d.RandInt):
        return float(entry.low), float(entry.high - 1)
    values = entry.options if isinstance(entry, d.Choice) else entry.values if isinstance(entry, d.Grid) else (entry,)
    if not values or not all(is_number(value) for value in values):
        return None
    return float(min(values)), float(max(values))


def _flat_keys(space: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in space.items():
        if isinstance(value, Mapping) and value:
            keys.extend(_flat_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def explore(config: Mapping[str, Any], mutations: Mapping[str, Any], rng: np.random.Generator,
            resample_probability: float, factors: Sequence[float]) -> dict[str, Any]:
    """A copy of ``config`` with every mutated value explored (see the module docstring).

    Draws from ``rng`` in a fixed order (per key, in the order of ``mutations``), so a seed
    fixes every explore of a run.
    """
    new = dict(config)
    for key, mutation in mutations.items():
        set_path(new, key, explore_value(get_path(config, key), mutation, rng, resample_probability, factors))
    return new


def explore_value(value: Any, mutation: Any, rng: np.random.Generator, resample_probability: float,
                  factors: Sequence[float]) -> Any:
    d = _domains()
    resample = rng.random() < resample_probability
    if isinstance(mutation, (tuple, list, d.Choice)):
        options = mutation.options if isinstance(mutation, d.Choice) else mutation
        index = _index(options, value)
        if resample or index is None:
            return d.plain(options[int(rng.integers(len(options)))])
        step = -1 if rng.random() < 0.5 else 1
        return d.plain(options[min(max(index + step, 0), len(options) - 1)])
    if resample:
        return mutation.sample(rng)
    factor = float(factors[int(rng.integers(len(factors)))])
    return perturb(value, mutation, factor)


def perturb(value: Any, domain: Any, factor: float) -> int | float:
    """``value * factor`` clipped to ``domain`` and rounded to its step (module docstring)."""
    d = _domains()
    if not is_number(value):
        raise ConfigError(f"PBT cannot perturb {value!r}: the mutation is numeric, but the trial's value is not a number.")
    if isinstance(domain, d.RandInt):
        low, high, step, is_int = domain.low, domain.high - 1, 1, True
    else:
        low, high, step, is_int = domain.low, domain.high, domain.q, domain.is_int or isinstance(value, int) and domain.q is not None
    moved = min(max(value * factor, low), high)
    if step is None:  # a continuous range: floats
        return float(moved)
    moved = on_grid(moved, low, high, step, is_int)
    if moved == value and factor != 1 and is_int:
        # A small int times 1.2 rounds back to itself: move one step the factor's way.
        moved = on_grid(value + (step if factor > 1 else -step), low, high, step, is_int)
    return moved


#: How far (relative to k) a quotient x / q may miss the integer k and still count as k:
#: float division leaves 0.3 / 0.1 = 2.9999999999999996, and 0.3 is a multiple of 0.1.
_GRID_TOLERANCE = 1e-9


def on_grid(x: float, low: float, high: float, step: float, is_int: bool) -> int | float:
    """The multiple ``k q`` of ``q`` = ``step`` nearest to ``x``, among those in ``[low, high]``.

    ``k`` is ``round(x / q)`` (half to even, as numpy's) clipped to
    ``[ceil(low / q), floor(high / q)]``, where a quotient within a relative ``1e-9`` of an
    integer counts as that integer: float division makes ``0.3 / 0.1`` a hair below 3, and
    a plain floor would lose the top value 0.3 of ``quniform(0, 0.3, 0.1)``. The value is
    ``k * q`` written with ``q``'s decimals, as the domain writes its samples
    (``search._domains``), so that it equals the domain's own value (``3 * 0.1`` is 0.3, not
    ``0.30000000000000004``); an int when ``is_int``. Bounds with no multiple of ``q`` between them (a range ``(0.12, 0.18)``,
    ``q=0.1``, stored before quniform refused it) leave the two multiples around them, the
    values the domain itself rounds to.
    """
    def near(quotient: float) -> float:
        k = round(quotient)
        return k if abs(quotient - k) <= _GRID_TOLERANCE * max(1.0, abs(k)) else quotient

    lowest, highest = math.ceil(near(low / step)), math.floor(near(high / step))
    if lowest > highest:
        lowest, highest = highest, lowest
    k = min(max(round(x / step), lowest), highest)
    value = float(k * step)
    return round(value) if is_int else round(value, _domains().q_decimals(step))


def _index(options: Sequence[Any], value: Any) -> int | None:
    same = _domains().same_value
    for index, option in enumerate(options):
        if same(option, value):
            return index
    return None
