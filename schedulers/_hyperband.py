"""Synchronous Hyperband: successive halving in brackets, with pause and resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from raytuner.errors import refuse_unknown_keywords

from ._base import Decision, Scheduler, Value, check_value
from ._rungs import HyperbandBracket, hyperband_brackets, nan_to_worst, num_promotable, pareto_ranked
from ._trials import ResourceOrder, Status, restored
from ._validation import (
    check_max_resource,
    check_reduction_factor,
    check_resource_attr,
    check_restore,
)


@dataclass
class _Bracket:
    """One running bracket: which round it is in and who reached that round's milestone."""

    plan: HyperbandBracket
    trials: list[str] = field(default_factory=list)
    closed: bool = False
    """No trial joins any more: it is full, or the search finished."""
    round: int = 0
    entered: list[str] = field(default_factory=list)
    """The trials of the current round."""
    reached: dict[str, Any] = field(default_factory=dict)
    """Trials paused at the current milestone -> their value there, in arrival order."""

    def state(self) -> dict[str, Any]:
        return {
            "s": self.plan.s,
            "trials": list(self.trials),
            "closed": self.closed,
            "round": self.round,
            "entered": list(self.entered),
            "reached": list(self.reached.items()),
        }


class HyperbandScheduler(Scheduler):
    """Synchronous Hyperband (Li et al., "Hyperband: A Novel Bandit-Based Approach to
    Hyperparameter Optimization", JMLR 18(185), 2018).

    Brackets ``s = s_max..0`` with ``s_max = floor(log_eta(R))`` hold
    ``n = ceil((s_max + 1) eta**s / (s + 1))`` trials starting at ``r = R eta**-s``: for
    ``R = 81, eta = 3``, 81, 34, 15, 8 and 5 trials starting at 1, 3, 9, 27 and 81. New
    trials fill the brackets in that order (the paper's outer loop, largest ``n`` first),
    then the cycle repeats. Inside a bracket, round ``i`` runs its trials to
    ``r_i = r eta**i``, where each PAUSEs. When every trial of the round has reached
    ``r_i`` or ended, the best ``max(1, floor(m/eta))`` of the ``m`` trials that entered
    the round resume (through :meth:`choose_trial_to_resume`, oldest bracket first) and
    count on towards ``r_{i+1}``; the rest are handed to the controller through
    :meth:`trials_to_stop`. The trial whose report closes the round gets CONTINUE or STOP
    at once instead of a PAUSE. A round is never judged while its bracket can still take new
    trials; :meth:`on_search_finished` closes the partly filled bracket, so nothing waits
    forever (it stays closed if :meth:`on_search_reopened` follows: the new trials fill
    the next bracket of the plan). A trial that reaches ``R`` gets COMPLETE.

    **Several objectives** (after :meth:`set_objectives` with k >= 2; values are tuples):
    "the best" of a round are the first of the Pareto order of :mod:`raytuner._pareto`
    (non-dominated rank, then greedy hypervolume contribution inside a front, then arrival),
    as in :class:`ASHAScheduler`.

    Unlike Ray Tune's ``HyperBandScheduler``, survivors are ``floor(m/eta)`` (the paper's
    rule) rather than ``ceil``; the ``max(1, .)`` only matters in partly filled brackets,
    whose best trial still gets the full budget.

    ``trials_to_stop()`` returns the losers of each finished round once (drained on read);
    the controller ends them as if they had got STOP.

    Args:
        max_resource: ``R``, in units of the smallest resource worth judging a trial at.
        reduction_factor: ``eta``.
        resource_attr: the report key holding the resource, or None to count reports.

    Example:
        >>> from raytuner.schedulers import HyperbandScheduler
        >>> hb = HyperbandScheduler(max_resource=9, reduction_factor=3)
        >>> [(b.n, b.r) for b in hb.plan()]
        [(9, 1), (5, 3), (3, 9)]
        >>> hb.on_trial_add("a"); hb.decision_point("a", 0)
        1
    """

    supports_multi_objective = True

    @refuse_unknown_keywords
    def __init__(
        self, max_resource: float, reduction_factor: float = 3, resource_attr: str | None = None
    ) -> None:
        owner = type(self).__name__
        check_max_resource(owner, max_resource)
        check_reduction_factor(owner, reduction_factor)
        check_resource_attr(owner, resource_attr)
        self.max_resource = max_resource
        self.reduction_factor = reduction_factor
        self.resource_attr = resource_attr
        self._plans = hyperband_brackets(max_resource, reduction_factor)
        self._brackets: list[_Bracket] = []
        self._of: dict[str, int] = {}
        self._status: dict[str, Status] = {}
        self._to_resume: list[str] = []
        self._to_stop: list[str] = []
        self._resource_order = ResourceOrder(owner, resource_attr)
        self._search_finished = False

    def _config(self) -> dict[str, Any]:
        return {
            "max_resource": self.max_resource,
            "reduction_factor": self.reduction_factor,
            "resource_attr": self.resource_attr,
        }

    def plan(self) -> list[HyperbandBracket]:
        """The brackets of one Hyperband iteration, in the order trials fill them."""
        return list(self._plans)

    def milestones(self) -> dict[str, Any]:
        return {
            "kind": "brackets",
            "levels": sorted({r for plan in self._plans for _, r in plan.rounds if r < self.max_resource}),
            "pauses": True,
            "max_resource": self.max_resource,
            "brackets": [
                {"s": plan.s, "n": plan.n, "r": plan.r, "rounds": [list(pair) for pair in plan.rounds]}
                for plan in self._plans
            ],
        }

    def bracket_of(self, trial_id: str) -> tuple[int, int]:
        """``(k, s)``: the trial joined the k-th bracket opened, which has index ``s``."""
        k = self._of[trial_id]
        return k, self._brackets[k].plan.s

    def on_trial_add(self, trial_id: str) -> None:
        if trial_id in self._status:
            return
        if not self._brackets or self._brackets[-1].closed:
            plan = self._plans[len(self._brackets) % len(self._plans)]
            self._brackets.append(_Bracket(plan))
        bracket = self._brackets[-1]
        bracket.trials.append(trial_id)
        bracket.entered.append(trial_id)
        # A trial added after on_search_finished gets a bracket of its own, closed at once.
        bracket.closed = len(bracket.trials) == bracket.plan.n or self._search_finished
        self._of[trial_id] = len(self._brackets) - 1
        self._status[trial_id] = Status.RUNNING

    def on_trial_restore(self, trial_id: str, config: Mapping[str, Any], paused: bool,
                         resource: float | None = None) -> None:
        """On resume: paused or running as the trial's folder says (:func:`._trials.restored`); the
        round may close now."""
        self.on_trial_add(trial_id)
        self._status[trial_id] = restored(self._status[trial_id], paused)
        if not paused and trial_id in self._to_resume:
            # A winner the saved state holds as still to resume runs, as its folder says:
            # it was resumed after that state was saved (choose_trial_to_resume is not
            # replayed), or its pause never reached its record. Left in the list, its next
            # milestone would wave it on as that promotion.
            self._to_resume.remove(trial_id)
        self._advance(self._brackets[self._of[trial_id]])

    def _milestone(self, bracket: _Bracket) -> float:
        """Where the current round pauses; ``R`` in the last round, which runs to the end."""
        if bracket.round == bracket.plan.s:
            return self.max_resource
        return bracket.plan.rounds[bracket.round][1]

    def on_result(self, trial_id: str, resource: float, value: Value) -> Decision:
        self.on_trial_add(trial_id)
        if self._status[trial_id] is Status.ENDED:
            return Decision.STOP
        if self._status[trial_id] is Status.PAUSED:
            # Reporting again, so it was resumed: a resume replays the reports since its
            # saved state without asking choose_trial_to_resume in between.
            if trial_id in self._to_resume:
                self._to_resume.remove(trial_id)
            self._status[trial_id] = Status.RUNNING
        self._resource_order.advance(trial_id, resource)
        bracket = self._brackets[self._of[trial_id]]
        if resource >= self.max_resource:
            self._end(trial_id)
            return Decision.COMPLETE
        # `<`: a report at exactly the milestone has reached it and pauses.
        if resource < self._milestone(bracket):
            return Decision.CONTINUE
        if self.num_objectives > 1:
            bracket.reached[trial_id] = check_value(type(self).__name__, trial_id, value, self.num_objectives)
        else:
            bracket.reached[trial_id] = nan_to_worst(value)  # type: ignore[arg-type]
        self._status[trial_id] = Status.PAUSED
        self._advance(bracket)
        # The report that closes a round settles this trial at once: no pause for a trial
        # that would be stopped or resumed right after.
        if trial_id in self._to_stop:
            self._to_stop.remove(trial_id)
            return Decision.STOP
        if trial_id in self._to_resume:
            self._to_resume.remove(trial_id)
            self._status[trial_id] = Status.RUNNING
            return Decision.CONTINUE
        return Decision.PAUSE

    def decision_point(self, trial_id: str, resource: float) -> float:
        self.on_trial_add(trial_id)
        if self._status[trial_id] is Status.ENDED:
            return resource
        level = self._milestone(self._brackets[self._of[trial_id]])
        return level if level > resource else resource

    def _advance(self, bracket: _Bracket) -> None:
        """Close the round once every trial in it reached the milestone or ended."""
        if not bracket.closed or bracket.round == bracket.plan.s:
            return
        if any(
            t not in bracket.reached and self._status[t] is not Status.ENDED
            for t in bracket.entered
        ):
            return
        # Every trial at the milestone and not ended: paused there, or (after a resume, one
        # whose pause the last run had decided but not recorded) running again below it,
        # which a loss then stops at its next report.
        arrived = {t: v for t, v in bracket.reached.items() if self._status[t] is not Status.ENDED}
        if self.num_objectives > 1:
            ranked = pareto_ranked(arrived)
        else:
            ranked = sorted(arrived, key=arrived.__getitem__)
        keep = max(1, num_promotable(len(bracket.entered), self.reduction_factor))
        winners, losers = ranked[:keep], ranked[keep:]
        self._to_stop.extend(t for t in losers if self._status[t] is Status.PAUSED)  # running ones: at their report
        for trial_id in losers:
            self._status[trial_id] = Status.ENDED
        self._to_resume.extend(winners)
        bracket.round += 1
        bracket.entered = winners
        bracket.reached = {}

    def _end(self, trial_id: str) -> None:
        if self._status.get(trial_id, Status.ENDED) is Status.ENDED:
            return
        self._status[trial_id] = Status.ENDED
        self._advance(self._brackets[self._of[trial_id]])

    def on_trial_complete(self, trial_id: str) -> None:
        self._end(trial_id)

    on_trial_error = on_trial_remove = on_trial_complete

    def on_search_finished(self) -> None:
        self._search_finished = True
        if self._brackets and not self._brackets[-1].closed:
            self._brackets[-1].closed = True
            self._advance(self._brackets[-1])

    def on_search_reopened(self) -> None:
        # The bracket closed by on_search_finished stays closed (its round may be judged,
        # its losers stopped): new trials fill the next bracket of the plan, from empty.
        self._search_finished = False

    def choose_trial_to_resume(self) -> str | None:
        while self._to_resume:
            trial_id = self._to_resume.pop(0)
            # Skip winners that failed or were removed while they waited.
            if self._status[trial_id] is Status.PAUSED:
                self._status[trial_id] = Status.RUNNING
                self._resource_order.resumed(trial_id)
                return trial_id
        return None

    def trials_to_stop(self) -> list[str]:
        """Losers of finished rounds, paused and never to be resumed; each returned once."""
        stop, self._to_stop = self._to_stop, []
        return stop

    def describe(self) -> str | None:
        """The open brackets: ``bracket s=2 round 1/3: 1/2 at milestone``."""
        parts = []
        for bracket in self._brackets:
            if bracket.round > bracket.plan.s:
                continue
            waiting = len(bracket.entered) or len(bracket.trials)
            parts.append(f"bracket s={bracket.plan.s} round {bracket.round + 1}/{bracket.plan.s + 1}: "
                         f"{len(bracket.reached)}/{waiting} at milestone")
        return "; ".join(parts[-2:]) or None

    def state(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "objectives": self.num_objectives,
            "brackets": [b.state() for b in self._brackets],
            "of": dict(self._of),
            "status": {t: status.value for t, status in self._status.items()},
            "to_resume": list(self._to_resume),
            "to_stop": list(self._to_stop),
            "resource_order": self._resource_order.state(),
            "search_finished": self._search_finished,
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_restore(type(self).__name__, state, self._config())
        self._restore_objectives(state)
        plans = {plan.s: plan for plan in self._plans}
        self._brackets = []
        for saved in state["brackets"]:
            bracket = _Bracket(
                plans[saved["s"]],
                trials=list(saved["trials"]),
                closed=saved["closed"],
                round=saved["round"],
                entered=list(saved["entered"]),
                reached={t: tuple(v) if isinstance(v, list) else v for t, v in saved["reached"]},
            )
            self._brackets.append(bracket)
        self._of = dict(state["of"])
        self._status = {t: Status(v) for t, v in state["status"].items()}
        self._to_resume = list(state["to_resume"])
        self._to_stop = list(state["to_stop"])
        self._resource_order.restore(state["resource_order"])
        self._search_finished = state["search_finished"]
