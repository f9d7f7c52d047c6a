"""Random search and grid search over a raytuner search space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raytuner.errors import ConfigError, no_unknown

from ._base import FINISHED, Searcher, _Finished, not_set_up
from ._checks import make_rng
from ._space import GridPoints, check_space, grid_points, sample_config


class _Sampling(Searcher):
    """What random and grid search share: configs drawn with a seeded generator, never
    from results."""

    needs_metric = False  # configs never depend on results
    supports_multi_objective = True  # nor on how many objectives there are
    _grid = False  # whether the space may hold grid() axes

    def __init__(self, space: Mapping[str, Any] | None = None, seed: int | None = None, **unknown: Any) -> None:
        _refuse_options(type(self).__name__, unknown)
        self._rng = make_rng(type(self).__name__, seed)
        self._seed = seed
        if space is not None:
            check_space(type(self).__name__, space, grid=self._grid)
        self.space = space

    def _config(self) -> dict[str, Any]:
        return {"seed": self._seed}

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        super().setup(space, num_trials, objectives)
        check_space(type(self).__name__, self.space, grid=self._grid)

    def state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def restore(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]


def _refuse_options(owner: str, unknown: Mapping[str, Any]) -> None:
    """Refuse a keyword these searchers do not take; ``warm_start`` in its own words: the
    searchers that take it learn from old results, and these never look at results."""
    if "warm_start" in unknown:
        msg = (
            f"{owner}: `warm_start` is {unknown['warm_start']!r:.100}, but {owner} takes none: it "
            "never learns from results, so old ones would change nothing. Drop warm_start=, or "
            "fork with a searcher that learns, e.g. TPESearcher(warm_start=rt.load(path).observations())."
        )
        raise ConfigError(msg)
    no_unknown(owner, unknown, ("space", "seed"))


class RandomSearcher(_Sampling):
    """Random search: every config drawn independently from the space.

    A strong baseline for few hyperparameters of unequal importance (Bergstra and Bengio,
    "Random search for hyper-parameter optimization", JMLR 2012) and the partner of
    early-stopping schedulers such as ASHA.

    Args:
        space: The search space; None to use the Tuner's.
        seed: Seed of the generator; the same seed gives the same sequence of configs.

    Example:
        >>> from raytuner.search import RandomSearcher, loguniform
        >>> searcher = RandomSearcher({"lr": loguniform(1e-4, 1e-1)}, seed=0)
        >>> searcher.setup(None, num_trials=10)
        >>> sorted(searcher.suggest("00000"))
        ['lr']
    """

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self.space is None:
            raise not_set_up(type(self).__name__)
        return sample_config(self.space, self._rng)


class GridSearcher(_Sampling):
    """Grid search: every point of the cross product of the space's :func:`grid` axes.

    Points come in a fixed order (the first grid in key order varies slowest); other
    domains in the space are sampled with the seeded generator for each trial. As in Ray
    Tune, the Tuner's ``num_trials`` repeats the whole grid: :meth:`setup` sets
    ``num_trials`` to ``num_trials * grid_size`` and :meth:`suggest` returns
    :data:`FINISHED` after that many trials.

    Args:
        space: The search space; None to use the Tuner's.
        seed: Seed for the domains that are not grids.

    Example:
        >>> from raytuner.search import GridSearcher, grid
        >>> searcher = GridSearcher({"units": grid([32, 64]), "act": grid(["relu", "tanh"])})
        >>> searcher.setup(None, num_trials=1)
        >>> [searcher.suggest(f"{i:05d}") for i in range(searcher.num_trials)][:2]
        [{'units': 32, 'act': 'relu'}, {'units': 32, 'act': 'tanh'}]
    """

    _grid = True

    def __init__(self, space: Mapping[str, Any] | None = None, seed: int | None = None, **unknown: Any) -> None:
        super().__init__(space, seed, **unknown)
        self._points: GridPoints | None = None  # computed one at a time: a grid may have millions
        self._next = 0

    @property
    def grid_size(self) -> int:
        """Number of points in one pass over the grid (1 for a space without grids; 0 before
        :meth:`setup`)."""
        return 0 if self._points is None else len(self._points)

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        super().setup(space, num_trials, objectives)
        assert self.space is not None  # set by Searcher.setup or it raised
        self._points = grid_points(self.space)
        self.num_trials = num_trials * len(self._points)

    def suggest(self, trial_id: str) -> dict[str, Any] | _Finished:
        if self._points is None:
            raise not_set_up(type(self).__name__)
        if self.num_trials is not None and self._next >= self.num_trials:
            return FINISHED
        point = self._points[self._next % len(self._points)]
        self._next += 1
        return sample_config(self.space, self._rng, point)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "next": self._next}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self._next = state["next"]
