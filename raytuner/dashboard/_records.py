"""The statuses the dashboard shows, and the checks of what it reads.

A file that is not valid JSON, or has a field of the wrong type, marks its experiment or
trial DAMAGED (docs/architecture.md: "damaged files mark that experiment or trial DAMAGED in every
view; the rest stay readable"): it keeps its place in the list and the counts, with the
file and the fault, instead of failing the page or silently dropping out. The checks are
the ones every reader uses (:mod:`raytuner._storage.records`); the statuses come from
:class:`raytuner._trial.TrialStatus`.
"""

from __future__ import annotations

from raytuner._storage.records import TRIAL_STATUSES, config_fault, experiment_fault, trial_fault
from raytuner._trial import TrialStatus

__all__ = ["DAMAGED", "FINISHED", "INTERRUPTED", "SETTLED", "STOPPABLE", "TRIAL_STATUSES", "config_fault",
           "experiment_fault", "trial_fault"]

DAMAGED = TrialStatus.DAMAGED.value
INTERRUPTED = "INTERRUPTED"
FINISHED = tuple(s.value for s in TrialStatus if s.is_finished())
#: Finished for good: their files no longer change (a FAILED trial may be re-run).
SETTLED = tuple(s for s in FINISHED if s != TrialStatus.FAILED.value)
#: Trials a stop command applies to.
STOPPABLE = tuple(s for s in TRIAL_STATUSES if not TrialStatus(s).is_finished())
