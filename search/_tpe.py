"""Our own Tree-structured Parzen Estimator: multivariate, asynchronous, multi-fidelity."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from raytuner.errors import ConfigError, refuse_unknown_keywords

from ._base import Outcome, Searcher, Value, already_suggested, check_saved_objectives, check_value
from ._base import check_version, ended_twice, is_finite, not_set_up
from ._checks import flag, int_at_least, make_rng, real_in
from ._fork import check_warm_start, check_warm_start_objectives, fit_observations
from ._params import config_from_params, match_config
from ._parzen import ParzenEstimator, preload
from ._space import check_space, sample_config
from ._tpe_space import EncodedSpace
from ._tpe_split import finite_rows, missing_rows, split

_NAME = "TPESearcher"
_STATE_VERSION = 2  # the matrix holds ranks for ordinal choices, "ordinal" says if it does
_PENDING, _COMPLETED, _STOPPED, _FAILED = 0, 1, 2, 3


class TPESearcher(Searcher):
    """Tree-structured Parzen Estimator, written for asynchronous and multi-fidelity sweeps.

    TPE (Bergstra, Bardenet, Bengio and Kégl, NeurIPS 2011) ranks the observations by
    loss, calls the best ``n_good = min(ceil(γ n), max_good)`` of the n *good*, fits a
    density l(x) to them and g(x) to the rest, and proposes, out of ``n_ei_candidates``
    draws from l, the candidate with the largest l(x)/g(x), which maximises expected
    improvement. Here, following Falkner et al. (BOHB, ICML 2018) and Watanabe ("Tree-
    structured Parzen estimator: understanding its algorithm components and their roles
    for better empirical performance", 2023):

    - **Multivariate.** l and g are mixtures of *product* kernels over all parameters of a
      group (see ``_parzen``: truncated Gaussians on ``uniform``, the same in log space on
      ``loguniform``, discretised ones for ``quniform``/``qloguniform``/``randint``, an
      Aitchison-Aitken-style kernel for ``choice``), so interactions between parameters
      are modelled; hyperopt models each parameter on its own.
    - **Conditional spaces** (a ``choice`` of dicts): the parameters under one option are a
      group of their own, modelled jointly on the observations that took that option,
      split into good and bad *among those* (as a search of that option alone would), and
      sampled after the choice (``_tpe_space``).
    - **Asynchronous (constant liar).** A running trial that has no value at the model's
      resource level joins g(x) as a bad observation, so parallel workers do not all
      propose the same point. The random start-up lasts until ``n_startup`` trials have
      *finished* (running ones do not count).
    - **Multi-fidelity (the BOHB rule).** Every report (:meth:`on_trial_result`) is kept
      at its resource level r. TPE fits on the *highest* level with at least ``n_startup``
      values, so under ASHA or Hyperband, where most trials stop early, it still steers from
      their rung results, and compares values of one fidelity only.

    **Several objectives** (``setup(..., objectives=[...])``, values tuples of k floats):
    the good group is taken by non-dominated rank, the last front that does not fit cut by
    greedy hypervolume contribution (Ozaki et al., GECCO 2020, JAIR 2022; Optuna's
    multi-objective TPE); the maths: ``search/_tpe_split.py``. The constant liar, the
    multi-fidelity rule, forks (``warm_start`` values are then tuples) and the rules below
    hold as they are, a value being a vector, finite when every entry is.

    **How trials count at the model's level r** (values signed to minimize):

    - a value reported at r, by a running or a finished trial: an observation ranked by
      that value, and the only kind that can be *good*;
    - COMPLETED (or STOPPED at ``max_resource``): its final value also counts at every
      level above the last resource it reported (it ran its full budget);
    - STOPPED below r by the scheduler: *bad* at r (the scheduler judged it worse than
      the trials it let go on); it counts at the levels it did reach;
    - FAILED, or a non-finite value: bad at every level, also at the levels it reported a
      value at before it failed (+inf there: never good, not counted as a value);
    - running without a value at r: bad, the constant liar.

    **Defaults**, each chosen by measurement against the alternatives named here (the
    figures, commands and noise: benchmarks/RESULTS.md, section "TPESearcher defaults"):

    - ``bandwidth=0.1`` (β of the continuous kernels): narrower kernels (0.05, 0.07, 0.085)
      exploit an exact objective and lose on a noisy one or under ASHA; 0.15 is no better.
    - ``gamma=0.1``: the best tenth of the ranked trials is good (0.15 and 0.2 are worse).
    - ``low_fidelity_bandwidth=0.2``: wider kernels where the model fits a level below the
      full budget, whose rankings are noisy proxies of the final ones (0.1 is worse under
      ASHA; 0.15 to 0.3 alike).
    - ``discrete_bandwidth``: 0.2, a kernel on a grid of few values that reaches an
      observation's neighbours (0.1 and 0.3 are worse); with several objectives 0.1, whose
      good group takes in the front's extremes, good in one objective only (0.2 is worse on
      a mixed space, section "Multi-objective").
    - ``ordinal=True``: an ordered choice by rank, so that a good 64 speaks for 32 and 128
      (every choice categorical is worse on tables of ordered values).
    - ``avoid_repeats=True``: a repeated config teaches a deterministic objective nothing,
      and without it many configs of a discrete space are repeats.
    - ``prior_weight=1.0``, ``n_ei_candidates=24``, ``n_flat=25``, ``n_startup=10``: the
      alternatives (0.5 and 2; 48 and 64; 1000, no forgetting; 5) are each worse on some
      problem and none better on all. ``max_good=25`` binds past 25/γ = 250 trials.

    Args:
        space: The search space (raytuner domains, dicts, constants); None to use the
            Tuner's. No ``grid`` (use GridSearcher) and no hyperopt expressions.
        n_startup: Finished trials before the model takes over from random search; also
            the number of values a resource level needs to be modelled. At least 1.
        gamma: γ, the fraction of observations that are good.
        max_good: The most observations in the good group.
        n_ei_candidates: Candidates drawn from l(x) per suggestion (and per group).
        prior_weight: Weight of the prior component in l and g (each observation has 1).
        bandwidth: β, the bandwidth factor of the continuous kernels (see ``_parzen``).
        discrete_bandwidth: β of the discrete numeric kernels (``quniform``, ``randint``,
            ordinal choices): a grid of a few values needs a kernel that reaches the
            neighbours of an observation, or it models them as unrelated categories. None:
            0.2 with one objective, 0.1 with several.
        low_fidelity_bandwidth: β when the model fits a level below the full budget
            (under ASHA or Hyperband): low-fidelity rankings are noisier, wider kernels
            smooth them.
        n_flat: In g(x), the newest ``n_flat`` observations weigh 1 and older ones ramp
            linearly down towards 1/n (hyperopt's linear forgetting).
        ordinal: Model a ``choice`` of three or more distinct numbers (batch sizes,
            widths, a grid of values) as ordered, by the rank of its value, with a
            discretised Gaussian kernel, so that neighbouring values share evidence
            (``_tpe_space``); False models every choice as categorical.
        avoid_repeats: Where the best candidate repeats the config of a finished or running
            trial (discrete spaces), propose the best candidate that does not; a repeat
            teaches a deterministic objective nothing. False allows repeats, as hyperopt
            and Optuna do.
        seed: Seed; the same seed and the same events in the same order give the same
            suggestions.
        warm_start: ``(config, value)`` pairs from an earlier search (value signed to
            minimize, a tuple of k with k objectives, None for a failed trial) or
            ``(config, Outcome)`` pairs, as
            ``rt.load(path).observations()`` returns them. They count as finished trials.
            A changed space is handled as ``search/_fork.py`` documents: removed
            parameters ignored, added ones marginalised to the prior, out-of-range values
            dropped for that parameter only; a warning gives the counts.

    Raises:
        ConfigError: At construction or :meth:`setup`, for an unknown option, a bad value,
            a space with a grid, or a warm start that is not pairs.

    Example:
        >>> from raytuner.search import Outcome, TPESearcher, TrialEnd, uniform
        >>> searcher = TPESearcher({"x": uniform(-5, 5)}, n_startup=3, seed=0)
        >>> searcher.setup(None, num_trials=10)
        >>> for i in range(5):
        ...     config = searcher.suggest(str(i))
        ...     searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, config["x"] ** 2))
    """

    supports_multi_objective = True

    @refuse_unknown_keywords
    def __init__(
        self,
        space: Mapping[str, Any] | None = None,
        *,
        n_startup: int = 10,
        gamma: float = 0.1,
        max_good: int = 25,
        n_ei_candidates: int = 24,
        prior_weight: float = 1.0,
        bandwidth: float = 0.1,
        discrete_bandwidth: float | None = None,
        low_fidelity_bandwidth: float = 0.2,
        n_flat: int = 25,
        ordinal: bool = True,
        avoid_repeats: bool = True,
        seed: int | None = None,
        warm_start: Any = None,
    ) -> None:
        self._n_startup = int_at_least(_NAME, "n_startup", n_startup, 1, "10")
        self._gamma = real_in(_NAME, "gamma", gamma, 0.0, 1.0, "0.1")
        self._max_good = int_at_least(_NAME, "max_good", max_good, 1, "25")
        self._n_candidates = int_at_least(_NAME, "n_ei_candidates", n_ei_candidates, 1, "24")
        self._prior_weight = real_in(_NAME, "prior_weight", prior_weight, 0.0, math.inf, "1.0")
        self._bandwidth = real_in(_NAME, "bandwidth", bandwidth, 0.0, math.inf, "0.1")
        self._discrete_bandwidth = discrete_bandwidth if discrete_bandwidth is None else real_in(
            _NAME, "discrete_bandwidth", discrete_bandwidth, 0.0, math.inf, "0.2")
        self._low_bandwidth = real_in(_NAME, "low_fidelity_bandwidth", low_fidelity_bandwidth, 0.0,
                                      math.inf, "0.2")
        self._n_flat = int_at_least(_NAME, "n_flat", n_flat, 1, "25")
        self._ordinal = flag(_NAME, "ordinal", ordinal)
        self._avoid_repeats = flag(_NAME, "avoid_repeats", avoid_repeats)
        self._seed = seed
        self._rng = make_rng(_NAME, seed)
        self._warm_start = check_warm_start(_NAME, warm_start)
        if space is not None:
            check_space(_NAME, space)
        self.space = space
        self._encoded: EncodedSpace | None = None
        self._has_history = False
        self._reset()

    def _reset(self) -> None:
        # With k >= 2 objectives a trial's value is a row of k entries: a level and the final
        # values are (trials, k) arrays; with one, (trials,) as before several existed.
        self._shape: tuple[int, ...] = () if self.num_objectives == 1 else (self.num_objectives,)
        self._ids: dict[str, int] = {}
        self._matrix = np.empty((0, 0))
        self._status = np.empty(0, dtype=np.int8)
        self._final_value = np.empty((0,) + self._shape)
        self._final_resource = np.empty(0)
        self._levels: dict[float, np.ndarray] = {}

    def _config(self) -> dict[str, Any] | None:
        """The constructor's arguments as JSON data; None with a warm start (then the
        searcher is pickled whole, its old observations with it)."""
        if self._warm_start:
            return None
        return {"n_startup": self._n_startup, "gamma": self._gamma, "max_good": self._max_good,
                "n_ei_candidates": self._n_candidates, "prior_weight": self._prior_weight,
                "bandwidth": self._bandwidth, "discrete_bandwidth": self._discrete_bandwidth,
                "low_fidelity_bandwidth": self._low_bandwidth, "n_flat": self._n_flat,
                "ordinal": self._ordinal, "avoid_repeats": self._avoid_repeats, "seed": self._seed}

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        super().setup(space, num_trials, objectives)
        assert self.space is not None  # set by Searcher.setup or it raised
        check_space(_NAME, self.space)
        check_warm_start_objectives(_NAME, self._warm_start, self.num_objectives)
        self._encoded = EncodedSpace(self.space, self._ordinal)
        if num_trials > self._n_startup or self._warm_start:
            preload()  # the model's first suggestion needs scipy.special
        if self._has_history:  # restored, or set up before: the history is there already
            check_saved_objectives(_NAME, (self._shape or (1,))[0], self.num_objectives)
            return
        self._has_history = True
        self._reset()
        self._matrix = np.empty((0, len(self._encoded.labels)))
        if self._warm_start:
            fit = fit_observations(_NAME, self.space, self._warm_start)
            if fit.report.changed:
                warnings.warn(fit.report.message(_NAME), stacklevel=3)
            for index, (params, outcome) in enumerate(fit.observations):
                self._add(f"warm_start[{index}]", params)
                self._close(self._ids[f"warm_start[{index}]"], outcome)

    # -- events ------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self._encoded is None:
            raise not_set_up(_NAME)
        if trial_id in self._ids:
            raise already_suggested(_NAME, trial_id)
        assert self.space is not None
        level = None
        if np.count_nonzero(self._status != _PENDING) >= self._n_startup:
            level = self._model_level()
        params: dict[str, Any] | None = None
        if level is not None:
            # None when every candidate repeats a trial: then a random new point instead.
            params = self._sample(level[1], self._bandwidth_at(level[0]))
        if params is None:  # the random start-up; with avoid_repeats, up to 10 draws
            for _ in range(10 if self._avoid_repeats else 1):
                params = match_config(self.space, sample_config(self.space, self._rng)).values
                if not self._avoid_repeats or not self._repeats(params):
                    break
        assert params is not None
        config = config_from_params(self.space, params)
        self._add(trial_id, params)
        return config

    def on_trial_result(self, trial_id: str, resource: float, value: Value) -> None:
        index = self._ids.get(trial_id)
        if index is None:
            return
        if self._shape:
            value = check_value(_NAME, trial_id, value, self._shape[0])
            self._level(float(resource))[index] = value if is_finite(value) else math.inf
            return
        value = float(value)  # type: ignore[arg-type]
        self._level(float(resource))[index] = value if math.isfinite(value) else math.inf

    def correct_config(self, trial_id: str, config: Mapping[str, Any]) -> bool:
        index = self._ids.get(trial_id)
        if self._encoded is None or index is None or self._status[index] != _PENDING:
            return False
        assert self.space is not None
        match = match_config(self.space, dict(config))
        if not match.fits:
            return False  # not a point of this space (a fork's older config): keep the proposal
        self._matrix[index] = self._encoded.encode(dict(match.values))
        return True

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        index = self._ids.get(trial_id)
        if index is None or self._status[index] != _PENDING:
            raise ended_twice(_NAME, trial_id, suggested=index is not None)
        if self._shape and outcome.value is not None:
            check_value(_NAME, trial_id, outcome.value, self._shape[0])
        self._close(index, outcome)

    # -- records -----------------------------------------------------------------------

    def _add(self, trial_id: str, params: Mapping[str, Any]) -> None:
        assert self._encoded is not None
        n = len(self._ids)
        if n == len(self._status):  # grow by doubling: amortised O(1) per trial
            cap = max(16, 2 * n)
            self._matrix = _grow(self._matrix, cap, np.nan)
            self._status = _grow(self._status, cap, _PENDING)
            self._final_value = _grow(self._final_value, cap, np.nan)
            self._final_resource = _grow(self._final_resource, cap, np.nan)
            self._levels = {r: _grow(v, cap, np.nan) for r, v in self._levels.items()}
        self._matrix[n] = self._encoded.encode(dict(params))
        self._ids[trial_id] = n

    def _level(self, resource: float) -> np.ndarray:
        if resource not in self._levels:
            self._levels[resource] = np.full((len(self._status),) + self._shape, np.nan)
        return self._levels[resource]

    def _close(self, index: int, outcome: Outcome) -> None:
        value = outcome.value
        finite = is_finite(value)
        resource = None if outcome.resource is None else float(outcome.resource)
        full = outcome.full_budget
        if outcome.failed:
            self._status[index] = _FAILED
            return
        self._status[index] = _COMPLETED if full else _STOPPED
        if not finite:
            return  # stopped before reporting: bad at every level, as below r
        if resource is not None:
            level = self._level(resource)
            if np.all(np.isnan(level[index])):
                level[index] = value
        if full:
            self._final_value[index] = value
            self._final_resource[index] = -math.inf if resource is None else resource

    # -- the model ---------------------------------------------------------------------

    def _values_at(self, resource: float, n: int) -> np.ndarray:
        """Each trial's value at a level: reported there, or a full-budget final value; +inf
        for a FAILED trial, also where it reported a value before it failed.

        The level keeps what a FAILED trial reported (a state saved before this rule keeps
        it too), so the rule is applied here, where every reader of a level reads it.
        """
        level = self._levels.get(resource)
        values = level[:n].copy() if level is not None else np.full((n,) + self._shape, np.nan)
        carried = missing_rows(values) & (self._final_resource[:n] < resource)
        values[carried] = self._final_value[:n][carried]
        values[self._status[:n] == _FAILED] = math.inf
        return values

    def _model_level(self) -> tuple[float, np.ndarray] | None:
        """(r, each trial's value at r): the highest level with ``n_startup`` values (BOHB).

        If no level has that many, the level with the most values (the highest of those);
        None if there is no value at all.
        """
        n = len(self._ids)
        levels = sorted(self._levels, reverse=True)
        if not levels and np.any(self._status[:n] == _COMPLETED):
            levels = [math.inf]
        best: tuple[int, float, np.ndarray] | None = None
        for resource in levels:
            values = self._values_at(resource, n)
            count = int(np.count_nonzero(finite_rows(values)))
            if count >= self._n_startup:
                return resource, values
            if best is None or count > best[0]:
                best = (count, resource, values)
        if best is None or best[0] == 0:
            return None
        return best[1], best[2]

    def _split(self, values: np.ndarray | None = None,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(good rows, bad rows) among ``rows`` (default all) at the model's level.

        The split is made among the rows a group is active in, as for a separate search
        over that option: the good group of ``opt[0].momentum`` is the best γ of the trials
        that took option 0, not the few of them that are also best overall. The rule, with
        one or several objectives: ``_tpe_split``.
        """
        n = len(self._ids)
        if values is None:
            level = self._model_level()
            if level is None:
                return None
            values = level[1]
        in_rows = np.ones(n, dtype=bool) if rows is None else rows
        return split(values, in_rows, self._status[:n] == _PENDING, self._gamma, self._max_good)

    def _weights(self, rows: np.ndarray) -> np.ndarray:
        """Linear forgetting in g(x): rows are in trial order, the newest last."""
        k = len(rows)
        if k <= self._n_flat:
            return np.ones(k)
        return np.concatenate([np.linspace(1.0 / k, 1.0, k - self._n_flat), np.ones(self._n_flat)])

    def _bandwidth_at(self, resource: float) -> tuple[float, float]:
        """(β, discrete β) at a level: ``bandwidth`` and ``discrete_bandwidth`` at the full
        budget; below it ``low_fidelity_bandwidth``, or ``discrete_bandwidth`` if wider.

        A level is low-fidelity when it lies below the resource of a full-budget trial, or
        when no trial has run its full budget yet. There, rankings are noisy proxies of the
        final ones (learning curves cross), and wider kernels smooth over that noise.
        """
        n = len(self._ids)
        discrete = self._discrete_bandwidth
        if discrete is None:
            discrete = 0.2 if self.num_objectives == 1 else 0.1
        full = self._final_resource[:n][self._status[:n] == _COMPLETED]
        if len(full) and resource >= np.max(full):
            return self._bandwidth, discrete
        if not len(full) and not np.any(self._status[:n] == _STOPPED):
            return self._bandwidth, discrete
        return self._low_bandwidth, max(self._low_bandwidth, discrete)

    def _sample(self, values: np.ndarray, bandwidth: tuple[float, float]) -> dict[str, Any] | None:
        encoded = self._encoded
        assert encoded is not None
        n = len(self._ids)
        matrix = self._matrix[:n]
        point: dict[str, Any] = {}
        last: tuple[Any, np.ndarray] = (None, np.empty(0))
        for group in encoded.groups:
            if not encoded.is_active(group, point):
                continue
            good_rows, bad_rows = self._split(values, encoded.active_rows(group, matrix))  # type: ignore[misc]
            dims = list(group.dims)
            below = ParzenEstimator(dims, matrix[np.ix_(good_rows, group.columns)],
                                    np.ones(len(good_rows)), self._prior_weight, *bandwidth)
            above = ParzenEstimator(dims, matrix[np.ix_(bad_rows, group.columns)],
                                    self._weights(bad_rows), self._prior_weight, *bandwidth)
            candidates = below.sample(self._rng, self._n_candidates)
            score = below.log_pdf(candidates) - above.log_pdf(candidates)
            order = np.argsort(-score, kind="stable")
            point.update(encoded.decode(group.columns, candidates[order[0]]))
            last = (group, candidates[order])
        if self._avoid_repeats and point:
            return encoded.novel(matrix, point, *last)
        return point

    def _repeats(self, params: dict[str, Any]) -> bool:
        assert self._encoded is not None
        return self._encoded.known(self._matrix[: len(self._ids)], params)

    # -- state -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        n = len(self._ids)
        return {
            "searcher": _NAME,
            "version": _STATE_VERSION,
            "objectives": self.num_objectives,
            "labels": None if self._encoded is None else list(self._encoded.labels),
            "ordinal": self._ordinal,
            "rng": self._rng.bit_generator.state,
            "ids": list(self._ids),
            "matrix": self._matrix[:n].tolist(),
            "status": self._status[:n].tolist(),
            "final_value": self._final_value[:n].tolist(),
            "final_resource": self._final_resource[:n].tolist(),
            "levels": {r: v[:n].tolist() for r, v in self._levels.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("searcher") != _NAME:
            owner = state.get("searcher", "another searcher") if isinstance(state, Mapping) else "?"
            msg = (
                f"{_NAME}: cannot restore a state saved by {owner!r}: a searcher continues "
                "only its own search. Resume with the searcher the experiment started with, or "
                f"start a new experiment with {_NAME}(warm_start=rt.load(path).observations())."
            )
            raise ConfigError(msg)
        check_version(_NAME, state, _STATE_VERSION)
        # A state without the key predates several objectives: it has one.
        shape = () if state.get("objectives", 1) == 1 else (int(state["objectives"]),)
        if self._encoded is not None:
            check_saved_objectives(_NAME, (shape or (1,))[0], self.num_objectives)
        if self._encoded is not None and state["labels"] != self._encoded.labels:
            msg = (
                f"{_NAME}: the saved state has parameters {state['labels']}, but the space "
                f"has {self._encoded.labels}. Restore into a searcher with the same space, or "
                "fork with warm_start=rt.load(path).observations()."
            )
            raise ConfigError(msg)
        # The matrix encodes choices as the saved searcher did (ranks only with ordinal), so
        # the search goes on with that encoding.
        ordinal = bool(state["ordinal"])
        if ordinal != self._ordinal:
            self._ordinal = ordinal
            if self._encoded is not None:
                assert self.space is not None
                self._encoded = EncodedSpace(self.space, ordinal)
        self._rng.bit_generator.state = state["rng"]
        self._ids = {trial_id: i for i, trial_id in enumerate(state["ids"])}
        width = len(state["labels"] or [])
        # A space of constants has no parameters: rows of width 0, as many as there are trials.
        self._matrix = np.array(state["matrix"], dtype=float).reshape(len(state["ids"]), width)
        self._status = np.array(state["status"], dtype=np.int8)
        rows = (len(state["ids"]),) + shape
        self._shape = shape
        self._final_value = np.array(state["final_value"], dtype=float).reshape(rows)
        self._final_resource = np.array(state["final_resource"], dtype=float)
        self._levels = {float(r): np.array(v, dtype=float).reshape(rows) for r, v in state["levels"].items()}
        self._has_history = True


def _grow(array: np.ndarray, cap: int, fill: Any) -> np.ndarray:
    out = np.full((cap,) + array.shape[1:], fill, dtype=array.dtype)
    out[: len(array)] = array
    return out

