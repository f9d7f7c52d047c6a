"""HyperOpt's Tree-structured Parzen Estimator, driven one trial at a time."""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hyperopt import JOB_STATE_DONE, JOB_STATE_NEW, Domain, Trials, rand, tpe
from hyperopt.exceptions import DuplicateLabel

from raytuner.errors import ConfigError, invalid, refuse_unknown_keywords

from ._base import STOPPED_POLICIES, Outcome, Searcher, TrialEnd, TrialRecord, close_record, end_trial
from ._base import already_suggested, check_version, not_set_up
from ._checks import int_at_least, make_rng, one_of, real_in
from ._domains import plain
from ._fork import check_warm_start, check_warm_start_objectives, fit_observations
from ._hyperopt_space import NoFit, config_from_vals, to_hyperopt, unknown_keys, vals_from_config
from ._space import check_space, has_hyperopt_expr

_NAME = "HyperOptSearcher"
_STATE_VERSION = 1


@dataclass
class _Record(TrialRecord):
    """What the searcher remembers of one trial; the source of truth for hyperopt's docs."""

    tid: int
    vals: dict[str, Any]
    end: str = "pending"  # "pending" or a TrialEnd value
    value: float | None = None
    resource: float | None = None
    max_resource: float = math.inf
    reported: bool = False  # any on_trial_result yet: then it is running or paused


def _objective(config: Any) -> None:
    raise RuntimeError("HyperOptSearcher never evaluates through hyperopt")  # pragma: no cover


class HyperOptSearcher(Searcher):
    """Tree-structured Parzen Estimator (TPE) search through hyperopt's ask/tell API.

    TPE (Bergstra, Bardenet, Bengio and Kégl, "Algorithms for Hyper-Parameter Optimization",
    NeurIPS 2011) splits the finished trials at the γ-quantile of their losses, fits a density
    l(x) to the good ones and g(x) to the rest, and proposes the candidate, out of
    ``n_ei_candidates`` drawn from l(x), that maximises l(x)/g(x). Only the *order* of the
    losses matters to it, which is what the ``stopped_trials`` policy relies on.

    Each :meth:`suggest` asks hyperopt for one config (``tpe.suggest`` on a ``Trials`` rebuilt
    from this searcher's records; never ``fmin``), so trials run asynchronously and TPE
    learns from each result as it lands.

    **Startup.** The first ``n_startup`` configs are drawn at random (hyperopt's
    ``rand.suggest``, seeded). The count is of *finished* trials: hyperopt's own count
    includes trials still running, so with 8 workers it would hand over to TPE with only
    12 of 20 results in. Here random sampling goes on until ``n_startup`` trials have ended.

    **Against Ray Tune's HyperOptSearch.** The same space gives the same hyperopt labels and
    distributions, and the same history and seed give the same suggestion. Ray Tune's adapter
    differs in three defaults only: it feeds a stopped trial's last value (``"last"``), counts
    running trials towards start-up, and draws each suggestion's seed from a
    ``RandomState``. With those three matched, benchmarks/search_sim.py reproduces Ray Tune's
    runs exactly (tests/search/test_search_sim.py); with ours, the results are within noise
    of Ray Tune's (benchmarks/RESULTS.md, section "HyperOptSearcher under ASHA against Ray Tune").

    **Pending trials.** Running trials enter TPE as hyperopt does it, with an infinite loss
    (so they weigh on g(x) and the next suggestion tends away from them). With
    ``pending_limit="auto"`` :meth:`suggest` returns None ("not now") while the number of
    running trials that have not reported yet is at least ``max(1, n_startup, finished)``:
    during startup at most ``n_startup`` random configs are in flight, and afterwards at
    least half of what TPE sees are real results. With the usual few workers the limit never
    binds; with many it keeps TPE from degenerating into random search, the common complaint
    when every config of a Ray Tune run was sampled up front. Trials that have reported (and
    so paused ones, under Hyperband or promotion ASHA) do not count, so the searcher never
    waits on a trial that is not running.

    **How trials end** (values are signed to minimize):

    - COMPLETED: the final value. Without a finite value it counts as FAILED.
    - FAILED: kept with an infinite loss (hyperopt's ``status: fail``), so TPE puts it in
      g(x) and avoids the region; it is not dropped.
    - STOPPED at ``resource >= max_resource``: a full-budget result, as COMPLETED (and as
      FAILED without a finite value).
    - STOPPED earlier (a scheduler such as ASHA cut it): a low-fidelity value, handled by
      ``stopped_trials``:

      * ``"penalize"`` (default): ranked behind every full-budget result and ahead of
        failures; among stopped trials, those that reached a larger resource rank first, then
        by value. The value TPE sees is a surrogate with that order (recomputed before each
        suggestion), so a low-fidelity loss never counts as a full-budget one, yet TPE still
        learns what the scheduler learnt. It is the default because it is the only policy
        that keeps both the design rule and ASHA's information; the benchmarks give no reason
        to change it: under ASHA on benchmarks/_synthetic.py "penalize" and "last" are within
        noise of each other, also with late overfitting and at twice the budget
        (benchmarks/RESULTS.md, section "HyperOptSearcher under ASHA against Ray Tune", `stopped_trials` policy).
      * ``"last"``: the last value as if it were final (Ray Tune's ``HyperOptSearch``).
        Cheap, but with learning curves that rise late (overfitting) an early stop can look
        better than a full run.
      * ``"ignore"``: TPE forgets the trial.

      A STOPPED trial without a finite value counts as FAILED under every policy: one that
      diverged (a NaN or inf loss, which ASHA stops at its first rung) and one stopped before
      its first report alike, as ``TPESearcher`` ranks both bad at every level; the policies
      are about a low-fidelity *value*, and these trials have none. A trial stopped while
      paused arrives the same way, so every suggested trial's record is closed.

    Args:
        space: The search space (raytuner domains and/or hyperopt ``hp`` expressions); None
            to use the Tuner's.
        n_startup: Finished trials before TPE takes over from random search.
        gamma: γ, the quantile that splits good from bad trials (hyperopt's ``gamma``; the
            good group holds ``ceil(γ * sqrt(n))`` trials).
        n_ei_candidates: Candidates drawn from l(x) per suggestion.
        seed: Seed; the same seed and the same results in the same order give the same
            suggestions.
        points_to_evaluate: Full configs to try first, in order (they count as trials).
        warm_start: ``(config, value)`` pairs from an earlier search, values signed to
            minimize (None for a failed trial), or ``(config, Outcome)`` to keep how it
            ended. They seed TPE's history and count towards ``n_startup``. A changed
            space is handled as ``search/_fork.py`` documents, with a warning that gives
            the counts: a removed parameter is ignored; an added one is left out of the
            old docs (hyperopt models each label on its own, from the docs that have it,
            so nothing is imputed); a value outside its narrowed domain is dropped for
            that parameter only. In a space with native hyperopt expressions, a config
            that does not fit whole is skipped. A tuple value (a multi-objective
            experiment's) is refused here, with a ConfigError naming the item.
        stopped_trials: ``"penalize"``, ``"last"`` or ``"ignore"``, see above.
        pending_limit: ``"auto"`` (see above), an int cap on running trials that have not
            reported yet, or None for no limit.

    Example:
        >>> from raytuner.search import HyperOptSearcher, Outcome, TrialEnd, uniform
        >>> searcher = HyperOptSearcher({"x": uniform(-5, 5)}, n_startup=3, seed=0)
        >>> searcher.setup(None, num_trials=10)
        >>> config = searcher.suggest("00000")
        >>> searcher.on_trial_complete("00000", Outcome(TrialEnd.COMPLETED, config["x"] ** 2))
    """

    single_objective_reason = "hyperopt's TPE ranks one loss"

    @refuse_unknown_keywords
    def __init__(
        self,
        space: Mapping[str, Any] | None = None,
        *,
        n_startup: int = 20,
        gamma: float = 0.25,
        n_ei_candidates: int = 24,
        seed: int | None = None,
        points_to_evaluate: Iterable[Mapping[str, Any]] | None = None,
        warm_start: Iterable[tuple[Mapping[str, Any], float | Outcome | None]] | None = None,
        stopped_trials: Literal["penalize", "last", "ignore"] = "penalize",
        pending_limit: int | Literal["auto"] | None = "auto",
    ) -> None:
        self._n_startup = int_at_least(_NAME, "n_startup", n_startup, 0, "20")
        self._gamma = real_in(_NAME, "gamma", gamma, 0.0, 1.0, "0.25 (hyperopt's default)")
        self._n_ei_candidates = int_at_least(_NAME, "n_ei_candidates", n_ei_candidates, 1,
                                             "24 (hyperopt's default)")
        self._stopped_trials = one_of(_NAME, "stopped_trials", stopped_trials, STOPPED_POLICIES)
        if pending_limit not in ("auto", None) and (
            isinstance(pending_limit, bool)
            or not isinstance(pending_limit, numbers.Integral)
            or pending_limit < 1
        ):
            raise invalid(_NAME, "pending_limit", pending_limit,
                          "'auto', None (no limit) or an int >= 1", "Pass pending_limit='auto'.")
        self._pending_limit = pending_limit
        self._rng = make_rng(_NAME, seed)
        self._seed = seed
        self._points = _check_points(points_to_evaluate)
        self._warm_start = check_warm_start(_NAME, warm_start)
        # Single-objective: a tuple value (a multi-objective experiment's) is refused now.
        check_warm_start_objectives(_NAME, self._warm_start, 1)
        if space is not None:
            check_space(_NAME, space, native=True)
        self.space = space

        self._domain: Domain | None = None
        self._labels: list[str] = []
        self._point_vals: list[dict[str, Any]] = []
        self._records: dict[str, _Record] = {}
        self._next_tid = 0
        self._points_used = 0
        self._restored = False

    def _config(self) -> dict[str, Any]:
        return {
            "n_startup": self._n_startup,
            "gamma": self._gamma,
            "n_ei_candidates": self._n_ei_candidates,
            "seed": self._seed,
            "points_to_evaluate": [dict(point) for point in self._points],
            "warm_start": [[dict(config), _outcome_as_data(outcome)] for config, outcome in self._warm_start],
            "stopped_trials": self._stopped_trials,
            "pending_limit": self._pending_limit,
        }

    @classmethod
    def _from_config(cls, space: Mapping[str, Any] | None, args: dict[str, Any]) -> HyperOptSearcher:
        warm_start = [
            (config, Outcome(**{**result, "end": TrialEnd(result["end"])}) if isinstance(result, dict) else result)
            for config, result in args.pop("warm_start")
        ]
        return cls(space, warm_start=warm_start, **args)

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        super().setup(space, num_trials, objectives)
        assert self.space is not None  # set by Searcher.setup or it raised
        check_space(_NAME, self.space, native=True)
        try:
            self._domain = Domain(_objective, to_hyperopt(self.space))
        except DuplicateLabel as error:
            msg = (
                f"{_NAME}: the hyperopt label {error.args[0]!r} is used twice in the "
                "space. Give each hp expression a unique label."
            )
            raise ConfigError(msg) from error
        self._labels = list(self._domain.params)
        self._point_vals = []
        for index, point in enumerate(self._points):
            try:
                self._point_vals.append(vals_from_config(self.space, point))
            except NoFit as error:
                msg = (
                    f"{_NAME}: points_to_evaluate[{index}] does not fit the space: "
                    f"{error}. Give a full config with values inside their domains."
                )
                raise ConfigError(msg) from None
            unknown = unknown_keys(self.space, point)
            if unknown:
                msg = (
                    f"{_NAME}: points_to_evaluate[{index}] has keys the space lacks: "
                    f"{', '.join(map(repr, unknown))}; hyperopt would drop them and run the trial without "
                    "them. Remove them or add them to the space; under a choice of dicts, give only the "
                    "keys of the option the point takes."
                )
                raise ConfigError(msg)
        if not self._restored:
            self._load_warm_start()

    def _load_warm_start(self) -> None:
        if has_hyperopt_expr(self.space):
            self._load_native_warm_start()
            return
        # hyperopt's TPE splits every label's observations by the losses of all trials
        # (tpe.ap_split_trials) and models each label on its own, so a doc without a
        # label is simply not an observation of it, as for an inactive conditional
        # parameter. A partial config therefore needs no imputed value: drawing the added
        # parameter from its prior would attach a loss to a value that was never tried.
        fit = fit_observations(_NAME, self.space, self._warm_start)  # type: ignore[arg-type]
        if fit.report.changed:
            warnings.warn(fit.report.message(_NAME), stacklevel=4)
        for index, (vals, outcome) in enumerate(fit.observations):
            self._add_finished(f"warm_start[{index}]", vals, outcome)

    def _load_native_warm_start(self) -> None:
        skipped: list[str] = []
        for index, (config, outcome) in enumerate(self._warm_start):
            try:
                vals = vals_from_config(self.space, config)  # type: ignore[arg-type]
            except NoFit as error:
                skipped.append(f"warm_start[{index}]: {error}")
                continue
            self._add_finished(f"warm_start[{index}]", vals, outcome)
        if skipped:
            warnings.warn(
                f"{_NAME} skipped {len(skipped)} of {len(self._warm_start)} warm-start "
                f"configs that do not fit the space, e.g. {skipped[0]}.",
                stacklevel=4,
            )

    def _add_finished(self, trial_id: str, vals: dict[str, Any], outcome: Outcome) -> None:
        record = _Record(tid=self._next_tid, vals=vals)
        close_record(record, outcome)
        self._records[trial_id] = record
        self._next_tid += 1

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._domain is None:
            raise not_set_up(_NAME)
        if trial_id in self._records:
            raise already_suggested(_NAME, trial_id)
        # Only trials that have not reported count: they are surely running (a paused trial
        # has reported), so waiting on them can never wait forever.
        pending = sum(r.end == "pending" and not r.reported for r in self._records.values())
        finished = len(self._losses())
        if self._pending_limit == "auto":
            limit = max(1, self._n_startup, finished)
        else:
            limit = self._pending_limit
        if limit is not None and pending >= limit:
            return None

        tid = self._next_tid
        seed = int(self._rng.integers(2**31 - 1))
        if self._points_used < len(self._point_vals):
            vals = self._point_vals[self._points_used]
            self._points_used += 1
        else:
            if finished < self._n_startup:
                algo = rand.suggest
            else:
                # n_startup_jobs=0: the startup phase was decided above, on finished trials.
                algo = functools.partial(
                    tpe.suggest,
                    n_startup_jobs=0,
                    gamma=self._gamma,
                    n_EI_candidates=self._n_ei_candidates,
                    verbose=False,
                )
            (doc,) = algo([tid], self._domain, self._trials(), seed)
            vals = {label: plain(v[0]) for label, v in doc["misc"]["vals"].items() if len(v)}
        self._next_tid += 1
        self._records[trial_id] = _Record(tid=tid, vals=vals)
        return config_from_vals(self.space, vals)  # type: ignore[arg-type]

    def on_trial_result(self, trial_id: str, resource: float, value: float) -> None:
        record = self._records.get(trial_id)
        if record is not None:
            record.reported = True

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        end_trial(_NAME, trial_id, self._records.get(trial_id), outcome)

    def correct_config(self, trial_id: str, config: Mapping[str, Any]) -> bool:
        record = self._records.get(trial_id)
        if self.space is None or record is None or record.end != "pending":
            return False
        try:
            record.vals = vals_from_config(self.space, config)  # hyperopt's docs are rebuilt from the records
        except NoFit:
            return False  # not a point of this space: keep the proposal
        return True

    def _losses(self) -> dict[int, float]:
        """The loss TPE sees per finished trial id (inf = failed), by the stopped policy."""
        losses: dict[int, float] = {}
        stopped: list[_Record] = []
        for record in self._records.values():
            if record.end == "pending":
                continue
            if record.end == TrialEnd.FAILED.value or record.value is None:
                losses[record.tid] = math.inf  # close_record keeps None for any value not finite
            elif record.full_budget:
                losses[record.tid] = record.value
            elif self._stopped_trials != "ignore":
                stopped.append(record)
        if self._stopped_trials == "last":
            losses.update((record.tid, record.value) for record in stopped)  # type: ignore[misc]
        elif stopped:
            full = [loss for loss in losses.values() if math.isfinite(loss)]
            base = max(full, default=0.0)
            step = max(1.0, abs(base))
            # TPE uses only the order of losses, so a surrogate that ranks the stopped
            # trials after every full-budget one, deeper runs first, is all it needs.
            stopped.sort(key=lambda r: (-(r.resource or 0.0), r.value, r.tid))
            for rank, record in enumerate(stopped, start=1):
                losses[record.tid] = base + rank * step
        return losses

    def _trials(self) -> Trials:
        """A hyperopt ``Trials`` rebuilt from the records: pending, done and failed docs."""
        assert self._domain is not None
        losses = self._losses()
        docs = []
        for record in self._records.values():
            if record.end == "pending":
                state, result = JOB_STATE_NEW, {"status": "new"}
            elif record.tid not in losses:
                continue  # a low-fidelity value under the "ignore" policy
            elif math.isinf(losses[record.tid]):
                state, result = JOB_STATE_DONE, {"status": "fail"}
            else:
                state, result = JOB_STATE_DONE, {"status": "ok", "loss": losses[record.tid]}
            misc = {
                "tid": record.tid,
                "cmd": self._domain.cmd,
                "workdir": self._domain.workdir,
                "idxs": {k: [record.tid] if k in record.vals else [] for k in self._labels},
                "vals": {k: [record.vals[k]] if k in record.vals else [] for k in self._labels},
            }
            docs.append(
                {
                    "state": state,
                    "tid": record.tid,
                    "spec": None,
                    "result": result,
                    "misc": misc,
                    "exp_key": None,
                    "owner": None,
                    "version": 0,
                    "book_time": None,
                    "refresh_time": None,
                }
            )
        trials = Trials()
        trials.insert_trial_docs(docs)
        trials.refresh()
        return trials

    def state(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "rng": self._rng.bit_generator.state,
            "next_tid": self._next_tid,
            "points_used": self._points_used,
            "records": {trial_id: asdict(record) for trial_id, record in self._records.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_version(_NAME, state, _STATE_VERSION)
        self._rng.bit_generator.state = state["rng"]
        self._next_tid = state["next_tid"]
        self._points_used = state["points_used"]
        self._records = {
            trial_id: _Record(**{**fields, "vals": dict(fields["vals"])})
            for trial_id, fields in state["records"].items()
        }
        # The warm start is part of the restored records; setup() must not add it again.
        self._restored = True


def _check_points(points: Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    points = list(points or [])
    for index, point in enumerate(points):
        if not isinstance(point, Mapping):
            msg = (
                f"{_NAME}: points_to_evaluate[{index}] is {point!r}, but must be a "
                "config dict such as {'lr': 0.01}."
            )
            raise ConfigError(msg)
    return points


def _outcome_as_data(outcome: Outcome) -> Any:
    """An outcome as JSON data, as short as the user could have given it: a number for a
    plain completed trial, None for a plain failed one, else the Outcome's fields."""
    if outcome == Outcome(TrialEnd.COMPLETED, outcome.value):
        return outcome.value
    if outcome == Outcome(TrialEnd.FAILED):
        return None
    return {**asdict(outcome), "end": outcome.end.value}
