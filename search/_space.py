"""Whole search spaces: validation, sampling, grid expansion and a JSON description.

A space is a mapping of parameter names to domains (:func:`search.uniform`, ...), nested
dicts (sub-spaces, resolved recursively) or constants (passed through unchanged). Where the
HyperOpt searcher is used, hyperopt's own ``hp`` expressions may stand in for domains.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any, overload

import numpy as np

from raytuner.errors import ConfigError

from ._domains import Choice, Domain, Grid, _contains_domain, _is_hyperopt_expr, choice, from_json, grid, loguniform
from ._domains import plain, randint, to_json, uniform
from ._steps import qloguniform, quniform
from ._params import Param, rebuild


def validate_space(space: Any) -> None:
    """Check the structure of a search space.

    Domains validate their own arguments when built; this checks what only the whole
    space shows: a mapping with str keys, no domains hidden in lists (they would never be
    sampled), no grid inside a choice, constants (and choice and grid values) that JSON
    holds (None, bool, int, float, str, lists, tuples and dicts with str keys of those,
    numpy scalars, paths; a trial's config is recorded as JSON and a resumed trial gets it
    from there), and no two entries that the results would show under one column: views
    flatten a config's nested dicts into ``a/b`` keys, so ``"a/b"`` and ``"a": {"b": ...}``
    would hide each other (a key with ``/`` that meets nothing is fine; the options of one
    choice may share keys, as a config holds only one of them).

    Raises:
        ConfigError: Naming the path of the first bad entry, e.g.
            ``space['model']['units']: ...``, or both spellings of a shared column.
    """
    if not isinstance(space, Mapping):
        msg = (
            f"space is {space!r:.80} ({type(space).__name__}), but must be a dict of "
            "parameter names to domains or constants. Pass e.g. "
            "{'lr': loguniform(1e-4, 1e-1)}."
        )
        raise ConfigError(msg)
    _validate_mapping(space, "space")
    _columns(space, (), "space")


def _columns(value: Any, path: tuple[str, ...], where: str) -> dict[str, str]:
    """The columns (``"/"``-joined paths, as raytuner's views flatten a config) that the
    configs of ``value`` fill, each with the entry that fills it as an error names it.

    Raises:
        ConfigError: If two entries of one config fill the same column.
    """
    if isinstance(value, Mapping) and value:  # an empty dict is a value, as flatten keeps it
        found: dict[str, str] = {}
        for key, item in value.items():
            for column, spelling in _columns(item, (*path, key), f"{where}[{key!r}]").items():
                if column in found:
                    msg = (
                        f"{found[column]} and {spelling} are both shown as {column!r} in the "
                        "results (the dataframe, raytuner show and the loggers join nested keys "
                        "with '/'), so one would hide the other. Rename one."
                    )
                    raise ConfigError(msg)
                found[column] = spelling
        return found
    if isinstance(value, (Choice, Grid)):  # a config holds one option: they may share columns
        kind = "options" if isinstance(value, Choice) else "values"
        merged: dict[str, str] = {}
        for index, option in enumerate(getattr(value, kind)):
            for column, spelling in _columns(option, path, f"{where}.{kind}[{index}]").items():
                merged.setdefault(column, spelling)
        return merged
    return {"/".join(path): where}


def _validate_mapping(mapping: Mapping[Any, Any], where: str) -> None:
    for key, value in mapping.items():
        _require_str_key(key, where, "parameter names must be str")
        _validate_entry(value, f"{where}[{key!r}]")


def _require_str_key(key: Any, where: str, rule: str) -> None:
    """A ConfigError naming ``where`` and ``key`` if ``key`` is not a str (``rule`` says why)."""
    if not isinstance(key, str):
        raise ConfigError(f"{where}: key {key!r} is of type {type(key).__name__}, but {rule}. Use {str(key)!r}.")


def _validate_entry(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        _validate_mapping(value, where)
    elif isinstance(value, Choice):
        for index, option in enumerate(value.options):
            _validate_entry(option, f"{where}.options[{index}]")
    elif isinstance(value, Grid):
        for index, item in enumerate(value.values):
            _validate_constant(item, f"{where}.values[{index}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if _contains_domain(item):
                msg = (
                    f"{where}[{index}]: {item!r} is a domain inside a list, which is never "
                    "sampled. Give it its own key in a dict, or make the whole list a "
                    "choice() of lists."
                )
                raise ConfigError(msg)
            _validate_constant(item, f"{where}[{index}]")
    elif not isinstance(value, Domain) and not _is_hyperopt_expr(value):
        _validate_constant(value, where)


# What a config may hold besides lists, tuples and dicts: JSON's values, and the few that
# JSON records as one of them (numpy scalars as numbers, paths as str).
_JSON_LEAVES = (type(None), bool, int, float, str, np.bool_, np.integer, np.floating, np.str_, PurePath)

# The domain constructors, which a space may name without calling them.
_CONSTRUCTORS = (uniform, loguniform, quniform, qloguniform, randint, choice, grid)


def _validate_constant(value: Any, where: str) -> None:
    """Refuse a constant (or grid value) that JSON cannot hold: a trial's config is recorded
    as JSON (``config.json``) and a resumed or retried trial gets it back from there, so such
    a value would come back as its repr, a string."""
    if isinstance(value, _JSON_LEAVES):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _validate_constant(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _require_str_key(key, where, "the keys of a dict in a config must be str (JSON turns them into str)")
            _validate_constant(item, f"{where}[{key!r}]")
        return
    if any(value is constructor for constructor in _CONSTRUCTORS):
        call = f"{value.__name__}({', '.join(inspect.signature(value).parameters)})"
        msg = (
            f"{where}: {value.__name__} is the domain constructor itself, not a domain. "
            f"Did you mean rt.{call}?"
        )
        raise ConfigError(msg)
    if isinstance(value, (set, frozenset, np.ndarray)):
        fix = f"Pass a list instead: {_as_list(value)!r:.80}."
    else:
        fix = (
            "Pass a name instead and build the object inside the trainable, e.g. 'opt': "
            "choice(['adam', 'sgd']) and {'adam': Adam, 'sgd': SGD}[config['opt']]."
        )
    msg = (
        f"{where}: {value!r:.80} ({type(value).__name__}) is not a value JSON can hold. Config "
        "values are recorded as JSON (each trial's config.json), and a resumed or retried trial "
        f"gets them back from there, where this one would be a string. {fix}"
    )
    raise ConfigError(msg)


def _as_list(value: set[Any] | frozenset[Any] | np.ndarray) -> list[Any]:
    if isinstance(value, np.ndarray):
        return value.tolist()
    try:
        return sorted(value)
    except TypeError:  # items that do not compare
        return list(value)


def check_space(owner: str, space: Any, *, grid: bool = False, native: bool = False) -> None:
    """Check a searcher's space: its structure (:func:`validate_space`), then no
    :func:`search.grid` unless ``grid`` (the searcher enumerates grids) and no native
    hyperopt expression unless ``native`` (the searcher reads them).

    Raises:
        ConfigError: Naming ``owner`` and the searcher to use instead.
    """
    validate_space(space)
    if not grid and has_grid(space):
        msg = (
            f"{owner} cannot search a space with grid() axes: it samples, it does not "
            "enumerate. Use GridSearcher (the Tuner picks it when no searcher is given), or "
            "replace grid([...]) by choice([...])."
        )
        raise ConfigError(msg)
    if not native and has_hyperopt_expr(space):
        msg = (
            f"{owner} cannot read native hyperopt expressions. Use HyperOptSearcher, or "
            "replace them by raytuner domains (uniform, loguniform, choice, ...)."
        )
        raise ConfigError(msg)


def has_grid(space: Any) -> bool:
    """Whether ``space`` holds a :func:`search.grid` (and so needs a GridSearcher)."""
    return any(isinstance(value, Grid) for _, value in _leaves(space))


def has_hyperopt_expr(space: Any) -> bool:
    """Whether ``space`` holds a native hyperopt ``hp`` expression."""
    return any(_is_hyperopt_expr(value) for _, value in _leaves(space))


def _leaves(space: Any) -> list[tuple[str, Any]]:
    """The entries of ``space`` that are neither dicts nor parameters (constants, grids,
    hyperopt expressions), with their labels, those in every option of a choice included."""
    found: list[tuple[str, Any]] = []

    def every_option(param: Param, option: Callable[[int], Any]) -> None:
        for index in range(len(param.domain.options)):
            option(index)

    rebuild(space, lambda param: None, every_option, lambda label, value: found.append((label, value)))
    return found


def grid_axes(space: Mapping[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """The grid() entries of ``space`` as ``(label, values)``, in the space's key order.

    Raises:
        ConfigError: If two grids have the same label (``"a.b"`` and ``"a": {"b": ...}``).
    """
    axes = [(label, value.values) for label, value in _leaves(space) if isinstance(value, Grid)]
    labels = [label for label, _ in axes]
    for label in labels:
        if labels.count(label) > 1:
            msg = (
                f"space: two grid() axes have the label {label!r}: a key with a dot and a "
                "nested dict name the same entry. Rename one of them."
            )
            raise ConfigError(msg)
    return axes


class GridPoints(Sequence[dict[str, Any]]):
    """Every point of the cross product of a space's grids, in a fixed order, by label:
    a sequence that computes the point at an index when asked, so that a grid of millions
    of points takes no memory (``len`` is the product of the axes' sizes).

    The first grid axis (in key order) varies slowest, as in :func:`itertools.product`.
    A space without grids has exactly one (empty) point.
    """

    def __init__(self, space: Mapping[str, Any]) -> None:
        self._axes = grid_axes(space)
        self._size = math.prod(len(values) for _, values in self._axes)

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if not -self._size <= index < self._size:
            raise IndexError(f"grid point {index} of {self._size}")
        rest = index % self._size
        point: dict[str, Any] = {}
        for label, values in reversed(self._axes):  # the last axis varies fastest
            rest, at = divmod(rest, len(values))
            point[label] = values[at]
        return {label: point[label] for label, _ in self._axes}


def grid_points(space: Mapping[str, Any]) -> GridPoints:
    """The points of the cross product of the space's grids (see :class:`GridPoints`)."""
    return GridPoints(space)


def sample_config(
    space: Mapping[str, Any],
    rng: np.random.Generator,
    grid_point: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw one configuration from ``space``.

    Nested dicts are resolved recursively, constants passed through, and every value is a
    plain Python value (float, int, str, bool...), never a numpy scalar.

    Args:
        space: The search space.
        rng: Source of randomness; the same generator state gives the same config.
        grid_point: Values for the space's grid axes, keyed by label (see
            :func:`grid_points`); needed only when the space has a grid.

    Raises:
        ConfigError: If the space holds a grid axis missing from ``grid_point`` or a
            hyperopt expression (those need the HyperOpt searcher).
    """
    point = grid_point or {}

    def draw_option(param: Param, option: Callable[[int], Any]) -> Any:
        return option(int(rng.integers(len(param.domain.options))))

    def leaf(label: str, value: Any) -> Any:
        if isinstance(value, Grid):
            if label not in point:
                msg = (
                    f"space[{label!r}]: {value!r} is a grid axis and cannot be sampled at "
                    "random. Use GridSearcher (the Tuner picks it when the space has a grid)."
                )
                raise ConfigError(msg)
            return plain(point[label])
        if _is_hyperopt_expr(value):
            msg = (
                f"space[{label!r}]: a native hyperopt expression can only be searched by "
                "HyperOptSearcher. Use it, or replace the expression by a raytuner domain "
                "(uniform, loguniform, choice, ...)."
            )
            raise ConfigError(msg)
        return value.sample(rng) if isinstance(value, Domain) else plain(value)  # a domain of the user's

    return rebuild(space, lambda param: param.domain.sample(rng), draw_option, leaf)


def space_to_json(space: Any) -> Any:
    """A JSON-friendly description of ``space`` for storage and display.

    Domains become ``{"type": "loguniform", "low": 0.0001, "high": 0.1}`` and the like
    (``choice`` lists its ``options``, ``grid`` its ``values``); dicts and constants keep
    their shape; hyperopt expressions become ``{"type": "hyperopt", "expr": str(expr)}``.
    """
    return to_json(space)


def space_from_json(description: Any) -> Any:
    """The space that :func:`space_to_json` described (the inverse, for resume).

    Raises:
        ConfigError: If the description holds a hyperopt expression or an object that
            JSON cannot carry (``{"type": "hyperopt"}`` or ``{"type": "constant"}``).
    """
    return from_json(description)


def describable(space: Any) -> bool:
    """Whether :func:`space_to_json` describes ``space`` exactly, so that
    :func:`space_from_json` gives it back (no hyperopt expressions, tuples or objects)."""
    try:
        return bool(space_from_json(space_to_json(space)) == space)
    except ConfigError:
        return False
