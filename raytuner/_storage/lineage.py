"""A trial's lineage under PBT, read back from its results.jsonl and its donors'.

An exploit relaunches a trial from another trial's checkpoint with a new config; its
attempt marker records it (:mod:`raytuner._storage.history`): ``reason: "exploit"``, the new
``config``, ``cloned_from: {"trial_id", "iteration", "attempt"}`` (the donor's attempt that
committed the checkpoint). Every row carries the ``attempt`` that wrote it, so:

- the config in effect at a row is that of the last marker with a ``config`` at or before
  the row's attempt, else the trial's ``config.json`` (its first config);
- the file as it stood during attempt ``a`` is rebuilt from the markers and rows of the
  attempts up to ``a`` (rows of one attempt have increasing iterations): that is the donor's
  history as the clone saw it, even if the donor rewound later;
- the schedule that produced a trial's model (:func:`schedule`) follows it back through its
  donors: the donor's schedule up to the cloned iteration, then the clone's config.

Pure Python; no Ray, no pandas. Readers: ``Results.history`` and ``Results.schedule``, the
report's and the dashboard's population figure, ``PBTReplay``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from raytuner._formats import flatten
from raytuner._storage.history import History, fold

EXPLOIT = "exploit"


@dataclass(frozen=True)
class Segment:
    """From report ``start`` on (the model at ``start`` was the previous segment's), the
    model trained with ``config`` in trial ``trial_id``; ``resource`` is the resource at
    ``start`` (0 at the start)."""

    start: int
    resource: float
    config: dict[str, Any]
    trial_id: str


def lines(history: History, attempt: float = float("inf")) -> list[dict[str, Any]]:
    """The lines of the file, markers and rows, as they were written up to the end of
    attempt ``attempt`` (rows of one attempt follow its marker in increasing iterations)."""
    rows = [row for row in history.rows + history.superseded if attempt_of(row) <= attempt]
    out: list[dict[str, Any]] = []
    for marker in history.attempts:
        number = int(marker.get("attempt", 1))
        if number > attempt:
            break
        out.append(marker)
        out.extend(sorted((r for r in rows if attempt_of(r) == number), key=lambda r: r.get("iteration", 0)))
    if not history.attempts:  # written before attempt markers: one attempt
        out.extend(sorted(rows, key=lambda r: r.get("iteration", 0)))
    return out


def up_to_attempt(history: History, attempt: int) -> History:
    """The history as it stood at the end of attempt ``attempt``."""
    return fold(lines(history, attempt))


def attempt_of(line: dict[str, Any]) -> int:
    """The attempt that wrote a line of results.jsonl (1 for lines from before attempts)."""
    value = line.get("attempt", 1)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 1


def configs_by_attempt(history: History, initial: dict[str, Any]) -> Callable[[int], dict[str, Any]]:
    """The config in effect during each attempt, as a function of the attempt number."""
    changes = [(int(m.get("attempt", 1)), m["config"]) for m in history.attempts if isinstance(m.get("config"), dict)]

    def config(attempt: int) -> dict[str, Any]:
        current = initial
        for number, changed in changes:
            if number > attempt:
                break
            current = changed
        return current

    return config


def exploits_by_attempt(history: History) -> Callable[[int], dict[str, Any] | None]:
    """The ``cloned_from`` of the last exploit at or before each attempt (None: none)."""
    clones = [(int(m.get("attempt", 1)), m.get("cloned_from")) for m in history.attempts if m.get("reason") == EXPLOIT]

    def cloned(attempt: int) -> dict[str, Any] | None:
        found = None
        for number, source in clones:
            if number > attempt:
                break
            found = source
        return found

    return cloned


def annotate(history: History, initial: dict[str, Any]) -> list[dict[str, Any]]:
    """The kept rows, each with the config in effect (``config/<name>`` columns) and, after
    an exploit, ``cloned_from`` (the donor's id) and ``cloned_iteration``."""
    config = configs_by_attempt(history, initial)
    cloned = exploits_by_attempt(history)
    rows = []
    for row in history.rows:
        attempt = attempt_of(row)
        source = cloned(attempt)
        extra = {"cloned_from": source.get("trial_id"), "cloned_iteration": source.get("iteration")} if source else {}
        rows.append({**row, **flatten(config(attempt), "config/"), **extra})
    return rows


class Lineages:
    """Schedules of trials' models, reading each trial's history once.

    Args:
        read_history: A trial id to its folded results.jsonl.
        read_config: A trial id to its first config (config.json).
    """

    def __init__(self, read_history: Callable[[str], History], read_config: Callable[[str], dict[str, Any]]):
        self._read_history = read_history
        self._read_config = read_config
        self._histories: dict[str, History] = {}

    def history(self, trial_id: str) -> History:
        if trial_id not in self._histories:
            self._histories[trial_id] = self._read_history(trial_id)
        return self._histories[trial_id]

    def schedule(self, trial_id: str) -> list[Segment]:
        """The segments that trained ``trial_id``'s current model, first to last, with
        equal consecutive configs merged."""
        history = self.history(trial_id)
        segments = self._segments(trial_id, history.attempt)
        merged: list[Segment] = []
        for segment in segments:
            if merged and merged[-1].config == segment.config:
                continue
            merged.append(segment)
        return merged

    def _segments(self, trial_id: str, attempt: int, upto: int | None = None, depth: int = 0) -> list[Segment]:
        """The model of ``trial_id`` at the end of ``attempt`` (at report ``upto``, if given)."""
        if depth > 10_000:
            raise RecursionError(f"the lineage of trial {trial_id} does not end")
        history = self.history(trial_id)
        then = up_to_attempt(history, attempt)
        config = configs_by_attempt(history, self._read_config(trial_id))
        segments = [Segment(0, 0.0, config(1), trial_id)]
        for marker in then.attempts:
            start = int(marker.get("start_iteration") or 0)
            number = int(marker.get("attempt", 1))
            source = marker.get("cloned_from") if marker.get("reason") == EXPLOIT else None
            if isinstance(source, dict) and isinstance(source.get("trial_id"), str):
                donor_attempt = int(source.get("attempt") or self.history(source["trial_id"]).attempt)
                if source["trial_id"] == trial_id:
                    donor_attempt = min(donor_attempt, number - 1)  # a replayed config change: itself, before
                segments = self._segments(source["trial_id"], donor_attempt, int(source.get("iteration") or 0),
                                          depth + 1)
                segments.append(Segment(start, self._resource_at(segments, start), config(number), trial_id))
            else:
                segments = [s for s in segments if s.start < start] or [Segment(0, 0.0, config(1), trial_id)]
                if segments[-1].config != config(number):
                    segments.append(Segment(start, self._resource_at(segments, start), config(number), trial_id))
        if upto is not None:
            segments = [s for s in segments if s.start < upto] or segments[:1]
        return segments

    def _resource_at(self, segments: list[Segment], iteration: int) -> float:
        """The resource at report ``iteration`` of the model the segments trained."""
        if iteration <= 0:
            return 0.0
        owner = segments[-1].trial_id
        for row in self.history(owner).rows + self.history(owner).superseded:
            if row.get("iteration") == iteration:
                value = row.get("resource", iteration)
                return float(value) if isinstance(value, (int, float)) else float(iteration)
        return float(iteration)

    def edges(self, trial_id: str) -> list[dict[str, Any]]:
        """The exploits in ``trial_id``'s kept history: who it cloned, at which report."""
        history = self.history(trial_id)
        last = history.rows[-1]["iteration"] if history.rows else 0
        out = []
        for marker in history.attempts:
            source = marker.get("cloned_from")
            if marker.get("reason") != EXPLOIT or not isinstance(source, dict):
                continue
            start = int(marker.get("start_iteration") or 0)
            if start <= last:
                out.append({"trial_id": trial_id, "donor": source.get("trial_id"), "iteration": start,
                            "donor_iteration": source.get("iteration"), "attempt": int(marker.get("attempt", 1))})
        return out


def for_experiment(storage: Any) -> Lineages:
    """The lineages of the trials of an :class:`~raytuner._storage.experiment.ExperimentStorage`."""

    def read(trial_id: str) -> History:
        history = storage.read_history(trial_id)
        history.raise_if_damaged()
        return history

    return Lineages(read, storage.read_trial_config)


def recorded_schedule(experiment_path: Any, trial_id: str) -> tuple[list[list[Any]], str | None]:
    """``([[resource, config], ...], resource_attr)``: the schedule of ``trial_id``'s model
    in the experiment at ``experiment_path``, for :class:`raytuner.schedulers.PBTReplay`."""
    from raytuner._storage.experiment import ExperimentStorage
    from raytuner.errors import ConfigError

    storage = ExperimentStorage(experiment_path)
    meta = storage.read_experiment()
    if trial_id not in storage.trial_ids(started_only=False):
        raise ConfigError(f"PBTReplay: there is no trial {trial_id!r} in {storage.location}; its trials are "
                          f"{', '.join(storage.trial_ids()[:10])}.")
    segments = for_experiment(storage).schedule(trial_id)
    return [[s.resource, s.config] for s in segments], meta.get("resource_attr")
