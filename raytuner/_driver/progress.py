"""Progress in the terminal: a live table on a TTY, occasional single lines otherwise."""

from __future__ import annotations

import math
import re
import sys
import time
from typing import IO, Callable, Iterable, Mapping

from raytuner._best import DEFAULT_SCOPE, FrontMember, pareto_front, ranked, shown_value
from raytuner._display import terminal_text
from raytuner._driver import failures as _failures
from raytuner._objectives import Objectives, is_finite_value
from raytuner._trial import Trial, TrialStatus

_ORDER = [s.value for s in TrialStatus]


class Progress:
    """Shows counts by status, the best trial so far and the top few trials.

    Args:
        verbose: 0 silent; 1 live view (or a line every ``line_every_s`` when not a TTY)
            and a final summary; 2 also one line per finished trial.
        describe: Returns one line of scheduler state (rungs, brackets) or None; called
            at each refresh. The controller passes the scheduler's optional ``describe``.
        scope: The experiment's ``best_scope``: the best trial and the Pareto front are
            :mod:`raytuner._best`'s, as Results and every other view has them.
    """

    def __init__(self, trials: Mapping[str, Trial], *, name: str, metric: str | list[str] | None,
                 mode: str | list[str], total: int | None,
                 verbose: int = 1, stream: IO[str] | None = None, line_every_s: float = 30.0, top: int = 5,
                 describe: Callable[[], str | None] | None = None, scope: str = DEFAULT_SCOPE,
                 ran_before: float = 0.0):
        self._trials = trials
        self._name = name
        self._objectives = Objectives.of(metric, mode)
        self._metrics = self._objectives.metrics  # every objective's column
        self._metric = None if self._objectives.multi else metric  # the one metric "best" is by
        self._mode = None if self._objectives.multi else mode
        self._scope = scope
        self.total = total  # trials in all: the driver moves it when a command changes num_trials
        self._verbose = verbose
        self._stream = stream or sys.stdout
        self._tty = self._stream.isatty() if hasattr(self._stream, "isatty") else False
        self._every = 0.5 if self._tty else line_every_s
        self._top = top
        self._t0 = time.monotonic() - ran_before  # the run time shown counts the earlier runs'
        self._last = -math.inf
        self._live = None
        self.extra: str | None = None  # one line of scheduler state, when the scheduler has some
        self._describe = describe
        self._failures: dict[tuple[str, str], int] = {}  # distinct errors seen, and how often
        self._warnings: set[str] = set()  # the kinds of raytuner's warnings inside trials shown

    def start(self) -> None:
        if self._verbose and self._tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(file=self._stream), refresh_per_second=2, transient=False)
            self._live.start()

    def update(self, force: bool = False) -> None:
        if not self._verbose:
            return
        now = time.monotonic()
        if not force and now - self._last < self._every:
            return
        self._last = now
        self._refresh_extra()
        if self._live is not None:
            self._live.update(self._render())
        else:
            print(terminal_text(self.line()), file=self._stream, flush=True)

    def trial_ended(self, trial: Trial) -> None:
        if not self._verbose:
            return
        lines: list[str] = []
        if trial.status == TrialStatus.FAILED:
            failure = _failures.parse(trial.error or "no error recorded")
            seen = self._failures.get(failure.key, 0)
            self._failures[failure.key] = seen + 1
            if not seen:  # the first trial of each distinct error speaks; the rest are counted
                lines = _failures.describe(trial.trial_id, failure)
                lines.append("  (later trials failing the same way are counted, not shown; "
                             "tracebacks in each trial's error.txt)")
            elif self._verbose >= 2:
                lines = [f"trial {trial.trial_id} failed: {failure.headline}"]
        elif self._verbose >= 2:
            value = "".join(f" {m}={_short(trial.metrics.get(m))}" for m in self._metrics)
            reports = f"{trial.iteration} report{'s' * (trial.iteration != 1)}"
            lines = [f"trial {trial.trial_id} {trial.status.value.lower()} after {reports}{value}"]
        self._say(lines)

    def trial_warned(self, trial_id: str, notes: Iterable[tuple[str, str]]) -> None:
        """raytuner's warnings inside a trial, (kind, text): the first of each kind is shown
        (most are the same in every trial); all are in the trials' logs."""
        if not self._verbose:
            return
        lines = []
        for kind, text in notes:
            if kind not in self._warnings:
                self._warnings.add(kind)
                lines.append(text if trial_id in text else f"trial {trial_id}: {text}")
                lines.append(f"  (not shown again for other trials; each trial's log has its own: "
                             f"raytuner logs {self._name} {trial_id})")
        self._say(lines)

    def _say(self, lines: list[str]) -> None:
        for line in lines:
            # An exception's message, a config value: a trial's strings, shown, never acted on
            message = f"[raytuner] {terminal_text(line)}"
            if self._live is not None:
                self._live.console.print(message, markup=False, highlight=False)
            else:
                print(message, file=self._stream, flush=True)

    def note(self, line: str, verbose: int = 1) -> None:
        """Say ``line`` above the live view (or as a line of its own) from ``verbose`` up."""
        if self._verbose >= verbose:
            self._say([line])

    def budget_reached(self, ran: float, never_started: int, resume: str) -> None:
        """Say that the time budget ended the run, after ``ran`` seconds of run time (the
        earlier runs' included), with the trials it never started and the command that runs them."""
        left = (f"; {never_started} trial{'s' if never_started != 1 else ''} never started: `{resume} --time-budget "
                "SECONDS` runs them with a larger budget" if never_started > 0 else "")
        self.note(f"{self._name}: time budget reached after {ran:.0f} s of run time: its running trials "
                  f"are stopped{left}.")

    def close(self) -> None:
        if not self._verbose:
            return
        self._refresh_extra()
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
        else:
            print(terminal_text(self.line()), file=self._stream, flush=True)
            from rich.console import Console

            Console(file=self._stream, width=120).print(self._table())

    def _refresh_extra(self) -> None:
        from raytuner._driver import autoscale

        text = None
        if self._describe is not None:
            try:
                text = self._describe()
            except Exception as exc:  # the view must never end an experiment
                text = f"scheduler info unavailable ({type(exc).__name__})"
        try:
            waiting = autoscale.waiting()  # "waiting for nodes: 2 x gpu_worker" on an autoscaling cluster
        except Exception:
            waiting = None
        text = " | ".join(str(t) for t in (waiting, text) if t)
        self.extra = " ".join(text.split()) if text else None  # one line, whatever it returned

    # -- rendering -----------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self._trials.values():
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        return {s: counts[s] for s in _ORDER if s in counts}

    def _ranked(self) -> list[Trial]:
        """The top trials: with one metric best first by :func:`raytuner._best.ranked`; with
        several the front first, then the others by the Pareto order of their last values."""
        if self._objectives.multi:
            from raytuner._pareto import pareto_order

            front = [member.trial for member in self._front()]
            on_front = {t.trial_id for t in front}
            others = [t for t in self._trials.values() if t.trial_id not in on_front and is_finite_value(t.last_value)]
            ordered = front + ([others[i] for i in pareto_order([t.last_value for t in others])] if others else [])
            return ordered[: self._top]
        if not self._metric:
            return []
        order = ranked(list(self._trials.values()), self._metric, self._mode, self._scope)
        return [t for t in order if self._shown(t) is not None][: self._top]

    def _shown(self, trial: Trial) -> float | None:
        """The value ``trial`` is ranked by (one metric), as every view shows it."""
        return shown_value(trial, self._metric, self._mode, self._scope)

    def _front(self) -> list[FrontMember[Trial]]:
        """The Pareto front in the experiment's scope, by the one definition every view uses."""
        return pareto_front(self._trials.values(), self._objectives, self._scope, reports=self._reports)

    def _reports(self, trial: Trial) -> list[dict[str, float]]:
        """The trial's kept reports of the objectives (scope "all"), from its trajectory."""
        metrics, unsigned = self._objectives.metrics, self._objectives.unsigned
        return [{"iteration": iteration, **dict(zip(metrics, unsigned(value)))}
                for iteration, _, value in trial.trajectory if isinstance(value, tuple)]

    def _front_line(self) -> str | None:
        """With several objectives: how many trials the Pareto front holds."""
        if not self._objectives.multi:
            return None
        return f"Pareto front: {len(self._front())} trials ({', '.join(self._metrics)})"

    def line(self) -> str:
        counts = self._counts()
        total = f"/{self.total}" if self.total else ""
        parts = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
        text = f"[raytuner] {self._name}: {len(self._trials)}{total} trials" + (f" ({parts})" if parts else "")
        ranked = self._ranked()
        if ranked and self._metric:
            best = ranked[0]
            text += f" | best {self._metric}={self._shown(best):.6g} (trial {best.trial_id})"
        front = self._front_line()
        if front:
            text += f" | {front}"
        if self.extra:
            # ASHA's rungs in words, as the live header says them; any other scheduler's line as it is
            text += f" | {explain(self.extra) if _RUNGS.match(self.extra.strip()) else self.extra}"
        return text + f" | {time.monotonic() - self._t0:.0f}s"

    def header(self) -> list[str]:
        """The live view's header: short lines that fit 80 columns, not one long line."""
        counts = self._counts()
        total = f"/{self.total}" if self.total else ""
        parts = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
        lines = [f"[raytuner] {self._name}: {len(self._trials)}{total} trials" + (f" ({parts})" if parts else "")
                 + f", {time.monotonic() - self._t0:.0f}s"]
        ranked = self._ranked()
        if ranked and self._metric:
            best = ranked[0]
            lines.append(f"best {self._metric}={_short(self._shown(best))} (trial {best.trial_id})")
        front = self._front_line()
        if front:
            lines.append(front)
        if self.extra:
            lines.append(explain(self.extra))
        constant = _constant_config(self._trials.values())
        if constant:
            lines.append("same in every trial: " + ", ".join(f"{k}={_short(v, 4)}" for k, v in constant.items()))
        return lines

    def _table(self):
        from rich import box
        from rich.table import Table
        from rich.text import Text  # a trial's strings are shown as written, never read as markup ("[bold]")

        constant = _constant_config(self._trials.values())
        # No side borders (as in the CLI): ten more columns for the config before it wraps.
        title = terminal_text("top trials by Pareto order" if self._objectives.multi else
                              f"top trials by {self._metric}" if self._metric else "trials")
        table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("trial", "status", "iter", *(self._columns() or ("metric",))):
            table.add_column(Text(terminal_text(column)), no_wrap=True)
        table.add_column("config")
        points = {m.trial.trial_id: m.values for m in self._front()} if self._objectives.multi else {}
        for trial in self._ranked() or list(self._trials.values())[: self._top]:
            values = [Text(terminal_text(_short(v))) for v in self._values(trial, points)] or ["-"]
            config = ", ".join(f"{k}={_short(v, 4)}" for k, v in trial.config.items() if k not in constant)
            table.add_row(trial.trial_id, trial.status.value, str(trial.iteration), *values,
                          Text(terminal_text(config)))
        return table

    def _columns(self) -> list[str]:
        if self._metric and self._scope == "all":
            return [f"best {self._metric}"]
        return list(self._metrics)

    def _values(self, trial: Trial, points: dict[str, dict[str, float]]) -> list[object]:
        """What the table shows of ``trial``: the value it is ranked by (one metric), or
        the point that put it on the front (several), else its last report."""
        if self._metric:
            return [self._shown(trial)]
        return [points.get(trial.trial_id, trial.metrics).get(m) for m in self._metrics]

    def _render(self):
        from rich.console import Group
        from rich.text import Text

        return Group(*(Text(terminal_text(line)) for line in self.header()), self._table())


_RUNGS = re.compile(r"^rungs ((?:[0-9.e+-]+:\d+ ?)+)$")


def explain(extra: str) -> str:
    """ASHA's ``rungs 1:30 3:17 9:13`` in words: how many trials reached each rung."""
    match = _RUNGS.match(extra.strip())
    if not match:
        return f"scheduler: {extra}"
    pairs = [pair.split(":") for pair in match.group(1).split()]
    reached = ", ".join(f"{count} reached {level}" if i else f"{count} trials reached {level}"
                        for i, (level, count) in enumerate(pairs))
    return f"ASHA rungs: {reached}"


def _constant_config(trials, at_least: int = 5) -> dict[str, object]:
    """Config values every trial shares (e.g. ``max_epochs=27``): said once, not per row.

    Only from ``at_least`` trials on: two trials that drew the same ``units`` would
    otherwise be announced as "same in every trial".
    """
    configs = [t.config for t in trials]
    if len(configs) < at_least:
        return {}
    first = configs[0]
    return {k: v for k, v in first.items() if all(k in c and c[k] == v for c in configs[1:])}


def _short(value: object, digits: int = 5) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 24 else text[:11] + "…" + text[-12:]
