"""Whole search spaces: validation, sampling, grid expansion and a JSON description.

A space is a mapping of parameter names to domains (:func:`search.uniform`, ...), nested
dicts (sub-spaces, resolved recursively) or constants (passed through unchanged). Where the
HyperOpt searcher is used, hyperopt's own ``hp`` expressions may stand in for domains.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from raytuner.errors import ConfigError

from ._domains import Choice, Grid, _contains_domain, _is_hyperopt_expr, from_json, plain, resolve, to_json

Path = tuple[str, ...]


def _where(path: Path) -> str:
    return "space" + "".join(f"[{key!r}]" for key in path)


def validate_space(space: Any) -> None:
    """Check the structure of a search space.

    Domains validate their own arguments when built; this checks what only the whole
    space shows: a mapping with str keys, no domains hidden in lists (they would never be
    sampled) and no grid inside a choice.

    Raises:
        ConfigError: Naming the dotted path of the first bad entry, e.g.
            ``space['model']['units']: ...``.
    """
    if not isinstance(space, Mapping):
        msg = (
            f"space is {space!r:.80} ({type(space).__name__}), but must be a dict of "
            "parameter names to domains or constants. Pass e.g. "
            "{'lr': loguniform(1e-4, 1e-1)}."
        )
        raise ConfigError(msg)
    _validate_mapping(space, (), "space")


def _validate_mapping(mapping: Mapping[Any, Any], path: Path, where: str) -> None:
    for key, value in mapping.items():
        if not isinstance(key, str):
            msg = (
                f"{where}: key {key!r} is of type {type(key).__name__}, but parameter names must be "
                f"str. Use {str(key)!r}."
            )
            raise ConfigError(msg)
        _validate_entry(value, path + (key,), f"{where}[{key!r}]")


def _validate_entry(value: Any, path: Path, where: str) -> None:
    if isinstance(value, Mapping):
        _validate_mapping(value, path, where)
    elif isinstance(value, Choice):
        for index, option in enumerate(value.options):
            _validate_entry(option, path, f"{where}.options[{index}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if _contains_domain(item):
                msg = (
                    f"{where}[{index}]: {item!r} is a domain inside a list, which is never "
                    "sampled. Give it its own key in a dict, or make the whole list a "
                    "choice() of lists."
                )
                raise ConfigError(msg)


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
    return bool(grid_axes(space)) if isinstance(space, Mapping) else isinstance(space, Grid)


def has_hyperopt_expr(space: Any) -> bool:
    """Whether ``space`` holds a native hyperopt ``hp`` expression."""
    if _is_hyperopt_expr(space):
        return True
    if isinstance(space, Mapping):
        return any(has_hyperopt_expr(value) for value in space.values())
    if isinstance(space, Choice):
        return any(has_hyperopt_expr(option) for option in space.options)
    return False


def grid_axes(space: Mapping[str, Any], path: Path = ()) -> list[tuple[Path, tuple[Any, ...]]]:
    """The grid() entries of ``space`` as ``(path, values)``, in the space's key order."""
    axes: list[tuple[Path, tuple[Any, ...]]] = []
    for key, value in space.items():
        if isinstance(value, Grid):
            axes.append((path + (key,), value.values))
        elif isinstance(value, Mapping):
            axes.extend(grid_axes(value, path + (key,)))
    return axes


def grid_points(space: Mapping[str, Any]) -> list[dict[Path, Any]]:
    """Every point of the cross product of the space's grids, in a fixed order.

    The first grid axis (in key order) varies slowest, as in :func:`itertools.product`.
    A space without grids has exactly one (empty) point.
    """
    axes = grid_axes(space)
    paths = [path for path, _ in axes]
    return [dict(zip(paths, combo)) for combo in itertools.product(*(vals for _, vals in axes))]


def sample_config(
    space: Mapping[str, Any],
    rng: np.random.Generator,
    grid_point: Mapping[Path, Any] | None = None,
) -> dict[str, Any]:
    """Draw one configuration from ``space``.

    Nested dicts are resolved recursively, constants passed through, and every value is a
    plain Python value (float, int, str, bool...), never a numpy scalar.

    Args:
        space: The search space.
        rng: Source of randomness; the same generator state gives the same config.
        grid_point: Values for the space's grid axes, keyed by path (see
            :func:`grid_points`); needed only when the space has a grid.

    Raises:
        ConfigError: If the space holds a grid axis missing from ``grid_point`` or a
            hyperopt expression (those need the HyperOpt searcher).
    """
    return _sample_mapping(space, rng, grid_point or {}, ())


def _sample_mapping(
    space: Mapping[str, Any], rng: np.random.Generator, grid_point: Mapping[Path, Any], path: Path
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in space.items():
        here = path + (key,)
        if isinstance(value, Grid):
            if here not in grid_point:
                msg = (
                    f"{_where(here)}: {value!r} is a grid axis and cannot be sampled at "
                    "random. Use GridSearcher (the Tuner picks it when the space has a grid)."
                )
                raise ConfigError(msg)
            config[key] = plain(grid_point[here])
        elif isinstance(value, Mapping):
            config[key] = _sample_mapping(value, rng, grid_point, here)
        elif _is_hyperopt_expr(value):
            msg = (
                f"{_where(here)}: a native hyperopt expression can only be searched by "
                "HyperOptSearcher. Use it, or replace the expression by a raytuner domain "
                "(uniform, loguniform, choice, ...)."
            )
            raise ConfigError(msg)
        else:
            config[key] = resolve(value, rng)
    return config


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
