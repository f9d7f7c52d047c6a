"""ASHA: asynchronous successive halving, stopping and promotion variants."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any, Mapping

from raytuner.errors import invalid, refuse_unknown_keywords

from ._base import Decision, Scheduler, Value, check_value
from ._rungs import (
    Rung,
    asha_bracket_weights,
    assign_bracket,
    floor_log,
    in_pareto_top,
    nan_to_worst,
    rung_levels,
)
from ._trials import ResourceOrder, Status, restored
from ._validation import (
    check_choice,
    check_int,
    check_max_resource,
    check_min_resource,
    check_reduction_factor,
    check_resource_attr,
    check_restore,
)

_VARIANTS = ("stopping", "promotion")


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving (Li et al., "A System for Massively Parallel
    Hyperparameter Tuning", MLSys 2020), optionally as asynchronous Hyperband.

    Bracket ``s`` has rungs at ``r * eta**(k + s)`` (k = 0, 1, ...) below ``R``. A trial is
    judged once per rung, at its first report with ``resource >= level``; if a report jumps
    over several rungs it is judged at the highest one only. A trial whose resource reaches
    ``R`` gets COMPLETE: it ran its full budget.

    ``variant="stopping"``: a trial reaching a rung continues only if its value is at most
    the ``1/eta`` quantile of the values the rung recorded before it (linear interpolation;
    the first trial at a rung always continues), otherwise STOP. No checkpoints needed.
    This is Ray Tune's ``AsyncHyperBandScheduler`` rule, with three intended differences:
    a trial that skipped rungs is never judged later at the lower rungs it skipped (Ray
    revisits them on later reports); a value that is not finite (NaN, or infinite of either
    sign: values arrive signed to minimise, so a loss diverged to ``-inf`` arrives as
    ``-inf``) ranks worst: it counts as ``+inf`` and stops the trial at any rung but an
    empty one (Ray never stops a NaN and leaves it out of the quantile); and a value exactly equal to the cutoff always continues (Ray's float
    error in the percentile's position stops some such ties).

    ``variant="promotion"`` (the paper's algorithm): a trial PAUSEs at every rung. When a
    slot frees, :meth:`choose_trial_to_resume` promotes the best not-yet-promoted paused
    trial in the current top ``floor(n/eta)`` of the highest rung that has one (across
    brackets, ties to the lower bracket); None tells the controller to start a new trial.
    A better late arrival can push a promoted trial out of that top, so a rung may promote
    more than ``floor(n/eta)`` in all (:meth:`._rungs.Rung.promotion_candidate`). The resumed
    trial continues from its checkpoint with its resource counting on from the rung. A trial
    that would itself be the next promotion gets CONTINUE instead of a PAUSE (the slot it
    frees would go straight back to it).
    :meth:`trials_to_stop` returns nothing until :meth:`on_search_finished`; after it, once
    no trial runs and nothing can be promoted, it returns every paused trial (and the last
    trial to reach a rung then gets STOP rather than a PAUSE nobody would end), until
    :meth:`on_search_reopened` says new trials will come after all.

    **Several objectives** (after :meth:`set_objectives` with k >= 2; values are tuples):
    a rung ranks its trials by the Pareto order of :mod:`raytuner._pareto`: non-dominated
    rank first (Schmucker et al., "Multi-objective multi-fidelity hyperparameter
    optimization with application to fairness", 2021: MO-ASHA), then, inside the last front
    that does not fit, greedy hypervolume contribution (with that front's default reference
    point), then arrival. Stopping: a trial that is the ``n+1``-th to reach a rung continues
    if it is among the first ``floor((n - 1)/eta) + 1`` of that order over the rung's
    values and its own, which is the place of the single-objective cutoff (see
    ``_rungs.pareto_top_size``); a value with an entry that is not finite (NaN, +-inf) stops
    at any rung but an empty one.
    Promotion: the top ``floor(n/eta)`` are the first of the same order. MO-ASHA's own
    tie-break (an epsilon-net) was not taken: the hypervolume rule is the one
    ``TPESearcher`` splits its trials by, and it is invariant to per-objective shifts and
    scales of the values.

    ``brackets > 1`` is asynchronous Hyperband: each trial joins bracket ``s`` in
    0..brackets-1 with probability proportional to Hyperband's bracket size ``n`` for the
    same first rung (81 : 34 : 15 : 8 : 5 for R/r = 81, eta = 3), drawn from a hash of
    ``(seed, trial_id)``. (Ray Tune draws from numpy's global random state with weights
    ``e**len(rungs)``.)

    Args:
        max_resource: ``R``, the resource at which a trial is done.
        min_resource: ``r``, the first rung of bracket 0 (Ray Tune's ``grace_period``).
        reduction_factor: ``eta``; about ``1/eta`` of the trials pass each rung.
        brackets: number of brackets, ``s = 0..brackets-1``; at most
            ``floor(log_eta(R/r)) + 1``.
        variant: ``"stopping"`` or ``"promotion"``.
        resource_attr: the report key holding the resource, or None to count reports.
        seed: seeds the bracket assignment.

    Example:
        >>> from raytuner.schedulers import ASHAScheduler, Decision
        >>> asha = ASHAScheduler(max_resource=9, reduction_factor=3)
        >>> [asha.on_result(t, 1, v) for t, v in [("a", 0.5), ("b", 0.2), ("c", 0.9)]]
        [<Decision.CONTINUE: 'continue'>, <Decision.CONTINUE: 'continue'>, <Decision.STOP: 'stop'>]
        >>> asha.decision_point("a", 1)
        3
        >>> both = ASHAScheduler(max_resource=9, reduction_factor=3)
        >>> both.set_objectives(["val_loss", "latency"])
        >>> [both.on_result(t, 1, v).name for t, v in [("a", (1, 5)), ("b", (0.5, 0.5)), ("c", (2, 2))]]
        ['CONTINUE', 'CONTINUE', 'STOP']
    """

    supports_multi_objective = True

    @refuse_unknown_keywords
    def __init__(
        self,
        max_resource: float,
        min_resource: float = 1,
        reduction_factor: float = 3,
        brackets: int = 1,
        variant: str = "stopping",
        resource_attr: str | None = None,
        seed: int = 0,
    ) -> None:
        owner = type(self).__name__
        check_max_resource(owner, max_resource)
        check_min_resource(owner, min_resource, max_resource)
        check_reduction_factor(owner, reduction_factor)
        check_int(owner, "brackets", brackets, 1, "Pass brackets=1 for plain ASHA.")
        most = floor_log(Fraction(max_resource) / Fraction(min_resource), reduction_factor) + 1
        if brackets > most:
            raise invalid(
                owner, "brackets", brackets,
                f"at most {most}: max_resource={max_resource!r}, min_resource={min_resource!r} "
                f"and reduction_factor={reduction_factor!r} allow floor(log_eta(R/r)) + 1 = {most}",
                f"Pass brackets={most} or fewer, or raise max_resource.",
            )
        check_choice(owner, "variant", variant, _VARIANTS)
        check_resource_attr(owner, resource_attr)
        check_int(owner, "seed", seed, 0, "Pass a non-negative int, e.g. seed=0.")
        self.max_resource = max_resource
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.brackets = brackets
        self.variant = variant
        self.resource_attr = resource_attr
        self.seed = seed
        self._weights = asha_bracket_weights(
            min_resource, max_resource, reduction_factor, brackets
        )
        self._rungs = [
            [Rung(level) for level in rung_levels(min_resource, max_resource, reduction_factor, s)]
            for s in range(brackets)
        ]
        self._bracket: dict[str, int] = {}
        # How many rungs of its bracket each trial has been judged at (the next rung's index).
        self._passed: dict[str, int] = {}
        self._status: dict[str, Status] = {}
        self._resource_order = ResourceOrder(owner, resource_attr)
        self._search_finished = False

    def _config(self) -> dict[str, Any]:
        return {
            "max_resource": self.max_resource,
            "min_resource": self.min_resource,
            "reduction_factor": self.reduction_factor,
            "brackets": self.brackets,
            "variant": self.variant,
            "resource_attr": self.resource_attr,
            "seed": self.seed,
        }

    def milestones(self) -> dict[str, Any]:
        brackets = [[rung.level for rung in rungs] for rungs in self._rungs]
        return {
            "kind": "rungs",
            "levels": sorted({level for levels in brackets for level in levels}),
            "pauses": self.variant == "promotion",
            "max_resource": self.max_resource,
            "brackets": brackets,
        }

    def check_experiment(self, space: Mapping[str, Any] | None, searcher: Any, num_trials: int) -> None:
        """Promotion: warn when too few trials are planned for any of them to reach ``R``.

        A rung promotes from the top ``floor(n/eta)`` of the ``n`` trials that reached it,
        so about ``n / eta**k`` of ``n`` trials reach rung ``k`` and ``n / eta**K`` reach
        ``R`` past the ``K`` rungs below it (more only where later trials keep beating the
        earlier ones at a rung, and at least ``eta`` must reach the top rung for any to
        leave it). With ``n < eta**K`` none is expected to train to ``R``: the sweep ends
        with every trial paused and stopped at a rung. ``K`` is counted in the bracket with
        the fewest rungs, so that ``brackets > 1`` warns only when even that one is short.
        The algorithm is left as the paper has it; this is the Tuner's warning only.
        """
        if self.variant != "promotion":
            return
        total = getattr(searcher, "num_trials", None)
        n = total if isinstance(total, int) and total > 0 else num_trials
        levels = min(self._rungs, key=len)
        k = len(levels)
        needed = Fraction(self.reduction_factor) ** k
        if k == 0 or n >= needed:
            return
        eta, big_r = self.reduction_factor, self.max_resource
        shown = ", ".join(f"{rung.level:g}" for rung in levels)
        bracket = "" if self.brackets == 1 else f" (in its bracket with the fewest rungs, of {self.brackets})"
        most = floor_log(Fraction(big_r) / Fraction(self.min_resource), eta) + 1
        first = levels[0].level
        fewer = (f"a larger min_resource (min_resource={first * eta:g} leaves {k - 1} rung(s): "
                 f"{math.ceil(needed / Fraction(eta)):g} trials)" if k > 1 else "")
        msg = (
            f"{type(self).__name__}(variant='promotion') with {n} trials: a rung promotes from the top "
            f"floor(n/eta) of the n trials that reached it, so about n/eta**k reach rung k, and with K={k} rungs "
            f"below max_resource={big_r!r}{bracket} (at {shown}) and reduction_factor={eta!r}, "
            f"floor({n}/{eta!r}**{k}) = {math.floor(Fraction(n) / needed)}: no trial may train to max_resource "
            f"(more reach it only where later trials keep beating earlier ones). To give some the full budget, run "
            f"num_trials >= eta**K = {math.ceil(needed)}, or pass variant='stopping' (every trial that passes a "
            f"rung trains on), or use fewer rungs: brackets={most} (bracket s starts at min_resource * eta**s, s rungs "
            f"later; the last one at max_resource)"
            f"{', or ' + fewer if fewer else ''}."
        )
        warnings.warn(msg, UserWarning, stacklevel=3)

    def rungs(self, bracket: int = 0) -> list[Rung]:
        """The rungs of one bracket, lowest first (read-only view for tests and logs)."""
        return self._rungs[bracket]

    def bracket_of(self, trial_id: str) -> int:
        """The bracket ``s`` the trial was assigned to."""
        return self._bracket[trial_id]

    def on_trial_add(self, trial_id: str) -> None:
        if trial_id in self._status:
            return
        self._bracket[trial_id] = assign_bracket(trial_id, self.seed, self._weights)
        self._passed[trial_id] = 0
        self._status[trial_id] = Status.RUNNING

    def on_trial_restore(self, trial_id: str, config: Mapping[str, Any], paused: bool,
                         resource: float | None = None) -> None:
        """On resume: paused or running as the trial's folder says (:func:`._trials.restored`)."""
        self.on_trial_add(trial_id)
        self._status[trial_id] = restored(self._status[trial_id], paused)

    def on_result(self, trial_id: str, resource: float, value: Value) -> Decision:
        self.on_trial_add(trial_id)
        if self._status[trial_id] is Status.ENDED:
            return Decision.STOP
        rungs = self._rungs[self._bracket[trial_id]]
        if self._status[trial_id] is Status.PAUSED:
            # Reporting again, so it was promoted from the rung it paused at: a resume
            # replays the reports since its saved state without choose_trial_to_resume.
            if self._passed[trial_id]:
                rungs[self._passed[trial_id] - 1].promoted.add(trial_id)
            self._status[trial_id] = Status.RUNNING
        self._resource_order.advance(trial_id, resource)
        if resource >= self.max_resource:
            self._end(trial_id)
            return Decision.COMPLETE
        passed = reached = self._passed[trial_id]
        # `<=`: a report at exactly the rung's level has earned that rung.
        while reached < len(rungs) and rungs[reached].level <= resource:
            reached += 1
        if reached == passed:
            return Decision.CONTINUE
        self._passed[trial_id] = reached
        rung = rungs[reached - 1]
        if self.num_objectives > 1:
            value = check_value(type(self).__name__, trial_id, value, self.num_objectives)
        else:
            value = nan_to_worst(value)  # type: ignore[arg-type]
        if self.variant == "promotion":
            rung.record(trial_id, value)
            self._status[trial_id] = Status.PAUSED
            return self._pause_or_not(trial_id)
        if self.num_objectives > 1:
            keep = in_pareto_top(list(rung.values.values()), value, self.reduction_factor)  # type: ignore[arg-type]
            rung.record(trial_id, value)
            if keep:
                return Decision.CONTINUE
            self._end(trial_id)
            return Decision.STOP
        cutoff = rung.cutoff(self.reduction_factor)
        rung.record(trial_id, value)
        # `>`, not `>=`: a value tied with the cutoff continues, as in Ray Tune (which stops
        # on reward < cutoff), so a rung of equal values never stops anyone. Not so for a
        # diverged value (NaN or +-inf, all +inf by now), even on a rung of diverged values.
        if cutoff is not None and (value > cutoff or value == math.inf):
            self._end(trial_id)
            return Decision.STOP
        return Decision.CONTINUE

    def decision_point(self, trial_id: str, resource: float) -> float:
        self.on_trial_add(trial_id)
        if self._status[trial_id] is Status.ENDED:
            return resource
        rungs = self._rungs[self._bracket[trial_id]]
        passed = self._passed[trial_id]
        # The lowest rung not yet passed is the next place to decide; past the rungs, R.
        level = rungs[passed].level if passed < len(rungs) else self.max_resource
        return level if level > resource else resource

    def _end(self, trial_id: str) -> None:
        if trial_id in self._status:
            self._status[trial_id] = Status.ENDED

    def on_trial_complete(self, trial_id: str) -> None:
        self._end(trial_id)

    on_trial_error = on_trial_remove = on_trial_complete

    def on_search_finished(self) -> None:
        self._search_finished = True

    def on_search_reopened(self) -> None:
        self._search_finished = False

    def _next_promotion(self) -> tuple[Rung, str] | None:
        def paused(trial_id: str) -> bool:
            return self._status.get(trial_id) is Status.PAUSED

        best = None
        for rungs in self._rungs:
            for rung in reversed(rungs):
                candidate = rung.promotion_candidate(self.reduction_factor, paused)
                if candidate is not None:
                    # `>`: between brackets, the higher rung wins; ties go to the lower s.
                    if best is None or rung.level > best[0].level:
                        best = (rung, candidate)
                    break
        return best

    def _pause_or_not(self, trial_id: str) -> Decision:
        """PAUSE, unless the slot this trial frees would go straight back to it (it is the
        next promotion: CONTINUE) or nothing could ever resume it (STOP)."""
        found = self._next_promotion()
        if found is not None and found[1] == trial_id:
            self._promote(*found)
            return Decision.CONTINUE
        if found is None and self._search_finished and not self._any_running():
            self._end(trial_id)
            return Decision.STOP
        return Decision.PAUSE

    def _any_running(self) -> bool:
        return any(status is Status.RUNNING for status in self._status.values())

    def _promote(self, rung: Rung, trial_id: str) -> None:
        rung.promoted.add(trial_id)
        self._status[trial_id] = Status.RUNNING

    def choose_trial_to_resume(self) -> str | None:
        if self.variant == "stopping":
            return None
        found = self._next_promotion()
        if found is None:
            return None
        rung, trial_id = found
        self._promote(rung, trial_id)
        self._resource_order.resumed(trial_id)
        return trial_id

    def trials_to_stop(self) -> list[str]:
        """Paused trials that can no longer be promoted.

        Empty while new trials may still arrive (any of them could lift a paused trial into
        a rung's top ``floor(n/eta)``) and while a trial runs (it may reach a rung and do
        the same). After :meth:`on_search_finished`, once nothing runs and
        :meth:`choose_trial_to_resume` has nothing to promote, every paused trial is
        returned, once.
        """
        if self.variant == "stopping" or not self._search_finished:
            return []
        if self._any_running():
            return []
        if self._next_promotion() is not None:
            return []
        stuck = [t for t, status in self._status.items() if status is Status.PAUSED]
        for trial_id in stuck:
            self._status[trial_id] = Status.ENDED
        return stuck

    def describe(self) -> str | None:
        """Trials recorded per rung, e.g. ``rungs 1:12 3:4 9:1`` (brackets separated by ``|``)."""
        parts = []
        for rungs in self._rungs:
            filled = [f"{rung.level:g}:{len(rung.values)}" for rung in rungs if rung.values]
            if filled:
                parts.append(" ".join(filled))
        return "rungs " + " | ".join(parts) if parts else None

    def state(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "objectives": self.num_objectives,
            "rungs": [[rung.state() for rung in rungs] for rungs in self._rungs],
            "bracket": dict(self._bracket),
            "passed": dict(self._passed),
            "status": {t: status.value for t, status in self._status.items()},
            "resource_order": self._resource_order.state(),
            "search_finished": self._search_finished,
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_restore(type(self).__name__, state, self._config())
        self._restore_objectives(state)
        self._rungs = [[Rung.from_state(r) for r in rungs] for rungs in state["rungs"]]
        self._bracket = dict(state["bracket"])
        self._passed = dict(state["passed"])
        self._status = {t: Status(v) for t, v in state["status"].items()}
        self._resource_order.restore(state["resource_order"])
        self._search_finished = state["search_finished"]
