"""The searchers the search benchmarks compare, named the same way in every script.

A method is a searcher's name with options after dashes:

- ``random``: RandomSearcher;
- ``tpesearcher``: TPESearcher, raytuner's own TPE;
- ``hyperopt``: HyperOptSearcher, hyperopt's TPE behind raytuner's adapter;
- ``optuna``: OptunaSearcher with Optuna's default ``TPESampler(seed=seed)``;
- ``gp``: GPSearcher.

``key=value`` sets a keyword argument of the searcher, converted to the type of its
default: ``tpesearcher-bandwidth=0.07``, ``tpesearcher-ordinal=0``,
``hyperopt-stopped_trials=last-n_startup=9``, ``gp-pending=constant_liar``. A bare word
(``hyperopt-rayseeds``) is a flag that the script running the method handles itself; the
multi-fidelity scripts add ``/scheduler`` after the method (``tpesearcher/asha``).
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Mapping

SEARCHERS = ("random", "tpesearcher", "hyperopt", "optuna", "gp")


def parse(method: str) -> tuple[str, dict[str, Any], list[str]]:
    """``(name, keyword arguments, flags)`` of a method such as ``hyperopt-n_startup=9-rayseeds``.

    Options are split at dashes followed by a letter, so values may be negative numbers."""
    name, *parts = re.split(r"-(?=[A-Za-z_])", method)
    options: dict[str, Any] = {}
    flags = []
    for part in parts:
        key, sep, value = part.partition("=")
        if sep:
            options[key] = _typed(name, key, value)
        else:
            flags.append(key)
    return name, options, flags


def searcher(method: str, seed: int, space: Mapping[str, Any] | None = None,
             defaults: Mapping[str, Any] | None = None, flags: tuple[str, ...] = ()) -> Any:
    """The raytuner searcher ``method`` names, seeded.

    ``defaults``: keyword arguments a script sets for every searcher that takes them (the
    multi-fidelity scripts start every model after 10 trials, as Ray Tune's adapters do),
    overridden by the method's own options. ``flags``: the bare words the calling script
    handles; any other is an error.
    """
    name, options, given = parse(method)
    unknown = [flag for flag in given if flag not in flags]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} in method {method!r}: write options as key=value")
    cls = _class(name)
    accepted = inspect.signature(cls).parameters
    kwargs = {key: value for key, value in (defaults or {}).items() if key in accepted}
    kwargs.update(options)
    if name == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    return cls(space, seed=seed, **kwargs)


def _class(name: str) -> type:
    from raytuner.search import GPSearcher, HyperOptSearcher, OptunaSearcher, RandomSearcher, TPESearcher

    classes = {"random": RandomSearcher, "tpesearcher": TPESearcher, "hyperopt": HyperOptSearcher,
               "optuna": OptunaSearcher, "gp": GPSearcher}
    if name not in classes:
        raise ValueError(f"unknown searcher {name!r}; one of {', '.join(SEARCHERS)}")
    return classes[name]


def _typed(name: str, key: str, text: str) -> Any:
    """``text`` as the type of the searcher's default for ``key`` (a bool from 0/1 or
    true/false); where the default says nothing (None, a string), a number if it reads as one."""
    try:
        default = inspect.signature(_class(name)).parameters[key].default
    except (KeyError, ValueError):
        default = None
    if isinstance(default, bool):
        return text.lower() in ("1", "true")
    if isinstance(default, float):
        return float(text)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
