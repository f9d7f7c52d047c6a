"""Population based training: trials that fall behind restart from better ones, perturbed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raytuner.errors import ConfigError, ProtocolError, invalid, refuse_unknown_keywords

from ._base import Decision, Exploit, Scheduler, Value
from ._explore import check_space, explore, mutations_from_json, mutations_to_json, parse_mutations
from ._rungs import nan_to_worst
from ._trials import ResourceOrder, Status
from ._validation import check_int, check_max_resource, check_resource_attr, check_restore, is_number

#: The searchers a PBT scheduler combines with: they only draw the first configs.
COMBINES = "RandomSearcher or GridSearcher"


@dataclass
class Member:
    """One trial of the population, as the scheduler keeps it."""

    config: dict[str, Any] | None = None
    status: Status = Status.RUNNING
    point: float = 0
    """The resource of its last perturbation (0: none yet); Ray Tune's last_perturbation_time."""
    score: float | None = None
    """Its value at that perturbation, signed to minimise (NaN and +-inf as +inf)."""
    cloning: bool = False
    """An exploit made it a clone, and it has not reported since: its score describes a
    model it no longer has, so it is not ranked."""
    queued: int = 0
    """When it last began to wait, PAUSED (a count): of the trials paused at the same point,
    the one waiting longest resumes first. A clone restarts at its donor's point, often the
    point where others wait paused; resumed ahead of them (the lower trial id first, as
    before) it could be cloned back there again and again while they never ran."""


class PBTScheduler(Scheduler):
    """Population based training (Jaderberg et al., "Population Based Training of Neural
    Networks", arXiv:1711.09846, 2017), with Ray Tune's ``PopulationBasedTraining`` rules.

    The trials (``num_trials`` of the Tuner: the population, drawn from the space by a
    :class:`~raytuner.search.RandomSearcher` or a grid) train side by side. When a trial's
    resource has grown by ``perturbation_interval`` since its last perturbation, it is
    perturbed: its value there becomes its score, and the trials with a score are ranked.
    If it is in the bottom ``quantile_fraction`` it **exploits**: it is PAUSEd and restarts
    (:meth:`exploits`) from the latest checkpoint of a trial drawn at random from the top
    ``quantile_fraction``, with that trial's config **explored** (see
    :mod:`raytuner.schedulers._explore`: perturbed by a factor, resampled, moved to a
    neighbour). Its next perturbation comes ``perturbation_interval`` after the donor's last.
    Every trial must checkpoint by its first perturbation (the controller checks).

    ``synch=False`` (the default, as in Ray Tune): each trial is perturbed on its own. With
    more trials than slots, a trial at its perturbation PAUSEs while another is behind it
    (paused at a lower resource, or not started yet), and :meth:`choose_trial_to_resume`
    resumes the one furthest behind (of those at the same point, the one paused first), so
    the population advances together. ``synch=True``:
    every trial PAUSEs at its perturbation until every live trial has reached the current
    barrier (``k * perturbation_interval``); then all are ranked at once, the bottom ones
    exploit, and the population goes on to the next barrier, one interval past the trial
    furthest ahead (the last trial to arrive continues at once unless it exploits).

    A value that is not finite (NaN, or infinite of either sign: values arrive signed to
    minimise) ranks worst, never as a donor. A trial that has not been perturbed yet, or that has not
    reported since its exploit, is not ranked. Fewer than two ranked trials: no exploit.

    Args:
        perturbation_interval: How much resource (reports, or epochs with
            ``resource_attr``) between two perturbations of a trial.
        mutations: ``{config key: domain or list of values}``; dotted keys reach into
            nested dicts. Each key must be in the Tuner's space.
        quantile_fraction: The fraction of ranked trials in the top and in the bottom
            quantile, in (0, 0.5]: ``ceil(n q)`` trials each, at most ``floor(n / 2)``.
        resample_probability: The chance that explore draws a value anew from the
            mutation instead of perturbing it.
        perturbation_factors: The factors a numeric value is multiplied by, drawn uniformly.
        synch: Synchronous PBT (see above).
        max_resource: If finite, a trial gets COMPLETE once its resource reaches it, and is
            not perturbed there (a clone would have nothing left to train); default
            ``inf``: the trainable's own loop (or the Tuner's ``stop=``) ends trials.
        resource_attr: The report key holding the resource, or None to count reports.
        seed: Seeds the donors and the explores.

    Example:
        >>> from raytuner.schedulers import PBTScheduler, Decision
        >>> from raytuner.search import uniform
        >>> pbt = PBTScheduler(perturbation_interval=2, mutations={"lr": uniform(0.01, 1)}, seed=0)
        >>> pbt.on_search_finished()  # the whole population has started
        >>> for t, lr in [("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)]:
        ...     pbt.on_trial_add(t); pbt.on_trial_config(t, {"lr": lr})
        >>> [pbt.on_result(t, 2, v).name for t, v in [("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.9)]]
        ['CONTINUE', 'CONTINUE', 'CONTINUE', 'PAUSE']
        >>> [(e.trial_id, e.donor) for e in pbt.exploits()]
        [('d', 'c')]
    """

    changes_configs = True
    requires_checkpoints = True
    single_objective_reason = "it ranks the population by one value"

    @refuse_unknown_keywords
    def __init__(
        self,
        perturbation_interval: float,
        mutations: Mapping[str, Any],
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: Sequence[float] = (0.8, 1.2),
        synch: bool = False,
        max_resource: float = math.inf,
        resource_attr: str | None = None,
        seed: int = 0,
    ) -> None:
        owner = type(self).__name__
        if max_resource != math.inf:
            check_max_resource(owner, max_resource)
        if not is_number(perturbation_interval) or not 0 < perturbation_interval < math.inf:
            raise invalid(owner, "perturbation_interval", perturbation_interval, "a finite number > 0",
                          "Pass the resource between perturbations, e.g. perturbation_interval=4 (reports or epochs).")
        if isinstance(mutations, Mapping):  # as config() stores them
            mutations = {k: mutations_from_json({k: v})[k] if isinstance(v, (Mapping, list)) else v
                         for k, v in mutations.items()}
        self.mutations = parse_mutations(owner, mutations)
        if not is_number(quantile_fraction) or not 0 < quantile_fraction <= 0.5:
            raise invalid(owner, "quantile_fraction", quantile_fraction, "a number in (0, 0.5]",
                          "Pass quantile_fraction=0.25: the bottom quarter exploits the top quarter.")
        if not is_number(resample_probability) or not 0 <= resample_probability <= 1:
            raise invalid(owner, "resample_probability", resample_probability, "a number in [0, 1]",
                          "Pass resample_probability=0.25 (Ray Tune's default).")
        factors = tuple(perturbation_factors) if isinstance(perturbation_factors, (list, tuple)) else ()
        if not factors or not all(is_number(f) and 0 < f < math.inf for f in factors):
            raise invalid(owner, "perturbation_factors", perturbation_factors, "a non-empty list of numbers > 0",
                          "Pass perturbation_factors=(0.8, 1.2).")
        if not isinstance(synch, bool):
            raise invalid(owner, "synch", synch, "True or False", "Pass synch=False for asynchronous PBT.")
        check_resource_attr(owner, resource_attr)
        check_int(owner, "seed", seed, 0, "Pass a non-negative int, e.g. seed=0.")
        self.perturbation_interval = perturbation_interval
        self.quantile_fraction = quantile_fraction
        self.resample_probability = resample_probability
        self.perturbation_factors = factors
        self.synch = synch
        self.max_resource = max_resource
        self.resource_attr = resource_attr
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._members: dict[str, Member] = {}
        self._order = ResourceOrder(owner, resource_attr)
        self._search_finished = False
        self._next_sync: float = perturbation_interval
        self._pending: list[Exploit] = []
        self._exploit_count = 0
        self._queued = 0  # trials paused so far (Member.queued)

    def __repr__(self) -> str:
        # Not the base's call from config(): the mutations' domains would fill the line
        # (`raytuner show` prints it); config() has them.
        return (f"{type(self).__name__}(perturbation_interval={self.perturbation_interval!r}, "
                f"mutations={sorted(self.mutations)!r}, synch={self.synch!r})")

    def _config(self) -> dict[str, Any]:
        return {
            "perturbation_interval": self.perturbation_interval,
            "mutations": mutations_to_json(self.mutations),
            "quantile_fraction": self.quantile_fraction,
            "resample_probability": self.resample_probability,
            "perturbation_factors": list(self.perturbation_factors),
            "synch": self.synch,
            "max_resource": self.max_resource,
            "resource_attr": self.resource_attr,
            "seed": self.seed,
        }

    def milestones(self) -> dict[str, Any]:
        # Perturbations come every interval after each trial's last one: no fixed levels.
        return {"kind": "interval", "levels": [], "pauses": True, "max_resource": self.max_resource,
                "interval": self.perturbation_interval, "synch": self.synch}

    def check_experiment(self, space: Mapping[str, Any] | None, searcher: Any, num_trials: int) -> None:
        from raytuner.search import GridSearcher, RandomSearcher

        owner = type(self).__name__
        if not isinstance(searcher, (RandomSearcher, GridSearcher)):
            msg = (f"{owner} changes the trials' configs while they train, so it combines only with a searcher that "
                   f"draws the first population and learns nothing: {COMBINES} (the default with PBT). "
                   f"{type(searcher).__name__} would learn from configs that PBT changes under it. Leave "
                   "`searcher=` out, or pass searcher=rt.RandomSearcher(seed=...).")
            raise ConfigError(msg)
        if space is not None:
            check_space(owner, self.mutations, space)

    # -- the population --------------------------------------------------------------------
    def on_trial_add(self, trial_id: str) -> None:
        self._members.setdefault(trial_id, Member())

    def on_trial_config(self, trial_id: str, config: Mapping[str, Any]) -> None:
        self.on_trial_add(trial_id)
        self._members[trial_id].config = dict(config)

    def on_trial_restore(self, trial_id: str, config: Mapping[str, Any], paused: bool,
                         resource: float | None = None, value: Value | None = None) -> None:
        member = self._members.get(trial_id)
        # A clone whose exploit the saved state holds and the driver is still to launch (it
        # hands back the clone's config) stays out of the ranking until it reports, as before.
        cloning = member is not None and member.cloning and member.config == dict(config)
        self.on_trial_config(trial_id, config)
        member = self._members[trial_id]
        member.status, member.cloning = (Status.PAUSED if paused else Status.RUNNING), cloning
        if paused:
            self._wait(member)
        if resource is not None and resource - member.point >= self.perturbation_interval:
            # The saved state (written at most once a second) predates the trial's last
            # perturbation, and the reports since are not replayed (they would clone again):
            # its point is where a perturbation each interval put it, or it would be
            # perturbed again one report later.
            member.point = resource - (resource - member.point) % self.perturbation_interval
            if value is not None:
                # And its score, or the population would be ranked by a value from before
                # those perturbations (None for a trial the state saw no perturbation of):
                # a poor trial would escape the bottom, or be a donor. The value at that
                # point when the trial paused there (synchronous PBT); else the newer one.
                member.score = nan_to_worst(value)  # type: ignore[arg-type]
        self._order.resumed(trial_id)

    def on_result(self, trial_id: str, resource: float, value: Value) -> Decision:
        self.on_trial_add(trial_id)
        member = self._members[trial_id]
        if member.status is Status.ENDED:
            return Decision.STOP
        self._order.advance(trial_id, resource)
        member.status, member.cloning = Status.RUNNING, False
        if resource >= self.max_resource:
            self._end(trial_id)
            return Decision.COMPLETE
        # `<`: a report exactly one interval after the last perturbation is perturbed.
        if resource - member.point < self.perturbation_interval:
            return Decision.CONTINUE
        member.point, member.score = resource, nan_to_worst(value)  # type: ignore[arg-type]
        self._perturbed(trial_id, member)
        if self.synch:
            self._wait(member)
            return self._round(trial_id) if self._barrier_reached() else Decision.PAUSE
        lower, upper = self._quantiles()
        if trial_id in lower:
            self._clone(trial_id, upper[int(self._rng.integers(len(upper)))])
            return Decision.PAUSE
        if self._behind_me(member):
            self._wait(member)
            return Decision.PAUSE
        return Decision.CONTINUE

    def _perturbed(self, trial_id: str, member: Member) -> None:
        """A trial reached a perturbation (PB2 records it)."""

    def decision_point(self, trial_id: str, resource: float) -> float:
        self.on_trial_add(trial_id)
        member = self._members[trial_id]
        if member.status is Status.ENDED:
            return resource
        point = min(member.point + self.perturbation_interval, self.max_resource)
        return point if point > resource else resource

    def _ranked(self) -> list[str]:
        """Trials with a score, best first (ties: the earlier trial first)."""
        ranked = [t for t, m in self._members.items()
                  if m.status is not Status.ENDED and m.score is not None and not m.cloning]
        return sorted(ranked, key=lambda t: self._members[t].score)  # type: ignore[arg-type, return-value]

    def _quantiles(self) -> tuple[list[str], list[str]]:
        """(bottom, top) quantile, Ray Tune's sizes: ``ceil(n q)``, at most ``floor(n / 2)``."""
        ranked = self._ranked()
        if len(ranked) <= 1:
            return [], []
        size = min(math.ceil(len(ranked) * self.quantile_fraction), len(ranked) // 2)
        return ranked[len(ranked) - size:], ranked[:size]

    def _clone(self, trial_id: str, donor_id: str) -> None:
        member, donor = self._members[trial_id], self._members[donor_id]
        if donor.config is None or member.config is None:
            raise ProtocolError(f"{type(self).__name__}: the controller must call on_trial_config() for every trial; "
                                f"trial {(trial_id if member.config is None else donor_id)!r} has no config.")
        config = self._explore(trial_id, donor_id)
        member.config, member.point, member.cloning = config, donor.point, True
        self._wait(member)
        self._order.resumed(trial_id)  # it restarts at the donor's checkpoint, maybe lower
        self._pending.append(Exploit(trial_id, donor_id, config))
        self._exploit_count += 1

    def _wait(self, member: Member) -> None:
        """``member`` is PAUSED: it waits behind every trial paused before it."""
        self._queued += 1
        member.status, member.queued = Status.PAUSED, self._queued

    def _explore(self, trial_id: str, donor_id: str) -> dict[str, Any]:
        """The config the clone of ``donor_id`` runs with (PB2 chooses it otherwise)."""
        donor = self._members[donor_id].config
        assert donor is not None
        return explore(donor, self.mutations, self._rng, self.resample_probability, self.perturbation_factors)

    def _behind_me(self, member: Member) -> bool:
        """Whether another trial waits further back: not started yet, or paused lower."""
        return not self._search_finished or any(
            other.status is Status.PAUSED and other.point < member.point for other in self._members.values())

    # -- synchronous PBT -------------------------------------------------------------------
    def _barrier_reached(self) -> bool:
        live = [m for m in self._members.values() if m.status is not Status.ENDED]
        return self._search_finished and bool(live) and all(m.point >= self._next_sync for m in live)

    def _round(self, arriving: str | None) -> Decision:
        """Every live trial is at the barrier: rank them all, the bottom ones exploit."""
        lower, upper = self._quantiles()
        for trial_id in lower:
            self._clone(trial_id, upper[int(self._rng.integers(len(upper)))])
        live = [m.point for m in self._members.values() if m.status is not Status.ENDED]
        # Past every live trial, or those waiting at or beyond it could never be resumed:
        # the trial furthest ahead (a resume restored the others' points from an older
        # state) is perturbed once more before the next round.
        self._next_sync = max(live) + self.perturbation_interval
        if arriving is None or arriving in lower:
            return Decision.PAUSE
        self._members[arriving].status = Status.RUNNING
        return Decision.CONTINUE

    def _after_end(self) -> None:
        if self.synch and self._barrier_reached() and any(
                m.status is Status.PAUSED for m in self._members.values()):
            self._round(None)

    # -- ends, resumes, the search -----------------------------------------------------------
    def _end(self, trial_id: str) -> None:
        if trial_id in self._members:
            self._members[trial_id].status = Status.ENDED
            self._after_end()

    def on_trial_complete(self, trial_id: str) -> None:
        self._end(trial_id)

    on_trial_error = on_trial_remove = on_trial_complete

    def on_search_finished(self) -> None:
        self._search_finished = True
        self._after_end()

    def on_search_reopened(self) -> None:
        # The population grows: its new members start before paused ones resume, and a
        # synchronous round waits for them (a round already run, at the end, stays run).
        self._search_finished = False

    def choose_trial_to_resume(self) -> str | None:
        """The paused trial furthest behind (lowest last perturbation; ties: the one paused
        first, :attr:`Member.queued`); None while trials of the population are still to start (they go first),
        and, with ``synch``, for trials waiting at the barrier."""
        if not self._search_finished:
            return None
        waiting = [t for t, m in self._members.items() if m.status is Status.PAUSED
                   and (not self.synch or m.point < self._next_sync)]
        if not waiting:
            return None
        trial_id = min(waiting, key=lambda t: (self._members[t].point, self._members[t].queued))
        self._members[trial_id].status = Status.RUNNING
        self._order.resumed(trial_id)
        return trial_id

    def exploits(self) -> list[Exploit]:
        pending, self._pending = self._pending, []
        return pending

    def describe(self) -> str | None:
        """E.g. ``population 8, 5 exploits`` (and the barrier with ``synch``)."""
        barrier = f", barrier {self._next_sync:g}" if self.synch else ""
        return f"population {len(self._members)}, {self._exploit_count} exploits{barrier}"

    def state(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "members": {t: {"config": m.config, "status": m.status.value, "point": m.point, "score": m.score,
                            "cloning": m.cloning, "queued": m.queued} for t, m in self._members.items()},
            "resource_order": self._order.state(),
            "search_finished": self._search_finished,
            "next_sync": self._next_sync,
            "pending": [(e.trial_id, e.donor, e.config) for e in self._pending],
            "exploit_count": self._exploit_count,
            "rng": self._rng.bit_generator.state,
        }

    def restore(self, state: dict[str, Any]) -> None:
        check_restore(type(self).__name__, state, self._config())
        # "queued": kept since 2026-12-07; a state saved before resumes its paused trials in id order.
        # nan_to_worst again: a state saved before it mapped -inf kept a -inf score.
        self._members = {t: Member(m["config"], Status(m["status"]), m["point"],
                                   None if m["score"] is None else nan_to_worst(m["score"]), m["cloning"],
                                   int(m.get("queued", 0))) for t, m in state["members"].items()}
        self._queued = max((m.queued for m in self._members.values()), default=0)
        self._order.restore(state["resource_order"])
        self._search_finished = state["search_finished"]
        self._next_sync = state["next_sync"]
        self._pending = [Exploit(t, d, c) for t, d, c in state["pending"]]
        self._exploit_count = state["exploit_count"]
        self._rng.bit_generator.state = state["rng"]
