"""How long an experiment has run over all its runs, and when its time budget runs out.

An experiment's time budget (the Tuner's ``time_budget_s``, a resume's, or one a control
command sets) counts the time its runs took, not the time between them: a run interrupted
after 50 minutes of a 60-minute budget, and resumed the next day, has 10 minutes left. Ray
Tune's ``time_budget_s`` carries on the same way across a restore, and NNI's
``maxExperimentDuration`` across a resume. The figure lives in experiment.json
(``run_time_s``, as of ``run_time_at``): the driver writes it every
:data:`RUN_TIME_EVERY_S` while it runs and at its end, so a run that dies without a word
leaves out at most that much of its time; the views read it with
:func:`raytuner._formats.run_time`.

Pure: no Ray, no I/O; the clocks are arguments, for the tests.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping

from raytuner._formats import is_finite, run_time

#: How often a running driver records its run time in experiment.json.
RUN_TIME_EVERY_S = 5.0


class RunClock:
    """The run time of one experiment, for the driver of one of its runs.

    Args:
        meta: experiment.json as this run found it: its ``run_time_s`` is the time of the
            earlier runs (none for a new experiment, or one written before it was kept).
        clock: A monotonic clock (seconds), for the deadline.
        wall: The wall clock, for ``run_time_at``.
    """

    def __init__(self, meta: Mapping[str, Any], clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._clock, self._wall = clock, wall
        self.before = run_time(meta) if is_finite(meta.get("run_time_s")) else 0.0
        self.start()

    def start(self) -> None:
        """This run starts now."""
        self._t0 = self._written = self._clock()

    def deadline(self, budget: float | None) -> float:
        """When a time budget of ``budget`` seconds for the whole experiment runs out, on
        ``clock``'s scale; ``inf`` for none. Already past for a budget the earlier runs used up."""
        return math.inf if budget is None else self._t0 - self.before + budget

    def elapsed(self) -> float:
        """Seconds the experiment has run, this run's so far included."""
        return self.before + self._clock() - self._t0

    def record(self) -> dict[str, float]:
        """experiment.json's fields for the run time as of now."""
        return {"run_time_s": round(self.elapsed(), 3), "run_time_at": self._wall()}

    def due(self) -> bool:
        """Whether the run time is to be written now (every :data:`RUN_TIME_EVERY_S`); a yes
        counts as written."""
        now = self._clock()
        if now - self._written < RUN_TIME_EVERY_S:
            return False
        self._written = now
        return True
