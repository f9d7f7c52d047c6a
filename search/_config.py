"""Rebuilding a built-in searcher from its :meth:`Searcher.config` (resume, tools)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Mapping

from raytuner.errors import ConfigError

from ._base import Searcher
from ._space import space_from_json


def _built_in(name: Any) -> type[Searcher] | None:
    """The searcher class the package exports under ``name``: the registry is the public
    namespace, so a searcher added to ``__all__`` is rebuildable (and HyperOptSearcher
    still loads hyperopt only when asked for)."""
    package = importlib.import_module(__package__)
    if not isinstance(name, str) or name not in package.__all__:
        return None
    found = getattr(package, name)
    concrete = isinstance(found, type) and issubclass(found, Searcher) and not inspect.isabstract(found)
    return found if concrete else None


def from_config(config: Mapping[str, Any]) -> Searcher:
    """The searcher that ``config`` (what :meth:`Searcher.config` returned) describes,
    not yet set up: call ``setup(None, num_trials)``, then ``restore(state)`` to continue.

    Example:
        >>> from raytuner.search import RandomSearcher, from_config, uniform
        >>> from_config(RandomSearcher({"x": uniform(0, 1)}, seed=3).config()).config()["seed"]
        3

    Raises:
        ConfigError: ``config`` does not name a built-in searcher. A searcher of your own
            has no config (or one this function does not know); the Tuner pickles it.
    """
    cls = _built_in(config.get("type")) if isinstance(config, Mapping) else None
    if cls is None:
        msg = (
            f"search.from_config: `config` is {config!r:.120}, but must be the config() of a "
            "built-in searcher, with 'type' the name of a searcher raytuner.search exports. A "
            "searcher of your own cannot be rebuilt from data: pickle it instead."
        )
        raise ConfigError(msg)
    args = {key: value for key, value in config.items() if key not in ("type", "space")}
    space = config.get("space")
    return cls._from_config(None if space is None else space_from_json(space), args)
