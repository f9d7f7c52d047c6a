"""The experiment page's figures: the HTML report's own builders (raytuner._report), as
plotly JSON that the page draws in place with ``Plotly.react``.

Building them reads every trial's results, so a build is cached until the experiment's
files change, and is not redone more often than every :data:`COST_FACTOR` times its own
cost (at least :data:`MIN_INTERVAL_S`): the builder is busy a tenth of the time at most, so
a watched sweep keeps its CPU; on a large sweep the figures lag (a 3 s build is redone
every 30 s), the summary and the table never do. Builds run in a process of their own, at
a lower priority: one takes seconds over thousands of trials, and in the server's process
it would hold the GIL against every other request.

That process runs ``python -m raytuner.dashboard._figures``, asked one experiment per line
on its stdin; it ends when its stdin does (the server's end, however it ends). Not a
multiprocessing pool: its "spawn" start imports the user's script again in the child, so a
script that starts the dashboard without an ``if __name__ == "__main__":`` guard ran
itself, a sweep included, a second time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytuner.dashboard._files import Refused
from raytuner.dashboard._root import Root
from raytuner.dashboard._store import ExperimentView, NotFound
from raytuner.errors import ExperimentError

MIN_INTERVAL_S = 1.5
COST_FACTOR = 10


@dataclass
class _Built:
    signature: tuple
    at: float
    cost: float
    payload: str


class _BuilderGone(Exception):
    """The builder process ended (killed, out of memory) before it answered."""


class _Builder:
    """The builder process and its pipes; one build at a time."""

    def __init__(self) -> None:
        here = str(Path(__file__).resolve().parents[2])  # the folder this raytuner is imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen([sys.executable, "-m", "raytuner.dashboard._figures"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                         encoding="utf-8")
        self._lock = threading.Lock()

    def build(self, root: str, name: str) -> str:
        with self._lock:
            try:
                self._process.stdin.write(json.dumps([root, name]) + "\n")
                self._process.stdin.flush()
                line = self._process.stdout.readline()
            except (BrokenPipeError, OSError, ValueError):
                line = ""
            if not line:
                raise _BuilderGone
            answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["payload"]

    def close(self) -> None:
        try:
            self._process.stdin.close()  # its end
            self._process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
        if self._process.stdout is not None:
            self._process.stdout.close()


class FigureCache:
    def __init__(self) -> None:
        self._built: dict[str, _Built] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._builder_process: _Builder | None = None

    def _builder(self) -> _Builder:
        with self._guard:
            if self._builder_process is None:
                self._builder_process = _Builder()
            return self._builder_process

    def close(self) -> None:
        with self._guard:
            builder, self._builder_process = self._builder_process, None
        if builder is not None:
            builder.close()

    def get(self, view: ExperimentView) -> str:
        """The figures as a JSON document: ``{"figures": [...], "message": ...}``."""
        with self._guard:
            lock = self._locks.setdefault(view.name, threading.Lock())
        with lock:  # one build per experiment at a time; the others wait and share it
            signature = view.signature()
            built = self._built.get(view.name)
            now = time.monotonic()
            if built is not None and (built.signature == signature
                                      or now - built.at < max(MIN_INTERVAL_S, COST_FACTOR * built.cost)):
                return built.payload
            builder = self._builder()
            try:
                payload = builder.build(str(view.files.root), view.name)
            except _BuilderGone:  # the builder died (killed, out of memory): a new one next time
                with self._guard:
                    if self._builder_process is builder:
                        self._builder_process = None
                builder.close()
                return _message("The figures' builder process stopped; they are built again on the next update.")
            except Exception as exc:  # noqa: BLE001 - a fault in one figure must not fail the page
                payload = _message(f"The figures could not be built ({str(exc)[:300]}).")
            self._built[view.name] = _Built(signature, time.monotonic(), time.monotonic() - now, payload)
            return payload


def _serve() -> None:
    """The builder process: a build for each ``[root, name]`` line on stdin, its answer as
    one line on stdout; at a lower priority, so that a watched sweep keeps its CPU."""
    os.nice(10)
    out = sys.stdout
    sys.stdout = sys.stderr  # what a builder prints must not end up in an answer
    for line in sys.stdin:
        try:
            root, name = json.loads(line)
            answer = {"payload": build(root, name)}
        except Exception as exc:  # noqa: BLE001 - said to the server, which shows it in place of the figures
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def _message(text: str) -> str:
    return json.dumps({"figures": [], "message": text})


def _results(view: ExperimentView) -> tuple[Any, list[str]]:
    """The experiment as :class:`raytuner.Results`, read as the rest of the dashboard reads
    it (real files inside ROOT only), and the damaged trials left out of it."""
    from raytuner._results import Results, TrialResult
    from raytuner._trial import Trial

    cache = view.refresh(force=True)
    if cache.damaged:
        raise ExperimentError(f"No figures: {cache.damaged}.")
    trials, left_out = [], []
    for trial_id in sorted(cache.trials):
        entry = cache.trials[trial_id]
        path = view.path / "trials" / trial_id
        try:
            fault = entry.damaged or view.files.jsonl(path / "results.jsonl")[1]
            error = None if fault else view.files.text(path / "error.txt")
        except Refused as exc:
            fault = str(exc)
        if fault:
            left_out.append(fault)
            continue
        trial = Trial.from_record(entry.record, entry.config, error)  # (caught up with its kept reports)
        trials.append(TrialResult.from_trial(trial, path))
    meta = cache.meta
    return Results(view.path, trials, meta.get("metric"), meta.get("mode", "min"), meta), left_out


def build(root: str, name: str) -> str:
    from raytuner._report import _TITLES, _data, _figures, builders

    try:
        results, left_out = _results(Root(root).experiment(name))
        data = _data.collect(results)
    except (ExperimentError, NotFound) as exc:
        return _message(str(exc))
    parts = []
    for builder in builders(data):
        made = builder(data)
        if made is None:  # the figure does not apply to this experiment
            continue
        if isinstance(made, _figures.Figure):
            head = json.dumps({"key": made.key, "title": made.title, "caption": made.caption})
            # plotly's own encoder (numpy arrays, dates), spliced in as it is.
            parts.append(head[:-1] + ', "spec": ' + made.figure.to_json() + "}")
        else:
            parts.append(json.dumps({"key": builder.__name__, "title": _TITLES[builder.__name__], "skipped": made}))
    message = None
    if left_out:
        more = f" (and {len(left_out) - 1} more)" if len(left_out) > 1 else ""
        message = f"{len(left_out)} damaged trial{'s are' if len(left_out) > 1 else ' is'} left out: {left_out[0]}{more}."
    return '{"figures": [' + ", ".join(parts) + '], "message": ' + json.dumps(message) + "}"


if __name__ == "__main__":
    _serve()
