"""The searcher contract: what the controller asks of every search algorithm.

A searcher proposes configurations and learns from how trials end. It sees trial ids and
numbers only: values arrive already signed so that lower is better (the controller applies
the Tuner's ``mode`` once), so a searcher never needs to know the metric's name or direction.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass
from typing import Any, Mapping

from raytuner.errors import ConfigError, ProtocolError

from ._space import describable, space_to_json


class _Finished:
    """Sentinel type for :data:`FINISHED`."""

    _instance: _Finished | None = None

    def __new__(cls) -> _Finished:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "FINISHED"

    def __reduce__(self) -> str:
        return "FINISHED"


FINISHED = _Finished()
"""Returned by :meth:`Searcher.suggest` once the search space is exhausted."""


class TrialEnd(enum.Enum):
    """How a trial ended, as a searcher learns it."""

    COMPLETED = "completed"
    """The trainable returned, or the Tuner's ``stop=`` criterion ended it."""
    STOPPED = "stopped"
    """A scheduler ended it early: its value is a low-fidelity one."""
    FAILED = "failed"
    """The trainable raised or its worker died, and no retry is left."""


@dataclass(frozen=True)
class Outcome:
    """The end of one trial, handed to :meth:`Searcher.on_trial_complete`.

    Attributes:
        end: How the trial ended.
        value: The last reported value of the metric, signed to minimize, or None if the
            trial never reported it.
        resource: The resource (epochs, reports...) the trial had reached when it ended,
            or None if it never reported.
        max_resource: The full budget a trial can reach under the experiment's scheduler
            (``inf`` when the scheduler sets none). ``resource < max_resource`` on a
            STOPPED trial marks ``value`` as a low-fidelity result.
    """

    end: TrialEnd
    value: float | None = None
    resource: float | None = None
    max_resource: float = float("inf")


class Searcher(abc.ABC):
    """Base class of search algorithms.

    The controller calls, in order: :meth:`setup` once, then :meth:`suggest` whenever a
    slot is free, :meth:`on_trial_result` for each report, and :meth:`on_trial_complete`
    exactly once per suggested trial. :meth:`state` and :meth:`restore` let a resumed
    experiment continue the same search.
    """

    space: Mapping[str, Any] | None = None
    num_trials: int | None = None
    #: Whether the searcher learns from values, so the Tuner must be given a ``metric``.
    #: False for searchers that never look at results (random, grid).
    needs_metric: bool = True

    def setup(self, space: Mapping[str, Any] | None, num_trials: int) -> None:
        """Bind the Tuner's space and trial budget; called once before :meth:`suggest`.

        A searcher built with its own space keeps it; the Tuner rejects a second space
        before calling this. Subclasses that derive a trial count from the space (grid
        search) override :attr:`num_trials` here: the controller stops launching trials
        at ``searcher.num_trials``.

        Raises:
            ConfigError: If neither the searcher nor the Tuner has a space.
        """
        if self.space is None:
            if space is None:
                msg = (
                    f"{type(self).__name__} has no search space: pass `space=` to the Tuner "
                    f"or to {type(self).__name__}(space=...)."
                )
                raise ConfigError(msg)
            self.space = space
        self.num_trials = num_trials

    @abc.abstractmethod
    def suggest(self, trial_id: str) -> dict[str, Any] | None | _Finished:
        """Propose the configuration of a new trial.

        Returns:
            A config dict of plain Python values; None for "not now" (for example while
            waiting on results); or :data:`FINISHED` when the space is exhausted.
        """

    def on_trial_result(self, trial_id: str, resource: float, value: float) -> None:
        """Called for each report of a running trial (value signed to minimize)."""

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        """Called exactly once when a suggested trial ends, however it ended."""

    def config(self) -> dict[str, Any] | None:
        """This searcher as data: its class name under ``"type"``, its space as
        :func:`space_to_json` describes it (None if it has none yet) and the constructor
        arguments that rebuild it through :func:`raytuner.search.from_config`.

        None if it cannot describe itself: the default, so a searcher of your own is
        pickled instead; and so is a built-in one whose space holds hyperopt expressions,
        tuples or other objects JSON cannot carry. Built-in searchers implement
        :meth:`_config`.
        """
        args = self._config()
        if args is None or (self.space is not None and not describable(self.space)):
            return None
        space = None if self.space is None else space_to_json(self.space)
        return {"type": type(self).__name__, "space": space, **args}

    def _config(self) -> dict[str, Any] | None:
        """The constructor arguments but the space, as JSON-able data; None if unknown."""
        return None

    @classmethod
    def _from_config(cls, space: Mapping[str, Any] | None, args: dict[str, Any]) -> Searcher:
        """Build from :meth:`config`'s arguments; override to decode what JSON changed."""
        return cls(space, **args)  # type: ignore[call-arg]

    def state(self) -> dict[str, Any]:
        """Everything needed to continue this search later; picklable."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state` returned."""


def end_trial(owner: str, trial_id: str, record: Any, outcome: Outcome) -> None:
    """:meth:`Searcher.on_trial_complete` for a searcher that keeps a record per trial
    (``None`` if never suggested; ``end == "pending"`` while it runs): checks the contract,
    then :func:`close_record`."""
    if record is None or record.end != "pending":
        state = "was never suggested" if record is None else "has already ended"
        msg = f"{owner}: trial {trial_id!r} {state}; each trial ends exactly once."
        raise ProtocolError(msg)
    close_record(record, outcome)


def close_record(record: Any, outcome: Outcome) -> None:
    """Write how a trial ended into a searcher's record of it (``end``, ``value``,
    ``resource``, ``max_resource``). A trial that completed without a finite value counts
    as FAILED: it gives nothing to learn from but the fact that it failed."""
    value = outcome.value
    finite = value is not None and math.isfinite(value)
    if outcome.end is TrialEnd.COMPLETED and not finite:
        record.end = TrialEnd.FAILED.value
    else:
        record.end = outcome.end.value
    record.value = float(value) if finite else None
    record.resource = None if outcome.resource is None else float(outcome.resource)
    record.max_resource = float(outcome.max_resource)
