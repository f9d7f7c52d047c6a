"""Search algorithms and the search-space DSL.

Spaces are dicts of parameter names to domains (``uniform``, ``loguniform``, ``choice``...),
nested dicts or constants. Searchers implement the :class:`Searcher` contract that the
raytuner controller drives; a built-in searcher describes itself as data
(:meth:`Searcher.config`) and :func:`from_config` rebuilds it. This package never imports Ray.
"""

from typing import Any

from ._base import FINISHED, Outcome, Searcher, TrialEnd
from ._config import from_config
from ._domains import Domain, choice, grid, loguniform, randint, uniform
from ._steps import qloguniform, quniform
from ._random import GridSearcher, RandomSearcher
from ._space import has_grid, sample_config, space_from_json, space_to_json, validate_space

__all__ = [
    "Domain",
    "FINISHED",
    "GPSearcher",
    "GridSearcher",
    "HyperOptSearcher",
    "OptunaSearcher",
    "Outcome",
    "RandomSearcher",
    "Searcher",
    "TPESearcher",
    "TrialEnd",
    "choice",
    "from_config",
    "grid",
    "has_grid",
    "loguniform",
    "qloguniform",
    "quniform",
    "randint",
    "sample_config",
    "space_from_json",
    "space_to_json",
    "uniform",
    "validate_space",
]


def __getattr__(name: str) -> Any:
    # hyperopt imports scipy.stats (about 1.3 s): load it only when TPE is asked for, so that
    # trial workers and the CLI, which never need it, start fast.
    if name == "HyperOptSearcher":
        from ._hyperopt import HyperOptSearcher

        return HyperOptSearcher
    if name == "TPESearcher":  # scipy.special: the same reason
        from ._tpe import TPESearcher

        return TPESearcher
    # scikit-learn and optuna take a second or more to import, and are optional extras.
    if name == "GPSearcher":
        from ._gp import GPSearcher

        return GPSearcher
    if name == "OptunaSearcher":
        from ._optuna import OptunaSearcher

        return OptunaSearcher
    raise AttributeError(f"module 'raytuner.search' has no attribute {name!r}")
