"""The search space as parameters: one model of the space tree for every searcher.

A space is a tree of dicts, constants and domains, in which a ``choice``'s options may be
sub-spaces of their own. Every searcher that models a space (TPE, GP, HyperOpt, Optuna, a
fork's warm start) sees it the same way, as a list of parameters, the way Syne Tune builds
its searchers on one hyperparameter-ranges object:

- **A parameter** (:class:`Param`) is one domain of the tree (a range, ``randint`` or
  ``choice``) with a *label*, the dotted path of its domain: ``"lr"``, ``"model.units"``,
  and ``"opt[1].beta"`` for the ``beta`` of the second option of the choice ``opt``
  (hyperopt and Optuna see the same labels). Its *conditions* are the ``(choice label,
  option index)`` pairs that must all hold for it to be active, outermost first.
- **A point** is a dict ``{label: value}``: a number for a range or ``randint``, the
  option's index for a ``choice``. It may be partial (a fork's old trial lacks the
  parameters added since).

Three operations connect the tree and its points, each written once here:
:func:`parameters` lists the parameters, :func:`config_from_params` builds the trial
config of a point, and :func:`match_config` takes a config apart into a point. The first
two rest on one walk, :func:`rebuild`; a searcher that translates the space into another
library's (``_hyperopt_space``) uses it too.

``randint`` values are clamped to ``[low, high - 1]`` when a config is built: hyperopt
models ``randint(a, b)`` as a rounded uniform on ``[a - 1/2, b - 1/2]``, whose rounding
can reach ``b`` (or ``a - 1``, rounding half to even) on the edges. Every other searcher's
points already lie inside, so the clamp changes nothing for them, and a config never holds
a value its domain excludes. A ``q`` range's float values are written with ``q``'s decimals,
as its draws are: ``round(x / q) * q`` can pass a bound by a rounding error (``3 * 0.1`` is
``0.30000000000000004``), whichever library computed it; written so, it is the bound 0.3.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raytuner.errors import ConfigError

from ._domains import Choice, Domain, Grid, RandInt, Range, _is_hyperopt_expr, _quantize, plain, same_value

Point = dict[str, Any]
"""A (possibly partial) point: parameter label to value (a choice's label to its index)."""

Conditions = tuple[tuple[str, int], ...]


def child(label: str, key: str) -> str:
    """The label of ``key`` in the dict at ``label``."""
    return f"{label}.{key}" if label else key


def option_label(label: str, index: int) -> str:
    """The label of the ``index``-th option of the choice at ``label``."""
    return f"{label}[{index}]"


@dataclass(frozen=True)
class Param:
    """One parameter of a space.

    Attributes:
        label: Its label (``"opt[1].beta"``).
        domain: Its domain: a :class:`~._domains.Range`, ``RandInt`` or ``Choice``.
        conditions: The ``(choice label, option index)`` pairs that must all hold for it to
            be active, outermost first; empty for a parameter that is always active.
    """

    label: str
    domain: Any
    conditions: Conditions = ()

    def is_active(self, point: Mapping[str, Any]) -> bool:
        """Whether every choice above this parameter took its option in ``point``."""
        return all(point.get(choice) == index for choice, index in self.conditions)


def rebuild(
    space: Any,
    on_param: Callable[[Param], Any],
    on_choice: Callable[[Param, Callable[[int], Any]], Any],
    on_leaf: Callable[[str, Any], Any],
) -> Any:
    """The one walk over a space tree: ``space`` with its dicts kept and every entry
    replaced by what a callback returns for it.

    Args:
        space: The space (or a part of it).
        on_param: For a range or ``randint``, its :class:`Param`.
        on_choice: For a ``choice``, its :class:`Param` and ``option``: ``option(i)``
            rebuilds the i-th option (the same way, under the condition ``(label, i)``).
            A caller takes the options it needs: all of them to list or translate the
            space, the one a point chose to build a config.
        on_leaf: For anything else (a constant, a ``grid``, a hyperopt expression), its
            label and itself.
    """

    def walk(value: Any, label: str, conditions: Conditions) -> Any:
        if isinstance(value, Mapping):
            return {key: walk(item, child(label, key), conditions) for key, item in value.items()}
        if isinstance(value, (Range, RandInt)):
            return on_param(Param(label, value, conditions))
        if isinstance(value, Choice):
            def option(index: int) -> Any:
                inner = option_label(label, index)
                return walk(value.options[index], inner, conditions + ((label, index),))

            return on_choice(Param(label, value, conditions), option)
        return on_leaf(label, value)

    return walk(space, "", ())


def refuse(owner: str, label: str, value: Any) -> None:
    """Raise the error for an entry that ``owner`` cannot model; nothing for a constant."""
    domains = "a raytuner domain (uniform, loguniform, randint, choice, ...)"
    if isinstance(value, Grid):
        kind, fix = "a grid() axis", "Use GridSearcher, or replace grid([...]) by choice([...])."
    elif _is_hyperopt_expr(value):
        kind, fix = "a native hyperopt expression", f"Use HyperOptSearcher, or replace it by {domains}."
    elif isinstance(value, Domain):
        kind, fix = "a domain of your own", f"Use RandomSearcher, which samples it, or {domains}."
    else:
        return
    raise ConfigError(f"{owner} cannot model {label!r}: it is {kind} ({value!r:.60}). {fix}")


def parameters(space: Mapping[str, Any], owner: str = "search") -> dict[str, Param]:
    """The parameters of ``space``, by label, in the space's key order (a choice before
    the parameters of its options).

    Raises:
        ConfigError: Naming ``owner``, if the space holds a :func:`search.grid` (it is
            enumerated, not modelled) or a native hyperopt expression.
    """
    out: dict[str, Param] = {}

    def add(param: Param) -> None:
        if param.label in out:
            msg = (
                f"{owner}: two entries of the space have the label {param.label!r}: a key with "
                "a dot and a nested dict name the same parameter. Rename one of them."
            )
            raise ConfigError(msg)
        out[param.label] = param

    def add_choice(param: Param, option: Callable[[int], Any]) -> None:
        add(param)
        for index in range(len(param.domain.options)):
            option(index)

    rebuild(space, add, add_choice, lambda label, value: refuse(owner, label, value))
    return out


def config_value(domain: Range | RandInt, number: Any) -> int | float:
    """The plain Python value a config holds for a point's number (see the module
    docstring for the clamp of ``randint``)."""
    if isinstance(domain, RandInt):
        return min(max(int(round(number)), domain.low), domain.high - 1)
    if domain.is_int:
        return int(round(number))
    if domain.q is not None:
        # Written as the domain writes its draws (0.3, not 0.30000000000000004 above the bound
        # 0.3), whichever library computed round(x / q) * q.
        return _quantize(float(number), domain.q, False)
    return float(number)


def config_from_params(
    space: Mapping[str, Any],
    params: Mapping[str, Any] | Callable[[str], Any],
    leaf: Callable[[Any], Any] = plain,
) -> dict[str, Any]:
    """The trial config of a *complete* point: every active parameter in ``params``.

    ``params`` is read at the active labels only, in the space's key order; it may be a
    function of the label, which then computes each value when asked (Optuna's
    define-by-run trial). ``leaf`` turns the other entries into config values (plain Python
    copies of constants). The inverse of :func:`match_config` on a config that fits.
    """
    get = params if callable(params) else params.__getitem__
    return rebuild(
        space,
        lambda param: config_value(param.domain, get(param.label)),
        lambda param, option: option(int(get(param.label))),
        lambda label, value: leaf(value),
    )


# -- a config taken apart ------------------------------------------------------------------


def where(label: str) -> str:
    """A label as an error message names it."""
    return repr(label) if label else "the config"


@dataclass
class Match:
    """A config taken apart by :func:`match_config`.

    Attributes:
        values: The point: each parameter the config has a sound value for.
        removed: The dotted keys of the config that the space does not have.
        outside: Per label whose value does not fit its domain (out of range, not a
            number, no option of a choice matches), why, as a sentence.
        missing: Per label of a domain whose key the config lacks, a sentence saying so.
    """

    values: Point = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    outside: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        """Whether every domain the config reaches has a sound value (none outside, none missing)."""
        return not self.outside and not self.missing

    @property
    def score(self) -> tuple[int, int, int]:
        """How well a choice's option explains a config: the more values the better."""
        return (len(self.values), -len(self.outside), -len(self.removed))

    def take(self, other: Match) -> None:
        """Add what ``other`` (a match of one part of the config) found."""
        self.values.update(other.values)
        self.removed.extend(other.removed)
        self.outside.update(other.outside)
        self.missing.update(other.missing)


Native = Callable[[Any, Any, str, Match], None]
"""Matches a hyperopt expression of the space against a config value, into a Match."""


def match_config(space: Mapping[str, Any], config: Any, native: Native | None = None) -> Match:
    """Take ``config`` apart into a point of ``space``.

    A value enters the point when it fits its domain; a choice's index when one of its
    options matches: constants inside an option must be equal (they tell the options
    apart), its domains may be absent; of several matching options, the one that
    explains most values wins. Constants outside choices are not compared, so a config
    from an experiment whose fixed settings differed still fits. ``native`` matches the
    space's hyperopt expressions (``_hyperopt_space``); without it they are constants.
    """
    match = Match()
    match_into(space, config, "", match, native)
    return match


def match_into(space: Any, value: Any, label: str, match: Match, native: Native | None = None) -> None:
    """:func:`match_config` for the part of a space at ``label``, written into ``match``
    (a ``native`` matcher that meets a dict of hyperopt expressions hands it back here)."""
    _Matcher(native).value(space, value, label, label, match)


def _needs_value(value: Any) -> bool:
    """Whether a config must hold a value for this entry of the space (not a constant)."""
    if isinstance(value, Mapping):
        return any(_needs_value(item) for item in value.values())
    return isinstance(value, Domain) or _is_hyperopt_expr(value)


@dataclass(frozen=True)
class _Matcher:
    native: Native | None

    def mapping(self, space: Mapping[str, Any], config: Any, label: str, path: str, match: Match) -> None:
        if not isinstance(config, Mapping):
            if _needs_value(space):
                match.outside[label or "<config>"] = f"{where(label)} is {config!r:.60}, not a dict"
            return
        for key in config:
            if key not in space:
                match.removed.append(child(path, str(key)))
        for key, item in space.items():
            if key in config:
                self.value(item, config[key], child(label, key), child(path, key), match)
            elif _needs_value(item):
                match.missing[child(label, key)] = f"{child(label, key)!r} is missing"

    def value(self, space: Any, value: Any, label: str, path: str, match: Match) -> None:
        if isinstance(space, Mapping):
            self.mapping(space, value, label, path, match)
        elif isinstance(space, Choice):
            best: tuple[int, Match] | None = None
            for index, option in enumerate(space.options):
                trial = Match()
                if self.option(option, value, option_label(label, index), path, trial) and (
                    best is None or trial.score > best[1].score
                ):
                    best = (index, trial)
            if best is None:
                match.outside[label] = f"{where(label)} is {value!r:.60}, which matches none of its options"
                return
            match.values[label] = best[0]
            match.take(best[1])
        elif isinstance(space, (Range, RandInt)):
            fitted = fit_number(space, value, label)
            if isinstance(fitted, str):
                match.outside[label] = fitted
            else:
                match.values[label] = fitted
        elif self.native is not None and _is_hyperopt_expr(space):
            self.native(space, value, label, match)

    def option(self, option: Any, value: Any, label: str, path: str, match: Match) -> bool:
        """Whether ``value`` took this option: constants must agree, domains may be absent."""
        if isinstance(option, Mapping):
            if not isinstance(value, Mapping):
                return False
            for key, item in option.items():
                if not _needs_value(item):
                    if key not in value or not same_value(plain(item), plain(value[key])):
                        return False
            self.mapping(option, value, label, path, match)
            return True
        if isinstance(option, (Choice, Range, RandInt)):
            self.value(option, value, label, path, match)
            return label in match.values
        if self.native is not None and _is_hyperopt_expr(option):
            self.native(option, value, label, match)
            return match.fits
        return same_value(plain(option), plain(value))


def fit_number(domain: Range | RandInt, value: Any, label: str = "") -> float | str:
    """``value`` as a float if it lies in ``domain``, else why not (a sentence).

    A ``q`` range's values may lie up to q/2 beyond its bounds (see ``quniform``).
    """
    if isinstance(domain, RandInt):
        return number_in(value, domain.low, domain.high - 1, label, integer=True)
    if domain.q is None:
        return number_in(value, domain.low, domain.high, label)
    return number_in(value, domain.low - domain.q / 2, domain.high + domain.q / 2, label)


def number_in(value: Any, low: float, high: float, label: str = "", integer: bool = False) -> float | str:
    """``value`` as a float if it is a number in ``[low, high]`` (and an int if
    ``integer``), else why not (a sentence)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"{where(label)} is {value!r:.60}, not a number"
    number = float(value)
    if not math.isfinite(number):
        return f"{where(label)} is {value!r}, not a finite number"
    if integer and not number.is_integer():
        return f"{where(label)} is {value!r}, not an int"
    if not low <= number <= high:
        return f"{where(label)} is {value!r}, outside [{low}, {high}]"
    return number
