"""A trial's ``results.jsonl``: appended by the driver, folded into one trajectory by readers.

The file holds two kinds of lines, in the order they happened:

- a report row: the reported metrics plus ``iteration``, ``time_total_s``, ``timestamp``,
  ``resource`` (when the scheduler counts a reported key), ``attempt`` and, on a row whose
  report carried a checkpoint, ``checkpoint`` (the folder's name);
- an attempt marker, written when the trial is launched (a first start, a retry, a resume, a
  promotion, a re-run): ``{"_marker": "attempt", "attempt": n, "start_iteration": k,
  "checkpoint": name | None, "reason": ..., "timestamp": t}``.

**One trajectory.** A trial that restarts from its checkpoint at iteration ``k`` (``k = 0``:
from scratch) trains again from there, so the rows its lost attempt wrote after ``k`` no
longer describe the model. :func:`fold` keeps the rows in order and, at each attempt marker,
moves the kept rows past its ``start_iteration`` aside as *superseded*: kept for audit, never
shown as history. The kept rows have strictly increasing iterations ``1..n``.

**A torn tail** (a crash in the middle of an append leaves a last line without its newline)
is skipped by readers with a warning, and cut by the writer before it appends again
(:func:`repair_tail`). Any other line that is not a JSON object makes the file *damaged*:
readers say where, and nothing is changed on disk.

Every reader of ``results.jsonl`` goes through :func:`read_history` (or :func:`last_row`, for
views that need only the latest report of many trials).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from raytuner.errors import ExperimentError

logger = logging.getLogger("raytuner")

RESULTS_FILE = "results.jsonl"
MARKER_KEY = "_marker"
ATTEMPT = "attempt"


def attempt_marker(attempt: int, start_iteration: int, checkpoint: str | None, reason: str,
                   timestamp: float, **extra: Any) -> dict[str, Any]:
    """The line that opens attempt ``attempt`` of a trial, restarting at ``start_iteration``."""
    return {MARKER_KEY: ATTEMPT, "attempt": attempt, "start_iteration": start_iteration,
            "checkpoint": checkpoint, "reason": reason, "timestamp": timestamp, **extra}


def is_marker(line: dict[str, Any]) -> bool:
    return line.get(MARKER_KEY) == ATTEMPT


@dataclass(frozen=True)
class Damage:
    """Where a file is damaged and how; said in every view that meets it."""

    path: Path
    line: int | None  # 1-based; None when the fault is not one line's
    fault: str

    def describe(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.fault}"


@dataclass
class History:
    """A trial's results.jsonl, folded (see the module docstring).

    Attributes:
        rows: The kept trajectory: report rows with strictly increasing ``iteration``.
        superseded: Rows of lost attempts, in the order they were written.
        attempts: The attempt markers, in order.
        torn: Bytes of a torn last line that was skipped (0: none).
        damaged: Where the file is damaged before its tail, or None. The lines before the
            damage are folded; nothing after it is.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    torn: int = 0
    damaged: Damage | None = None

    @property
    def last_checkpoint(self) -> tuple[str, dict[str, Any]] | None:
        """The newest checkpoint the kept trajectory commits: (folder name, its row)."""
        for row in reversed(self.rows):
            if row.get("checkpoint"):
                return row["checkpoint"], row
        return None

    @property
    def attempt(self) -> int:
        """The number of the latest attempt (0: the trial never started)."""
        return int(self.attempts[-1]["attempt"]) if self.attempts else 0

    def raise_if_damaged(self) -> None:
        if self.damaged is not None:
            raise ExperimentError(
                f"{self.damaged.describe()}. The file is damaged before its end, so this trial's history "
                "cannot be trusted past that line. Repair or delete that line (the rest of the experiment is "
                "readable meanwhile); nothing was changed."
            )


def fold(lines: Iterable[dict[str, Any]], history: History | None = None) -> History:
    """Fold parsed lines into one trajectory (see the module docstring)."""
    history = History() if history is None else history
    rows = history.rows
    for line in lines:
        if is_marker(line):
            history.attempts.append(line)
            start = line.get("start_iteration") or 0
            cut = len(rows)
            while cut and rows[cut - 1].get("iteration", 0) > start:
                cut -= 1
            if cut < len(rows):
                history.superseded.extend(rows[cut:])
                del rows[cut:]
        else:
            rows.append(line)
    return history


def read_history(path: Path) -> History:
    """Read and fold one trial's results.jsonl; a missing file is an empty history."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return History()
    return parse(data, path)


def parse(data: bytes, path: Path) -> History:
    """Fold the bytes of a results.jsonl (``path`` names it in warnings and damage)."""
    lines, torn, damaged = json_lines(data, path)
    return fold(lines, History(torn=torn, damaged=damaged))


def json_lines(data: bytes, path: Path, *, past_damage: bool = False
               ) -> tuple[list[dict[str, Any]], int, Damage | None]:
    """The JSON objects of an append-only JSON-lines file (results.jsonl, control's
    history.jsonl), the bytes of its torn tail (skipped, with a warning; 0: none) and its
    first damaged line (None: none).

    Reading stops at a damaged line, so that nothing after it is taken for the truth; with
    ``past_damage`` every damaged line is skipped instead (a log that only informs).
    """
    lines: list[dict[str, Any]] = []
    damaged = None
    end = len(data)
    torn = 0
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        torn = end - cut
        end = cut
        logger.warning("%s ends in a line cut short (%d bytes, a crash during a write); it is skipped.", path, torn)
    for number, raw in enumerate(data[:end].split(b"\n")[:-1] if end else (), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            fault = None if isinstance(line, dict) else f"a {type(line).__name__}, not a JSON object"
        except (ValueError, RecursionError) as exc:
            fault = "not valid JSON (" + ("nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]) + ")"
        if fault is None:
            lines.append(line)
            continue
        damaged = damaged or Damage(path, number, fault)
        if not past_damage:
            break
    return lines, torn, damaged


def last_row(path: Path) -> dict[str, Any] | None:
    """The last kept report row of a results.jsonl, read from the end of the file. None if
    there is none (no file, no report yet, or damage within the part read)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    with handle:
        return last_kept(_reversed_lines(handle, _end_of_last_line(handle)))


def last_kept(reversed_lines: Iterable[bytes]) -> dict[str, Any] | None:
    """The last kept report row, given whole lines from the last one backwards.

    A row is kept unless an attempt marker after it restarts below its iteration, so going
    backwards the first row at or below every marker seen so far is the one.
    """
    limit = float("inf")
    for raw in reversed_lines:
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        if not isinstance(line, dict):
            return None
        if is_marker(line):
            limit = min(limit, line.get("start_iteration") or 0)
        elif line.get("iteration", 0) <= limit:
            return line
    return None


def repair_tail(path: Path, trial_id: str | None = None) -> int:
    """Cut a torn last line before a writer's first append to an append-only JSON-lines
    file; returns the bytes cut, kept for audit beside it (``results.torn`` for
    ``results.jsonl``). ``trial_id`` names the trial in the warning; None for a file that is
    not a trial's (control's ``history.jsonl``)."""
    try:
        handle = open(path, "rb+")
    except FileNotFoundError:
        return 0
    with handle:
        size = handle.seek(0, os.SEEK_END)
        cut = _end_of_last_line(handle)
        if cut == size:
            return 0
        handle.seek(cut)
        torn = handle.read()
        handle.truncate(cut)
    audit = path.with_suffix(".torn")
    with open(audit, "ab") as kept:
        kept.write(torn + b"\n")
    logger.warning("%s%s ended in a line cut short by a crash (%d bytes); it was cut before appending (kept in %s).",
                   f"Trial {trial_id}: " if trial_id else "", path, len(torn), audit.name)
    return len(torn)


_BLOCK = 65536


def _end_of_last_line(handle: Any) -> int:
    """The offset just past the file's last newline (0: none); the file's size when it ends
    in one. What lies beyond it is a torn tail."""
    position = handle.seek(0, os.SEEK_END)
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        found = handle.read(step).rfind(b"\n")
        if found >= 0:
            return position + found + 1
    return 0


def _reversed_lines(handle: Any, end: int) -> Iterable[bytes]:
    """The lines of ``handle[:end]`` (which ends in a newline), last first."""
    carry = b""
    position = end
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        parts = (handle.read(step) + carry).split(b"\n")
        carry = parts.pop(0)
        yield from reversed(parts)
    yield carry
