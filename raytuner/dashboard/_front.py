"""The Pareto front of a multi-objective experiment, as the dashboard's summary, list and
table show it: :func:`raytuner._best.pareto_front`, the one definition Results, the CLI and
the report use, over the trials the view has read (a running trial by its last kept row).

Under ``best_scope="all"`` every kept report is a point, so each trial's folded history is
read; a finished trial's once (its file no longer changes), a running one's when its file
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from raytuner._best import FrontMember, pareto_front, scope_of
from raytuner._objectives import Objectives
from raytuner._storage.history import fold
from raytuner.dashboard._files import Refused


@dataclass
class _Point:
    """What the front reads of a trial: its id, status and latest metrics."""

    trial_id: str
    status: str
    metrics: dict[str, Any]


class Fronts:
    """Computes an experiment's front; keeps each trial's kept rows while its file is unchanged."""

    def __init__(self, read_rows: Callable[[Path], list[dict[str, Any]]]):
        self._read_rows = read_rows
        self._rows: dict[str, tuple[int, list[dict[str, Any]]]] = {}

    def front(self, meta: dict[str, Any], entries: dict[str, Any], latest: Callable[[Any], dict[str, Any]],
              folder: Path, mtime: Callable[[Path], int]) -> list[FrontMember[_Point]] | None:
        """The front (None with fewer than two objectives). ``latest(entry)``: the metrics a
        trial stands at; ``mtime(path)``: a file's modification time."""
        objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min"))
        if not objectives.multi:
            return None
        scope = scope_of(meta)
        # In id order, as Results has them: the Pareto order breaks ties by position.
        points = [_Point(trial_id, entry.status, latest(entry)) for trial_id, entry in sorted(entries.items())
                  if not entry.damaged]

        def reports(point: _Point) -> list[dict[str, Any]]:
            path = folder / point.trial_id / "results.jsonl"
            stamp = mtime(path)
            cached = self._rows.get(point.trial_id)
            if cached is None or cached[0] != stamp:
                cached = self._rows[point.trial_id] = (stamp, self._read_rows(path))
            return cached[1]

        return pareto_front(points, objectives, scope, reports=reports)


def rows_of(files: Any) -> Callable[[Path], list[dict[str, Any]]]:
    """A reader of a trial's kept rows through the view's confined files ([] if refused)."""
    def read(path: Path) -> list[dict[str, Any]]:
        try:
            lines, fault = files.jsonl(path)
        except Refused:
            return []
        return [] if fault else fold(lines).rows  # a damaged history cannot be trusted

    return read
