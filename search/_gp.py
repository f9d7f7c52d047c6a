"""Bayesian optimisation with a Gaussian-process surrogate and expected improvement."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from raytuner.errors import ProtocolError, refuse_unknown_keywords

from ._acquisition import expected_improvement, maximize
from ._base import STOPPED_POLICIES, Outcome, Searcher, TrialEnd, TrialRecord, close_record, end_trial
from ._base import already_suggested, check_version, not_set_up
from ._checks import int_at_least, make_rng, one_of, real_in
from ._fork import check_warm_start, check_warm_start_objectives, fit_observations
from ._gp_encoding import Encoding
from ._params import match_config
from ._space import check_space, sample_config

_NAME = "GPSearcher"
PENDING_STRATEGIES = ("kriging_believer", "constant_liar")
ACQUISITIONS = ("ei",)
COMFORT_LIMIT = 300
"""Observations beyond which GPSearcher warns that it is slow (see its docstring)."""
_STATE_VERSION = 1


@dataclass
class _Record(TrialRecord):
    config: dict[str, Any]
    end: str = "pending"  # "pending" or a TrialEnd value
    value: float | None = None
    resource: float | None = None
    max_resource: float = math.inf
    point: np.ndarray | None = field(default=None, repr=False, compare=False)


class GPSearcher(Searcher):
    """Gaussian-process Bayesian optimisation with expected improvement (GP-EI).

    The searcher of Jones, Schonlau and Welch ("Efficient global optimization of expensive
    black-box functions", 1998) in the practical form of Snoek, Larochelle and Adams
    ("Practical Bayesian optimization of machine learning algorithms", NeurIPS 2012):

    1. **Encoding.** Each config is a point ``x`` of the unit cube (see
       :mod:`._gp_encoding`): linear and log domains scaled to [0, 1], ints and q-domains
       rounded, categoricals one-hot, conditional parameters fixed at 1/2 when inactive.
    2. **Surrogate.** Targets ``y`` are standardised, ``(y - mean) / std``, and modelled as
       a GP (Rasmussen and Williams, *Gaussian Processes for Machine Learning*, 2006, ch. 2)
       with kernel ``k(x, x') = s^2 Matern_5/2(r) + n^2 [x = x']``, where
       ``r^2 = sum_d (x_d - x'_d)^2 / l_d^2`` has one length scale ``l_d`` per column (ARD),
       ``Matern_5/2(r) = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)`` and ``n^2`` is white
       noise. ``s, l, n`` maximise the log marginal likelihood
       ``-y^T K^-1 y / 2 - log|K| / 2 - N log(2 pi) / 2`` (scikit-learn's
       ``GaussianProcessRegressor``, L-BFGS-B from the initial values and ``n_restarts``
       random ones).
    3. **Acquisition.** The next config maximises expected improvement over ``f*``, the
       best standardised value observed (see :mod:`._acquisition`): EI on
       ``n_candidates`` random points, then L-BFGS-B over the continuous columns from the
       best five.

    **Pending trials** (Ginsbourger, Le Riche and Carraro, "Kriging is well-suited to
    parallelize optimization", 2010). Trials suggested but not finished are added to the
    GP with a fantasy value before EI is computed, keeping the hyperparameters of the fit
    on real data: ``"kriging_believer"`` (default) believes the GP's own mean
    ``mu(x_pending)``, ``"constant_liar"`` lies with the worst value observed (CL-max).
    Either way the posterior variance at a pending point collapses, so its EI and its
    neighbours' drop and parallel workers spread out instead of all proposing the same
    maximiser. As in the paper, a fantasy counts as an observation, also for ``f*``: a
    believed mean below the best real value would otherwise keep an EI of ``f* - mu`` at
    the pending point itself, and be proposed again.

    **How trials end** (values signed to minimise):

    - COMPLETED, or STOPPED at ``resource >= max_resource``: the value is observed.
    - STOPPED earlier (a scheduler cut it; a low-fidelity value), by ``stopped_trials``:
      ``"penalize"`` (default) observes ``max(value, worst full-budget value)``, so a
      low-fidelity loss never looks better than a finished trial and the GP still learns
      that the region was cut; ``"last"`` observes the value as if final (Ray Tune's
      adapters do this); ``"ignore"`` leaves it out.
    - FAILED, or ended without a finite value, whatever the budget and under every
      ``stopped_trials`` policy: observed at the worst value of the others, so the GP steers
      away; left out while nothing else has been observed. A trial that a scheduler STOPPED
      early because it diverged (NaN or inf) is so observed, and so is one stopped before its
      first report (``TPESearcher`` ranks both bad at every level as well): the policies are
      about a low-fidelity *value*, and these trials have none.

    **Startup.** Until ``n_startup`` trials have been observed, configs are drawn at
    random from the space's priors (as :class:`RandomSearcher` does).

    **Defaults**, measured against the alternatives named here (the figures:
    benchmarks/RESULTS.md, section "GPSearcher and OptunaSearcher"): ``n_startup=10``
    (scikit-optimize's choice) against 5 and 20: 20 is worse at every budget; 5 is better
    up to 20 trials but worse at 40, so 10 is kept as the safer middle; pass
    ``n_startup=5`` for budgets of 20 or fewer. ``pending="kriging_believer"`` against
    ``"constant_liar"`` at 4 workers: better on branin, within noise on hartmann6.
    ``xi=0`` is Jones et al.'s and was not tuned.

    **Comfort zone.** Tens to a few hundred trials on spaces of up to about twenty
    columns, mostly continuous. One suggestion refits the GP, which costs ``O(N^3)`` in the
    ``N`` observations per likelihood evaluation: from a fraction of a second per
    suggestion at 50 observations to tens of seconds at 800, where a TPE takes
    milliseconds throughout (benchmarks/RESULTS.md, section "GPSearcher and OptunaSearcher"). A fork's
    old trials that lack a parameter cost an expectation over it in every kernel
    evaluation (``_gp_model``), a few times slower. Beyond :data:`COMFORT_LIMIT` (300)
    observations the searcher warns once: a TPE (``OptunaSearcher``, ``HyperOptSearcher``)
    is then the better tool. Many categorical or conditional parameters also suit TPE
    better: one-hot columns make a poor metric.

    **Determinism.** The same seed and the same results in the same order give the same
    suggestions.

    Args:
        space: The search space; None to use the Tuner's.
        seed: Seed of the random startup, the candidates and the likelihood restarts.
        n_startup: Trials observed before the GP takes over from random search.
        acquisition: ``"ei"``, expected improvement (the only one).
        xi: EI's improvement margin, in standard deviations of the observed values
            (0 as in Jones et al.).
        pending: ``"kriging_believer"`` or ``"constant_liar"``, see above.
        stopped_trials: ``"penalize"``, ``"last"`` or ``"ignore"``, see above.
        n_candidates: Random points scored by EI per suggestion.
        n_restarts: Random restarts of the marginal-likelihood optimisation.
        warm_start: ``(config, value)`` pairs (value signed to minimise; None if failed) or
            ``(config, Outcome)`` from an earlier search, e.g.
            ``rt.load(path).observations()``, fitted to this space by
            :func:`._fork.fit_observations` (removed keys ignored, values outside their new
            domain dropped). A number an old trial lacks (a parameter added since, or a
            value dropped for being outside) is not imputed: the kernel takes its
            expectation under the parameter's prior (``_gp_model``), so the trial informs
            the parameters it has. An old trial that lacks an active *choice* is left out.
            A warning gives the counts. A tuple value (a multi-objective experiment's) is
            refused here, with a ConfigError naming the item.

    Example:
        >>> from raytuner.search import GPSearcher, Outcome, TrialEnd, uniform
        >>> searcher = GPSearcher({"x": uniform(-5, 5)}, n_startup=3, seed=0)
        >>> searcher.setup(None, num_trials=10)
        >>> for i in range(5):
        ...     config = searcher.suggest(str(i))
        ...     searcher.on_trial_complete(str(i), Outcome(TrialEnd.COMPLETED, config["x"] ** 2))
    """

    single_objective_reason = "its expected improvement is over one value"

    @refuse_unknown_keywords
    def __init__(
        self,
        space: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        n_startup: int = 10,
        acquisition: Literal["ei"] = "ei",
        xi: float = 0.0,
        pending: Literal["kriging_believer", "constant_liar"] = "kriging_believer",
        stopped_trials: Literal["penalize", "last", "ignore"] = "penalize",
        n_candidates: int = 1000,
        n_restarts: int = 2,
        warm_start: Iterable[tuple[Mapping[str, Any], float | Outcome | None]] | None = None,
    ) -> None:
        self._seed = seed
        self._rng = make_rng(_NAME, seed)
        self._n_startup = int_at_least(_NAME, "n_startup", n_startup, 2, "10")
        self._acquisition = one_of(_NAME, "acquisition", acquisition, ACQUISITIONS)
        self._xi = real_in(_NAME, "xi", xi, 0.0, math.inf, "0", inclusive=True)
        self._pending = one_of(_NAME, "pending", pending, PENDING_STRATEGIES)
        self._stopped_trials = one_of(_NAME, "stopped_trials", stopped_trials, STOPPED_POLICIES)
        self._n_candidates = int_at_least(_NAME, "n_candidates", n_candidates, 1, "1000")
        self._n_restarts = int_at_least(_NAME, "n_restarts", n_restarts, 0, "2")
        self._warm_start = check_warm_start(_NAME, warm_start)
        # Single-objective: a tuple value (a multi-objective experiment's) is refused now.
        check_warm_start_objectives(_NAME, self._warm_start, 1)
        if space is not None:
            check_space(_NAME, space)
        self.space = space
        self._encoding: Encoding | None = None
        self._records: dict[str, _Record] = {}
        self._restored = False
        self._warned = False

    def _config(self) -> dict[str, Any] | None:
        """The constructor's arguments as JSON data; None with a warm start (then the
        searcher is pickled whole, its old observations with it)."""
        if self._warm_start:
            return None
        return {
            "seed": self._seed,
            "n_startup": self._n_startup,
            "acquisition": self._acquisition,
            "xi": self._xi,
            "pending": self._pending,
            "stopped_trials": self._stopped_trials,
            "n_candidates": self._n_candidates,
            "n_restarts": self._n_restarts,
        }

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        super().setup(space, num_trials, objectives)
        assert self.space is not None  # set by Searcher.setup or it raised
        check_space(_NAME, self.space)
        self._encoding = Encoding(self.space, _NAME)
        if not self._restored:
            self._load_warm_start()

    def _load_warm_start(self) -> None:
        fitted = fit_observations(_NAME, self.space, self._warm_start)  # type: ignore[arg-type]
        left_out = 0
        for index, ((_, outcome), config) in enumerate(zip(fitted.observations, fitted.configs)):
            # The record keeps the old config: its point, partial or whole, is derived from it.
            record = _Record(config=dict(config))
            if self._encoding.encode(record.config) is None:  # type: ignore[union-attr]
                left_out += 1
                continue
            close_record(record, outcome)
            self._records[f"warm_start[{index}]"] = record
        if fitted.report.changed or left_out:
            extra = (
                f" {_NAME} left out {left_out} of the {fitted.report.used} fitted observations "
                "that lack an active choice (the kernel marginalises an absent number, not an "
                "absent choice)."
                if left_out
                else ""
            )
            warnings.warn(fitted.report.message(_NAME) + extra, stacklevel=3)

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self._encoding is None:
            raise not_set_up(_NAME)
        if trial_id in self._records:
            raise already_suggested(_NAME, trial_id)
        points, targets = self._observations()
        if self._encoding.dim == 0 or len(targets) < self._n_startup:
            config = sample_config(self.space, self._rng)  # type: ignore[arg-type]
        else:
            config = self._encoding.decode(self._propose(points, targets))
        self._records[trial_id] = _Record(config=config)
        return config

    def correct_config(self, trial_id: str, config: Mapping[str, Any]) -> bool:
        record = self._records.get(trial_id)
        if self._encoding is None or record is None or record.end != "pending":
            return False
        assert self.space is not None
        match = match_config(self.space, dict(config))
        point = self._encoding.encode(dict(config))
        if not match.fits or point is None:  # not a point of this space: keep the proposal
            return False
        record.config, record.point = dict(config), point
        return True

    def _point(self, record: _Record) -> np.ndarray:
        if record.point is None:
            record.point = self._encoding.encode(record.config)  # type: ignore[union-attr]
            if record.point is None:  # a config the searcher made always fits its space
                raise ProtocolError(f"{_NAME}: config {record.config!r} does not fit the space")
        return record.point

    def _observations(self) -> tuple[np.ndarray, np.ndarray]:
        """The points and the values the GP is fitted to, by the policies above."""
        full, stopped, failed = [], [], []
        for record in self._records.values():
            if record.end == "pending":
                continue
            if record.end == TrialEnd.FAILED.value or record.value is None:
                failed.append(record)  # close_record keeps None for any value not finite
            elif record.full_budget:
                full.append((record, record.value))
            elif self._stopped_trials != "ignore":
                stopped.append(record)
        worst_full = max((v for _, v in full), default=None)
        pairs = list(full)
        for record in stopped:
            value = record.value
            if self._stopped_trials == "penalize" and worst_full is not None:
                value = max(value, worst_full)  # type: ignore[type-var]
            pairs.append((record, value))
        worst = max((v for _, v in pairs), default=None)
        if worst is not None:
            pairs += [(record, worst) for record in failed]
        if not pairs:
            return np.empty((0, self._encoding.dim)), np.empty(0)  # type: ignore[union-attr]
        points = np.array([self._point(record) for record, _ in pairs])
        return points, np.array([v for _, v in pairs], dtype=float)

    def _propose(self, points: np.ndarray, targets: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        # The matrices are at most a few hundred wide: one BLAS thread is fastest, and
        # OpenBLAS's default of one per core made a suggestion several times slower on 2
        # busy cores (benchmarks/RESULTS.md, section "GPSearcher and OptunaSearcher").
        with threadpool_limits(limits=1, user_api="blas"):
            return self._propose_now(points, targets)

    def _propose_now(self, points: np.ndarray, targets: np.ndarray) -> np.ndarray:
        from ._gp_model import fantasize, fit

        encoding = self._encoding
        assert encoding is not None
        if len(targets) > COMFORT_LIMIT and not self._warned:
            self._warned = True
            warnings.warn(
                f"{_NAME} has {len(targets)} observations, beyond its comfort zone of a "
                f"few hundred ({COMFORT_LIMIT}): each suggestion refits the GP at O(N^3) "
                "cost. Consider HyperOptSearcher or OptunaSearcher (TPE) for long searches.",
                stacklevel=3,
            )
        y = (targets - targets.mean()) / (targets.std() or 1.0)
        model = fit(points, y, self._n_restarts, int(self._rng.integers(2**31 - 1)))
        best = float(y.min())
        pending = [self._point(r) for r in self._records.values() if r.end == "pending"]
        if pending:
            lie = None if self._pending == "kriging_believer" else float(y.max())
            model, fantasies = fantasize(model, points, y, np.array(pending), lie)
            # Ginsbourger et al. treat a fantasy as an observation, the incumbent included:
            # otherwise a believed mean below f* keeps its EI of f* - mu and is proposed again.
            best = min(best, float(fantasies.min()))

        def ei(x: np.ndarray) -> np.ndarray:
            mu, sigma = model.predict(x, return_std=True)
            return expected_improvement(mu, sigma, best, self._xi)

        return maximize(ei, encoding.dim, encoding.snap, encoding.free, self._rng, self._n_candidates)

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        end_trial(_NAME, trial_id, self._records.get(trial_id), outcome)

    def state(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "rng": self._rng.bit_generator.state,
            "warned": self._warned,
            "records": {
                trial_id: {k: v for k, v in asdict(r).items() if k != "point"}
                for trial_id, r in self._records.items()
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_version(_NAME, state, _STATE_VERSION)
        self._rng.bit_generator.state = state["rng"]
        self._warned = state["warned"]
        self._records = {trial_id: _Record(**fields) for trial_id, fields in state["records"].items()}
        # The warm start is part of the restored records; setup() must not add it again.
        self._restored = True


