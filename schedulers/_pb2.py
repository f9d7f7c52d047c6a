"""PB2: population based training whose explore step is a GP bandit (see ``_pb2_gp``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from raytuner.errors import ConfigError, invalid, refuse_unknown_keywords

from ._explore import explore_value, get_path, on_grid, set_path
from ._validation import is_number
from ._pbt import Member, PBTScheduler

#: Observations the GP keeps (the newest): a fit costs O(N^3), and the time-varying kernel
#: forgets old intervals anyway.
MAX_POINTS = 500


class PB2Scheduler(PBTScheduler):
    """Population Based Bandits (Parker-Holder, Nguyen and Roberts, "Provably Efficient
    Online Hyperparameter Optimization with Population-Based Bandits", NeurIPS 2020).

    Exploit exactly as :class:`PBTScheduler`; explore by a GP bandit instead of random
    perturbation: the clone's numeric hyperparameters (the mutations that are ranges or
    ``randint``: their bounds are the search box, log domains in log space) maximise an
    upper confidence bound on the reward gained per unit of resource, under a
    time-varying kernel (the model, the kernel and the UCB, with their symbols, are in
    :mod:`raytuner.schedulers._pb2_gp`). Categorical mutations (a ``choice`` or a value
    list) are explored by PBT's rule (a neighbour, or resampled with
    ``resample_probability``), as PB2's code leaves them to PBT. Until the GP has two
    observations, the numeric values are drawn at random from their domains.

    Ray Tune's ``PB2`` differs in three ways: it takes bounds, not domains (so no log
    scale); its UCB adds the variance, not the standard deviation; and it copies the
    donor's config unexplored while it has no data.

    Args:
        perturbation_interval, mutations, quantile_fraction, synch, max_resource, resource_attr,
            seed: As for :class:`PBTScheduler`.
        resample_probability: For categorical mutations only.

    Example:
        >>> from raytuner.schedulers import PB2Scheduler
        >>> from raytuner.search import loguniform
        >>> pb2 = PB2Scheduler(perturbation_interval=5, mutations={"lr": loguniform(1e-4, 1e-1)})
        >>> pb2.milestones()["interval"]
        5
    """

    @refuse_unknown_keywords
    def __init__(
        self,
        perturbation_interval: float,
        mutations: Mapping[str, Any],
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        synch: bool = False,
        max_resource: float = math.inf,
        resource_attr: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(perturbation_interval, mutations, quantile_fraction, resample_probability,
                         synch=synch, max_resource=max_resource, resource_attr=resource_attr, seed=seed)
        try:
            import sklearn  # noqa: F401  # the GP; checked here, before any trial starts
        except ImportError:
            raise ConfigError("PB2Scheduler fits a Gaussian process with scikit-learn, which is not installed. "
                              "Install it with: pip install 'raytuner[gp]' (or use PBTScheduler).") from None
        from raytuner.search._domains import RandInt, Range

        for key, mutation in self.mutations.items():
            _check_more_than_one_value(type(self).__name__, key, mutation)
        self._numeric = [key for key, m in self.mutations.items() if isinstance(m, (Range, RandInt))]
        # Per trial: where its current interval started, (t, value, h in the unit cube).
        self._start: dict[str, tuple[float, float, list[float]]] = {}
        self._rows: list[list[float]] = []  # observations (t, R, h..., y)
        self._batch: list[list[float]] = []  # h chosen since the data's newest t last grew
        self._batch_t = -math.inf

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        del config["perturbation_factors"]
        return config

    def check_experiment(self, space: Mapping[str, Any] | None, searcher: Any, num_trials: int) -> None:
        super().check_experiment(space, searcher, num_trials)
        for key, mutation in self.mutations.items():
            _check_not_bounds(type(self).__name__, key, mutation, space)

    def _unit(self, config: Mapping[str, Any]) -> list[float]:
        """The numeric mutations of ``config`` in the unit cube."""
        out = []
        for key in self._numeric:
            low, high, log = _box(self.mutations[key])
            value = float(get_path(config, key))
            if log:
                value, low, high = math.log(max(value, low)), math.log(low), math.log(high)
            out.append(min(max((value - low) / (high - low), 0.0), 1.0))
        return out

    def _perturbed(self, trial_id: str, member: Member) -> None:
        if member.config is None or member.score is None:
            return
        h = self._unit(member.config)
        start = self._start.get(trial_id)
        if start is not None and start[2] == h and member.point > start[0]:
            gain = -(member.score - start[1]) / (member.point - start[0])
            if math.isfinite(gain) and math.isfinite(start[1]):
                self._rows = (self._rows + [[start[0], -start[1], *h, gain]])[-MAX_POINTS:]
        self._start[trial_id] = (member.point, member.score, h)

    def _explore(self, trial_id: str, donor_id: str) -> dict[str, Any]:
        donor = self._members[donor_id]
        assert donor.config is not None and donor.score is not None
        config = dict(donor.config)
        for key, mutation in self.mutations.items():
            if key not in self._numeric:
                set_path(config, key, explore_value(get_path(donor.config, key), mutation, self._rng,
                                                    self.resample_probability, (1.0,)))
        if self._numeric:
            h = self._choose(donor)
            for key, unit in zip(self._numeric, h):
                set_path(config, key, _from_unit(self.mutations[key], unit))
        # The clone's next interval starts from its donor's state, under its new values.
        self._start[trial_id] = (donor.point, donor.score, self._unit(config))
        return config

    def _choose(self, donor: Member) -> list[float]:
        if len(self._rows) < 2:
            return [float(u) for u in self._rng.random(len(self._numeric))]
        from ._pb2_gp import select

        data = np.array(self._rows)
        newest = float(data[:, 0].max())
        if newest > self._batch_t:  # a new round of clones: those of the last one are data now
            self._batch, self._batch_t = [], newest
        h = select(data[:, :-1], data[:, -1], (donor.point, -float(donor.score)),  # type: ignore[arg-type]
                   np.array(self._batch).reshape(-1, len(self._numeric)), self._rng, self.seed)
        self._batch.append([float(u) for u in h])
        return [float(u) for u in h]

    def state(self) -> dict[str, Any]:
        return {**super().state(), "pb2": {"start": {t: list(s) for t, s in self._start.items()},
                                           "rows": [list(r) for r in self._rows],
                                           "batch": [list(b) for b in self._batch], "batch_t": self._batch_t}}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        saved = state["pb2"]
        self._start = {t: (s[0], s[1], list(s[2])) for t, s in saved["start"].items()}
        self._rows = [list(r) for r in saved["rows"]]
        self._batch = [list(b) for b in saved["batch"]]
        self._batch_t = saved["batch_t"]


def _count_values(mutation: Any) -> int | None:
    """How many values a mutation takes; None for a continuous range (infinitely many).

    ``randint(low, high)`` takes ``high - low`` (``high`` is excluded); a range with step
    ``q`` takes the multiples ``k q`` with ``ceil(low / q) <= k <= floor(high / q)``
    (:func:`._explore.on_grid`'s ``k``: at least one); a choice or list, its options.
    """
    from raytuner.search._domains import Choice, RandInt, Range

    if isinstance(mutation, RandInt):
        return mutation.high - mutation.low
    if isinstance(mutation, Range):
        if mutation.q is None:
            return None
        lowest = on_grid(mutation.low, mutation.low, mutation.high, mutation.q, False)
        highest = on_grid(mutation.high, mutation.low, mutation.high, mutation.q, False)
        return 1 + round((highest - lowest) / mutation.q)
    return len(mutation.options if isinstance(mutation, Choice) else mutation)


def _check_more_than_one_value(owner: str, key: str, mutation: Any) -> None:
    """Refuse a mutation of a single value (:func:`_count_values`), when PB2 is built.

    A numeric mutation is the GP's search box ``[low, high]``, scaled to [0, 1] by
    ``(x - low) / (high - low)``: ``randint(2, 3)`` takes 2 only, so ``high - 1 - low = 0``
    (a ZeroDivisionError at the first perturbation); a ``q`` range with one multiple of
    ``q`` in it rounds every point of its box to that value. A choice or list of one value
    has nothing to explore either. (PBT's explore divides by nothing: it keeps such a
    mutation's value, which is harmless there.)"""
    if _count_values(mutation) != 1:
        return
    from raytuner.search._domains import Choice, RandInt, Range, plain, q_decimals

    if isinstance(mutation, RandInt):
        only = mutation.low
        why = (f"{mutation!r} excludes its upper bound, so it takes {only} only: PB2's GP would search a box of "
               "no width (a ZeroDivisionError at the first perturbation)")
        wider = f"randint({only}, {only + 2}) for {only} and {only + 1}"
    elif isinstance(mutation, Range):
        only = on_grid(mutation.low, mutation.low, mutation.high, mutation.q, mutation.is_int)
        why = (f"Its only multiple of q={mutation.q!r} in the range is {only!r}, and every value PB2's GP "
               "proposes rounds to it: nothing to explore")
        top = only + 2 * mutation.q if mutation.is_int else round(only + 2 * mutation.q, q_decimals(mutation.q))
        wider = f"a range of two or more multiples of q, e.g. {mutation.name}({only!r}, {top!r}, {mutation.q!r})"
    else:
        options = mutation.options if isinstance(mutation, Choice) else mutation
        only, why = plain(options[0]), "It holds one value: nothing to explore"
        wider = "two or more values to move between"
    raise invalid(
        owner, f"mutations[{key!r}]", mutation, "a mutation of two or more values",
        f"{why}. Put the value in the space as a constant, space={{{key!r}: {only!r}, ...}}, "
        f"and leave {key!r} out of `mutations`, or give {wider}.")


def _check_not_bounds(owner: str, key: str, mutation: Any, space: Mapping[str, Any] | None) -> None:
    """Refuse Ray Tune's ``hyperparam_bounds={"lr": [low, high]}`` passed as a mutation.

    Here a list is categorical: the values explore moves between, never fed to the GP. A
    list of two numbers for a key the space draws from a range (``uniform``,
    ``loguniform``, ``quniform``...) is a range's bounds written Ray Tune's way: its trials
    start anywhere in the range and would be explored to one of the two ends only. Without
    a space to look at, any list of two numbers is taken for bounds. A list for a key the
    space holds as a ``choice``, a grid or a constant stays a categorical mutation.
    """
    from raytuner.search._domains import Range

    if not (isinstance(mutation, tuple) and len(mutation) == 2 and all(map(is_number, mutation))):
        return
    low, high = sorted(mutation)
    entry = None
    if space is not None:
        try:
            entry = get_path(space, key)
        except KeyError:
            return  # PBT's check names a key outside the space
        if not isinstance(entry, Range):
            return
    if entry is not None:
        kind, step = entry.name, "" if entry.q is None else f", {entry.q!r}"
        found = f"the space's {key!r} is {entry!r}, a range"
    else:
        kind, step = "loguniform" if 0 < low and high >= 100 * low else "uniform", ""
        found = "the space is not known here"
    raise invalid(
        owner, f"mutations[{key!r}]", list(mutation), "a domain for a range's bounds",
        f"A list holds the values to move between, so PB2 would set {key!r} to {low!r} or {high!r} only, never "
        f"to a value between them, and never with its GP; {found}. Ray Tune's PB2 takes hyperparam_bounds={{{key!r}: [low, high]}}; "
        f"here the bounds are written as a domain: mutations={{{key!r}: rt.{kind}({low!r}, {high!r}{step})}}. "
        f"To move between these two values only, draw {key!r} from rt.choice([{low!r}, {high!r}]) in the space.")


def _box(domain: Any) -> tuple[float, float, bool]:
    """(low, high, log) of a numeric mutation: the box the GP searches."""
    from raytuner.search._domains import RandInt

    if isinstance(domain, RandInt):
        return float(domain.low), float(domain.high - 1), False
    return float(domain.low), float(domain.high), bool(domain.log)


def _from_unit(domain: Any, unit: float) -> int | float:
    """A point of [0, 1] as a value of ``domain``: scaled back, rounded to its step."""
    from raytuner.search._domains import RandInt

    low, high, log = _box(domain)
    value = math.exp(math.log(low) + unit * (math.log(high) - math.log(low))) if log else low + unit * (high - low)
    step = 1 if isinstance(domain, RandInt) else domain.q
    is_int = isinstance(domain, RandInt) or getattr(domain, "is_int", False)
    if step is not None:
        return on_grid(value, low, high, step, is_int)
    return round(value) if is_int else float(value)
