"""Failed trials, told to the user: the error in one line, and where their code raised it.

A trial's traceback is long and mostly Ray's and raytuner's frames; what a user needs first
is the exception (type and message), the trial, and the line of *their* code that raised
it. The live view shows that for the first trial of each distinct error; the end of the
run sums failures up and says where the full tracebacks are; an experiment whose every
trial failed ends as FAILED and raises :class:`raytuner.errors.TrialsFailedError`, as Ray
Tune raises ``TuneError`` and Optuna re-raises the objective's exception.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from raytuner._results import Results

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_RAYTUNER_DIR = str(Path(__file__).resolve().parents[1])
_LIBRARY_DIRS = tuple(
    {p for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"),
                 sysconfig.get_paths().get("platlib")) if p}
)
_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Failure:
    """One failure in short: ``KeyError: 'lr'`` raised at ``train.py:12 in train``."""

    error_type: str
    message: str
    frame: str | None  # "file:line in function", the innermost frame of the user's code
    code: str | None  # that frame's source line

    @property
    def headline(self) -> str:
        message = self.message if len(self.message) <= _MESSAGE_CHARS else self.message[: _MESSAGE_CHARS - 3] + "..."
        if not self.error_type:
            return message
        return f"{self.error_type}: {message}" if message else self.error_type

    @property
    def key(self) -> tuple[str, str]:
        """Failures with the same key are one problem, shown once: the same exception type
        raised at the same line of the user's code, whatever its message says
        (``raise ValueError(f"bad x={x}")`` is one problem in every trial). Without a frame
        of theirs (a worker that died), the message is all there is to tell them apart."""
        return self.error_type, self.frame or self.message


def _is_library(path: str) -> bool:
    resolved = os.path.abspath(path)
    if resolved.startswith(_RAYTUNER_DIR + os.sep) or path.startswith("<"):
        return True
    if "site-packages" in resolved or "dist-packages" in resolved:
        return True
    return any(resolved.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def _shown_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def parse(error: str) -> Failure:
    """The last failure recorded in ``error`` (a traceback, or a one-line reason such as
    "The trial's worker died: ...")."""
    lines = error.rstrip().splitlines()
    # Several failures (retries) are recorded one after another: only the last one counts.
    starts = [n for n, line in enumerate(lines) if line.startswith(("Traceback (most recent call last)", "--- failure"))]
    lines = lines[starts[-1]:] if starts else lines
    last_frame = None
    for number, line in enumerate(lines):
        if _FRAME.match(line):
            last_frame = number
    user_frame = code = None
    if last_frame is not None:
        frames = [(n, _FRAME.match(line)) for n, line in enumerate(lines) if _FRAME.match(line)]
        for number, match in reversed(frames):
            if not _is_library(match["file"]):
                user_frame = f"{_shown_path(match['file'])}:{match['line']} in {match['func']}"
                following = lines[number + 1] if number + 1 < len(lines) else ""
                code = following.strip() if following.startswith("    ") and not _FRAME.match(following) else None
                break
    # The exception line: the first unindented line after the last frame's source lines.
    start = 0 if last_frame is None else last_frame + 1
    tail = [line for line in lines[start:] if line and not line[0].isspace() and not line.startswith("---")]
    text = tail[0] if tail else (lines[-1].strip() if lines else "unknown error")
    error_type, sep, message = text.partition(": ")
    if not sep or " " in error_type:  # not "Type: message": a reason written by the controller
        return Failure("", text, user_frame, code)  # the headline is the reason itself
    return Failure(error_type, message, user_frame, code)


def describe(trial_id: str, failure: Failure) -> list[str]:
    """The live view's lines for the first trial that failed with this error."""
    lines = [f"trial {trial_id} failed: {failure.headline}"]
    if failure.frame:
        lines.append(f"  at {failure.frame}" + (f": {failure.code}" if failure.code else ""))
    return lines


def group(failed: Iterable[tuple[str, str]]) -> list[tuple[Failure, list[str]]]:
    """(trial id, error text) pairs grouped by distinct error (:attr:`Failure.key`), the most
    frequent first; each group's failure is its first trial's, its message saying so when
    the others' differ."""
    groups: dict[tuple[str, str], tuple[Failure, list[str], set[str]]] = {}
    for trial_id, error in failed:
        failure = parse(error)
        _, ids, messages = groups.setdefault(failure.key, (failure, [], set()))
        ids.append(trial_id)
        messages.add(failure.message)
    out = []
    for failure, ids, messages in groups.values():
        if len(messages) > 1:
            failure = dataclasses.replace(failure, message=f"{_short(failure.message)} (and {len(messages) - 1} "
                                                           f"other message{'s' if len(messages) > 2 else ''})")
        out.append((failure, ids))
    return sorted(out, key=lambda g: (-len(g[1]), g[1][0]))


def _short(message: str, chars: int = 120) -> str:
    return message if len(message) <= chars else message[: chars - 3] + "..."


def _trials(ids: list[str], shown: int = 5) -> str:
    """``3 trials: 00000, 00004, 00007`` (the first few named)."""
    names = ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
    return f"{len(ids)} trial{'s' if len(ids) > 1 else ''}: {names}" if len(ids) > 1 else f"trial {names}"


def summary(results: Results) -> list[str]:
    """Lines that sum the failed trials up, and where their tracebacks are; [] if none."""
    from raytuner._trial import TrialStatus

    failed = [(t.trial_id, t.error or "no error recorded") for t in results.trials if t.status == TrialStatus.FAILED]
    if not failed:
        return []
    lines = [f"{len(failed)} of {len(results.trials)} trials failed:"]
    for failure, ids in group(failed):
        lines.append(f"  {failure.headline}  ({_trials(ids)})")
        if failure.frame:
            lines.append(f"    at {failure.frame}" + (f": {failure.code}" if failure.code else ""))
    first = failed[0][0]
    lines.append(f"Full tracebacks: {results.path / 'trials' / first / 'error.txt'} (one per trial), "
                 "or Results.errors.")
    lines.append(f"What a trial printed: {results.path / 'trials' / first / 'log.txt'}, or "
                 f"Results.log({first!r}).")
    return lines


def all_failed(results: Results) -> bool:
    from raytuner._trial import TrialStatus

    return bool(results.trials) and all(t.status == TrialStatus.FAILED for t in results.trials)


def finish(results: Results, storage, *, verbose: int) -> Results:
    """After a driver's run: print the failure summary; if every trial failed, mark the
    experiment FAILED on disk and raise :class:`TrialsFailedError` (results are kept)."""
    from raytuner.errors import TrialsFailedError

    lines = summary(results)
    if lines and verbose:
        from raytuner._display import terminal_text  # a trial's message, shown, never acted on

        print("\n".join(f"[raytuner] {terminal_text(line)}" for line in lines), file=sys.stdout, flush=True)
    if results.meta.get("status") == "COMPLETED" and all_failed(results):
        results.meta["status"] = "FAILED"
        storage.write_experiment(results.meta)
        storage.sync()  # cloud storage: the driver's uploads have ended; this one goes up now
        headline = group((t.trial_id, t.error or "") for t in results.trials)[0][0]
        raise TrialsFailedError(
            f"{'All ' + str(len(results.trials)) + ' trials' if len(results.trials) > 1 else 'The only trial'} "
            f"of {results.path.name!r} failed, the first with "
            f"{headline.headline}" + (f" at {headline.frame}" if headline.frame else "") + ". "
            f"Fix the trainable and run again; every traceback is in {results.path}/trials/<id>/error.txt "
            "and in this error's `.results.errors`.",
            results,
        )
    return results
