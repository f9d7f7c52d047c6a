"""Old observations fitted to a changed search space: forks and continued searches.

A searcher that learns can start from an earlier experiment's trials
(``warm_start=rt.load(path).observations()``). The space may have changed since: a
parameter added or removed, a range narrowed, a choice option dropped. This module maps
each old config onto the *new* space, parameter by parameter, so that an old trial still
informs every parameter it has a sound value for, instead of being thrown away whole.

**Parameters and labels.** A space is flattened into parameters, each named by a *label*,
the dotted path of its domain (the same labels hyperopt sees, see ``_hyperopt_space``):
``"lr"``, ``"model.units"``, and ``"opt[1].beta"`` for the ``beta`` of the second option of
the choice ``opt``. A choice's own label holds the *index* of the chosen option. A fitted
observation is a dict ``{label: value}`` that may be partial.

**Rules** (old config against the new space):

- *Removed parameter* (a key of the old config that the space no longer has): ignored,
  counted in :attr:`ForkReport.removed`.
- *Added parameter* (a domain of the space that the old config lacks): left absent, so
  the observation is partial; counted in :attr:`ForkReport.added`. Searchers that model
  parameters jointly must marginalise absent ones (TPE drops them from its kernel
  product), not impute them.
- *Value outside the new domain* (a narrowed range, a non-int for ``randint``, an option
  no longer in a ``choice``): with ``outside="drop_value"`` (default) that parameter, and
  the parameters conditional on a dropped choice, are left absent and the rest of the
  observation is kept; with ``outside="skip"`` the whole observation is skipped. Either
  way it is counted in :attr:`ForkReport.outside`. Dropping a value rather than clipping
  it to the new bound is what keeps this sound: a loss measured at ``lr=0.5`` says nothing
  about ``lr=0.01``, the new upper bound, but it still says how the other parameters did.
- An observation with no parameter left is skipped (:attr:`ForkReport.skipped`).
- Constants outside choices are not compared (a fork may change a fixed setting); inside a
  choice, constants decide which option an old config took.

Example:
    >>> from raytuner.search import uniform, choice
    >>> space = {"x": uniform(0, 1), "y": uniform(0, 1)}
    >>> fit = fit_observations("MySearcher", space, [({"x": 0.5, "z": 3}, 1.0)])
    >>> fit.observations[0][0], fit.report.added, fit.report.removed
    ({'x': 0.5}, {'y': 1}, {'z': 1})
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from raytuner.errors import ConfigError

from ._base import Outcome, TrialEnd
from ._domains import (
    Choice,
    Domain,
    Grid,
    RandInt,
    Range,
    _contains_domain,
    plain,
    same_value,
)

Params = dict[str, Any]
"""A (possibly partial) point: parameter label to value (a choice label to its index)."""


@dataclass(frozen=True)
class Param:
    """One parameter of a flattened space.

    Attributes:
        label: Its label (``"opt[1].beta"``).
        domain: Its domain.
        conditions: The ``(choice label, option index)`` pairs that must all hold for it to
            be active, outermost first; empty for a parameter that is always active.
    """

    label: str
    domain: Domain
    conditions: tuple[tuple[str, int], ...] = ()


def _child(label: str, key: str) -> str:
    return f"{label}.{key}" if label else key


def parameters(space: Mapping[str, Any]) -> dict[str, Param]:
    """Flatten ``space`` into its parameters, by label, in the space's key order.

    Raises:
        ConfigError: If the space holds a :func:`search.grid` (it is enumerated, not
            modelled) or something that is not a raytuner domain, dict or constant.
    """
    out: dict[str, Param] = {}
    _flatten(space, "", (), out)
    return out


def _flatten(value: Any, label: str, conditions: tuple[tuple[str, int], ...],
             out: dict[str, Param]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, _child(label, key), conditions, out)
    elif isinstance(value, Grid):
        msg = (
            f"space[{label!r}] is {value!r}, a grid axis, which is enumerated rather than "
            "modelled. Use GridSearcher, or replace grid([...]) by choice([...])."
        )
        raise ConfigError(msg)
    elif isinstance(value, Choice):
        out[label] = Param(label, value, conditions)
        for index, option in enumerate(value.options):
            _flatten(option, f"{label}[{index}]", conditions + ((label, index),), out)
    elif isinstance(value, Domain):
        out[label] = Param(label, value, conditions)
    elif type(value).__module__.startswith("hyperopt."):
        msg = (
            f"space[{label!r}] is a native hyperopt expression, which only HyperOptSearcher "
            "reads. Replace it by a raytuner domain (uniform, loguniform, choice, ...)."
        )
        raise ConfigError(msg)


def config_from_params(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Build a trial config of plain Python values from a *complete* point.

    Every active parameter must be in ``params``: a choice's label holds the option
    index. The inverse of :func:`fit_observations` on a config that fits.
    """
    return _build(space, "", params)


def _build(value: Any, label: str, params: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return {key: _build(item, _child(label, key), params) for key, item in value.items()}
    if isinstance(value, Range) and value.q is None:
        return float(params[label])
    if isinstance(value, Range):
        number = params[label]
        return int(round(number)) if value.is_int else float(number)
    if isinstance(value, RandInt):
        return int(round(params[label]))
    if isinstance(value, Choice):
        index = int(params[label])
        return _build(value.options[index], f"{label}[{index}]", params)
    return plain(value)


@dataclass
class ForkReport:
    """What fitting old observations to a space kept and dropped, and why.

    Attributes:
        given: Observations handed in.
        used: Observations kept (possibly partial).
        skipped: Observations left out entirely, by reason.
        added: Per label of the space, how many kept observations lack it (the parameter
            is new, or its key was missing from the old config).
        removed: Per dotted key of old configs that the space no longer has, how often.
        outside: Per label, how many old values lay outside the new domain (a narrowed
            range, a removed choice option, a non-int for ``randint``).
    """

    given: int = 0
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    outside: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether any observation was not used exactly as given."""
        return bool(self.skipped or self.added or self.removed or self.outside)

    def message(self, owner: str) -> str:
        """One readable sentence for a warning: counts and reasons."""
        parts = [f"{owner} fitted {self.used} of {self.given} warm-start observations to the space"]

        def listing(counts: dict[str, int]) -> str:
            return ", ".join(f"{key!r} ({n})" for key, n in sorted(counts.items()))

        if self.skipped:
            parts.append("skipped: " + ", ".join(f"{n} {why}" for why, n in self.skipped.items()))
        if self.added:
            parts.append("parameters absent from old configs, left out of those observations "
                         "only: " + listing(self.added))
        if self.removed:
            parts.append("keys no longer in the space, ignored: " + listing(self.removed))
        if self.outside:
            parts.append("values outside their new domain, dropped: " + listing(self.outside))
        return "; ".join(parts) + "."


@dataclass(frozen=True)
class Fit:
    """The result of :func:`fit_observations`.

    Attributes:
        observations: ``(params, outcome)`` per kept observation, in the given order.
        report: Counts of what was kept and dropped.
    """

    observations: list[tuple[Params, Outcome]]
    report: ForkReport


def check_warm_start(owner: str, warm_start: Any) -> list[tuple[Mapping[str, Any], Outcome]]:
    """Validate a ``warm_start`` argument and normalise its results to :class:`Outcome`.

    Each item must be a ``(config dict, result)`` pair, the result a number signed to
    minimize (a COMPLETED trial), None (a FAILED trial), or an :class:`Outcome`, as
    ``rt.load(path).observations()`` returns them.

    Raises:
        ConfigError: Naming ``owner``, the index and the bad item, and the fix.
    """
    if warm_start is None:
        return []
    if isinstance(warm_start, (str, bytes, Mapping)) or not isinstance(warm_start, Iterable):
        msg = (
            f"{owner}: `warm_start` is {warm_start!r:.100}, but must be a list of (config, "
            "value) pairs. Pass e.g. warm_start=rt.load(path).observations()."
        )
        raise ConfigError(msg)
    pairs: list[tuple[Mapping[str, Any], Outcome]] = []
    for index, pair in enumerate(warm_start):
        outcome = None
        if isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], Mapping):
            outcome = _outcome(pair[1])
        if outcome is None:
            msg = (
                f"{owner}: `warm_start[{index}]` is {pair!r:.100}, but must be a (config "
                "dict, value) pair, the value signed to minimize, None for a failed trial, "
                "or an Outcome. Pass e.g. warm_start=rt.load(path).observations()."
            )
            raise ConfigError(msg)
        pairs.append((pair[0], outcome))
    return pairs


def _outcome(result: Any) -> Outcome | None:
    if isinstance(result, Outcome):
        return result
    if result is None:
        return Outcome(TrialEnd.FAILED)
    if isinstance(result, numbers.Real) and not isinstance(result, bool):
        value = float(result)
        end = TrialEnd.COMPLETED if math.isfinite(value) else TrialEnd.FAILED
        return Outcome(end, value if math.isfinite(value) else None)
    return None


def fit_observations(
    owner: str,
    space: Mapping[str, Any],
    warm_start: Any,
    *,
    outside: Literal["drop_value", "skip"] = "drop_value",
) -> Fit:
    """Fit old ``(config, result)`` pairs to ``space`` by the rules in the module docstring.

    Args:
        owner: The searcher's name, for error messages.
        space: The new search space (raytuner domains, dicts and constants).
        warm_start: The pairs, checked by :func:`check_warm_start`.
        outside: ``"drop_value"`` or ``"skip"``: what a value outside its new domain costs.

    Returns:
        The partial points with their outcomes, and a :class:`ForkReport`.

    Raises:
        ConfigError: If ``warm_start`` is malformed or ``outside`` unknown.
    """
    if outside not in ("drop_value", "skip"):
        msg = f"{owner}: `outside` is {outside!r}, but must be 'drop_value' or 'skip'."
        raise ConfigError(msg)
    pairs = check_warm_start(owner, warm_start)
    params = parameters(space)
    report = ForkReport(given=len(pairs))
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    out_of: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    observations: list[tuple[Params, Outcome]] = []
    for config, outcome in pairs:
        match = _Match()
        _match_mapping(space, config, "", "", match)
        out_of.update(match.outside)
        removed.update(match.removed)
        if match.outside and outside == "skip":
            skipped["with a value outside its new domain"] += 1
            continue
        if not match.values:
            skipped["that fit no parameter of the space"] += 1
            continue
        added.update(_absent(params, match.values, match.outside))
        observations.append((match.values, outcome))
    report.used = len(observations)
    report.skipped, report.added = dict(skipped), dict(added)
    report.removed, report.outside = dict(removed), dict(out_of)
    return Fit(observations, report)


def _absent(params: Mapping[str, Param], values: Params, dropped: list[str]) -> list[str]:
    """Active parameters with no value that were not dropped for being outside."""
    absent = []
    for label, param in params.items():
        if label in values or label in dropped:
            continue
        if all(values.get(choice) == index for choice, index in param.conditions):
            absent.append(label)
    return absent


@dataclass
class _Match:
    values: Params = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    @property
    def score(self) -> tuple[int, int, int]:
        return (len(self.values), -len(self.outside), -len(self.removed))


def _match_mapping(space: Mapping[str, Any], config: Any, label: str, path: str,
                   match: _Match) -> None:
    if not isinstance(config, Mapping):
        if _contains_domain(space):
            match.outside.append(label or "<config>")
        return
    for key in config:
        if key not in space:
            match.removed.append(_child(path, str(key)))
    for key, item in space.items():
        if key in config:
            _match_value(item, config[key], _child(label, key), _child(path, key), match)


def _match_value(space: Any, value: Any, label: str, path: str, match: _Match) -> None:
    if isinstance(space, Mapping):
        _match_mapping(space, value, label, path, match)
    elif isinstance(space, Choice):
        best: tuple[int, _Match] | None = None
        for index, option in enumerate(space.options):
            trial = _Match()
            if _match_option(option, value, f"{label}[{index}]", path, trial) and (
                best is None or trial.score > best[1].score
            ):
                best = (index, trial)
        if best is None:
            match.outside.append(label)
            return
        match.values[label] = best[0]
        match.values.update(best[1].values)
        match.removed.extend(best[1].removed)
        match.outside.extend(best[1].outside)
    elif isinstance(space, Domain):
        number = _fits(space, value)
        if number is None:
            match.outside.append(label)
        else:
            match.values[label] = number


def _match_option(option: Any, value: Any, label: str, path: str, match: _Match) -> bool:
    """Whether ``value`` took this option: constants must agree, domains may be partial."""
    if isinstance(option, Mapping):
        if not isinstance(value, Mapping):
            return False
        for key, item in option.items():
            if not _contains_domain(item):
                if key not in value or not same_value(plain(item), plain(value[key])):
                    return False
        _match_mapping(option, value, label, path, match)
        return True
    if isinstance(option, Choice):
        _match_value(option, value, label, path, match)
        return label in match.values
    if isinstance(option, Domain):
        number = _fits(option, value)
        if number is None:
            return False
        match.values[label] = number
        return True
    return same_value(plain(option), plain(value))


def _fits(domain: Domain, value: Any) -> float | None:
    """``value`` as a number if it lies in ``domain``, else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    if isinstance(domain, Range) and domain.q is None:
        low, high = domain.low, domain.high
    elif isinstance(domain, Range):
        # Rounding to a multiple of q may land up to q/2 beyond the bounds (see quniform).
        low, high = domain.low - domain.q / 2, domain.high + domain.q / 2
    elif isinstance(domain, RandInt):
        if not number.is_integer():
            return None
        low, high = domain.low, domain.high - 1
    else:
        return None
    return number if low <= number <= high else None

