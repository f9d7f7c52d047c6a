"""Hooks into an experiment's life, for loggers (TensorBoard, MLflow) and user code.

The controller calls them on its own thread, in this order: ``on_experiment_start`` once;
per trial ``on_trial_start`` (again after each pause or retry), ``on_trial_result`` per
report and ``on_trial_end`` whenever it leaves its worker (paused, finished, failed);
``on_experiment_end`` once. They run on the controller's loop: keep them quick. An
exception in a callback is logged and the callback disabled, never the experiment ended.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from raytuner._results import Results
    from raytuner._trial import TrialResult


class Callback:
    """Base class: override the hooks you need."""

    def on_experiment_start(self, path: Path, meta: Mapping[str, Any]) -> None:
        """``meta`` is what experiment.json holds: name, metric, mode, space, ..."""

    def on_trial_start(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """The trial was placed on a worker (first time, after a pause, or a retry)."""

    def on_trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """One report: the user's metrics plus ``iteration``, ``time_total_s``, ``timestamp``."""

    def on_trial_end(self, trial: TrialResult) -> None:
        """The trial left its worker; ``trial.status`` says how (PAUSED trials may return)."""

    def on_experiment_end(self, results: Results) -> None:
        """Every trial is finished (or the experiment was interrupted)."""
