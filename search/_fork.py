"""Old observations fitted to a changed search space: forks and continued searches.

A searcher that learns can start from an earlier experiment's trials
(``warm_start=rt.load(path).observations()``). The space may have changed since: a
parameter added or removed, a range narrowed, a choice option dropped. This module maps
each old config onto the *new* space, parameter by parameter, so that an old trial still
informs every parameter it has a sound value for, instead of being thrown away whole.

**Parameters and labels.** A space is seen as its parameters (``_params``), each named by
a *label*, the dotted path of its domain: ``"lr"``, ``"model.units"``, and ``"opt[1].beta"``
for the ``beta`` of the second option of the choice ``opt``. A choice's own label holds the
*index* of the chosen option. A fitted observation is a point ``{label: value}`` that may
be partial; :func:`._params.match_config` takes each old config apart.

**Rules** (old config against the new space):

- *Removed parameter* (a key of the old config that the space no longer has): ignored,
  counted in :attr:`ForkReport.removed`.
- *Added parameter* (a domain of the space that the old config lacks): left absent, so
  the observation is partial; counted in :attr:`ForkReport.added`. Searchers that model
  parameters jointly must marginalise absent ones, not impute them: TPE takes the prior
  kernel on that dimension, the GP the kernel's expectation under the prior.
- *Value outside the new domain* (a narrowed range, a non-int for ``randint``, an option
  no longer in a ``choice``): with ``outside="drop_value"`` (default) that parameter, and
  the parameters conditional on a dropped choice, are left absent and the rest of the
  observation is kept; with ``outside="skip"`` the whole observation is skipped. Either
  way it is counted in :attr:`ForkReport.outside`. Dropping a value rather than clipping
  it to the new bound is what keeps this sound: a loss measured at ``lr=0.5`` says nothing
  about ``lr=0.01``, the new upper bound, but it still says how the other parameters did.
- An observation with no parameter left is skipped (:attr:`ForkReport.skipped`).
- *Parameter now constant* (a constant of the space, outside choices, at a key whose value
  varies among the old configs, so the old search searched it: ``units: choice([16, 32,
  64])`` turned into ``units: 32``, or a ``choice`` of dicts into one dict): an observation run
  with another value is skipped whole, counted in :attr:`ForkReport.fixed`. This is the
  narrowing of a range to one value, but no parameter is left to drop that value from, and
  keeping the rest would read a loss measured at ``units=16`` as one at ``units=32``.
- Other constants outside choices are not compared: a key that took one value in every old
  config was a fixed setting, and a fork may change one (``epochs`` 10 to 20). Inside a
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
from ._domains import Domain, _is_hyperopt_expr, plain, same_value
from ._params import Param, Point, match_config, parameters


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
        fixed: Per label of a parameter now constant, how many observations were skipped
            for a value other than the constant.
    """

    given: int = 0
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    outside: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether any observation was not used exactly as given."""
        return bool(self.skipped or self.added or self.removed or self.outside or self.fixed)

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
        if self.fixed:
            parts.append("the parameters now constant: " + listing(self.fixed))
        return "; ".join(parts) + "."


@dataclass(frozen=True)
class Fit:
    """The result of :func:`fit_observations`.

    Attributes:
        observations: ``(params, outcome)`` per kept observation, in the given order.
        report: Counts of what was kept and dropped.
        configs: The config each kept observation was fitted from, as given.
    """

    observations: list[tuple[Point, Outcome]]
    report: ForkReport
    configs: list[Mapping[str, Any]] = field(default_factory=list)


def check_warm_start(owner: str, warm_start: Any) -> list[tuple[Mapping[str, Any], Outcome]]:
    """Validate a ``warm_start`` argument and normalise its results to :class:`Outcome`.

    Each item must be a ``(config dict, result)`` pair, the result a number signed to
    minimize (a COMPLETED trial; with several objectives a tuple of numbers), None (a
    FAILED trial), or an :class:`Outcome`, as ``rt.load(path).observations()`` returns them.
    A value with a non-finite entry makes a FAILED trial.

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
    if isinstance(result, (tuple, list)) and result and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in result):
        vector = tuple(float(v) for v in result)
        finite = all(math.isfinite(v) for v in vector)
        return Outcome(TrialEnd.COMPLETED if finite else TrialEnd.FAILED, vector if finite else None)
    return None


def check_warm_start_objectives(owner: str, pairs: list[tuple[Mapping[str, Any], Outcome]], k: int) -> None:
    """Refuse warm-start values of another shape than k objectives give: a float for k = 1,
    a tuple of k floats for k >= 2 (None, for a failed trial, fits any k).

    Raises:
        ConfigError: Naming ``owner``, the index, the value and the fix.
    """
    for index, (_, outcome) in enumerate(pairs):
        value = outcome.value
        if value is None or (len(value) == k if isinstance(value, tuple) else k == 1):
            continue
        shape = "a number" if k == 1 else f"a tuple of {k} numbers"
        msg = (
            f"{owner}: `warm_start[{index}]` has the value {value!r}, but the experiment has {k} "
            f"objective(s): each value must be {shape}, signed to minimize. Pass the observations "
            "of an experiment with the same metrics."
        )
        raise ConfigError(msg)


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
    params = parameters(space, owner)
    report = ForkReport(given=len(pairs))
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    out_of: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    fixed: Counter[str] = Counter()
    observations: list[tuple[Point, Outcome]] = []
    configs: list[Mapping[str, Any]] = []
    searched = _searched_constants(space, [config for config, _ in pairs])
    for config, outcome in pairs:
        differing = _differing(config, searched)
        if differing:
            fixed.update(differing)
            skipped["run with another value of a parameter now constant"] += 1
            continue
        match = match_config(space, config)
        out_of.update(list(match.outside))
        removed.update(match.removed)
        if match.outside and outside == "skip":
            skipped["with a value outside its new domain"] += 1
            continue
        if not match.values:
            skipped["that fit no parameter of the space"] += 1
            continue
        added.update(_absent(params, match.values, match.outside))
        observations.append((match.values, outcome))
        configs.append(config)
    report.used = len(observations)
    report.skipped, report.added = dict(skipped), dict(added)
    report.removed, report.outside, report.fixed = dict(removed), dict(out_of), dict(fixed)
    return Fit(observations, report, configs)


def _absent(params: Mapping[str, Param], values: Point, dropped: Mapping[str, str]) -> list[str]:
    """Active parameters with no value that were not dropped for being outside."""
    return [label for label, param in params.items()
            if label not in values and label not in dropped and param.is_active(values)]


_ABSENT = object()


def _searched_constants(space: Mapping[str, Any], configs: list[Mapping[str, Any]]) -> dict[tuple[str, ...], Any]:
    """The constants of ``space`` outside choices, by key path, at which ``configs`` hold
    more than one value: parameters of the old search that the new space fixes."""
    searched = {}
    for path, constant in _constants(space, ()):
        seen: list[Any] = []
        for config in configs:
            value = _at(config, path)
            if value is not _ABSENT and not any(same_value(value, other) for other in seen):
                seen.append(value)
        if len(seen) > 1:
            searched[path] = plain(constant)
    return searched


def _constants(space: Mapping[str, Any], path: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], Any]]:
    for key, item in space.items():
        if isinstance(item, Mapping):
            yield from _constants(item, path + (key,))
        elif not isinstance(item, Domain) and not _is_hyperopt_expr(item):
            yield path + (key,), item


def _at(config: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(config, Mapping) or key not in config:
            return _ABSENT
        config = config[key]
    return plain(config)


def _differing(config: Mapping[str, Any], searched: Mapping[tuple[str, ...], Any]) -> list[str]:
    """Labels of the parameters now constant at which ``config`` holds another value (a
    config without the key is not compared, as for an added parameter)."""
    return [".".join(path) for path, constant in searched.items()
            if (value := _at(config, path)) is not _ABSENT and not same_value(value, constant)]
