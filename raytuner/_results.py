"""Results of an experiment: the best trial, every trial, a DataFrame, per-trial history."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from raytuner._best import DEFAULT_SCOPE, SCOPES, best_trial
from raytuner._formats import AUTO_KEYS, flatten
from raytuner._storage import lineage
from raytuner._storage.history import RESULTS_FILE, last_row
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialResult, TrialStatus
from raytuner.errors import ConfigError, ExperimentError, invalid
from raytuner.search import Outcome, TrialEnd

if TYPE_CHECKING:
    import pandas as pd


class Results:
    """What :meth:`raytuner.Tuner.fit` and :func:`raytuner.load` return.

    Attributes:
        path: The experiment's folder.
        metric, mode: What "best" means.
        trials: Every trial, in id order.
    """

    def __init__(self, path: Path, trials: Sequence[TrialResult], metric: str | None, mode: str, meta: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.trials = list(trials)
        self.metric = metric
        self.mode = mode
        self.meta = dict(meta or {})
        self._by_id = {t.trial_id: t for t in self.trials}

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for trial in self.trials:
            counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        return f"<Results {self.path.name!r}: {len(self.trials)} trials ({summary})>"

    def __len__(self) -> int:
        return len(self.trials)

    def __getattr__(self, name: str) -> Any:
        if name == "fit":  # rt.Tuner.resume(...).fit(): resume has already run the experiment
            raise AttributeError(
                "'Results' has no attribute 'fit': raytuner.Tuner.resume() runs the experiment at once and "
                "returns its Results, so there is nothing left to fit. Use the Results it returned."
            )
        raise AttributeError(f"'Results' object has no attribute {name!r}")

    def __getitem__(self, trial_id: str) -> TrialResult:
        return self._by_id[trial_id]

    @property
    def best(self) -> TrialResult:
        """The trial with the best last reported value of the Tuner's metric."""
        return self.get_best()

    def get_best(self, metric: str | None = None, mode: str | None = None, scope: str | None = None) -> TrialResult:
        """The best trial by ``metric`` (default: the Tuner's), by the one rule every view
        uses (:func:`raytuner._best.best_trial`).

        Args:
            metric: A reported metric; defaults to the Tuner's.
            mode: "min" or "max"; defaults to the Tuner's.
            scope: "last" compares each trial's last report (as Ray Tune does); "all"
                compares each trial's best report (only for the Tuner's own metric).
                Default: the experiment's ``best_scope`` (the Tuner's argument, "last"
                unless set), which the CLI, the report and the dashboard use too.

        NaN and infinite values are never chosen; a FAILED trial only when no other trial
        has a finite value.
        """
        metric = metric or self.metric
        mode = mode or self.mode
        scope = scope or self.scope
        if metric is None:
            raise ConfigError("No metric to rank trials by: pass `metric=` to the Tuner or to get_best().")
        if mode not in ("min", "max"):
            raise invalid("Results.get_best", "mode", mode, "'min' or 'max'", "Pass mode='min' or mode='max'.")
        if scope not in SCOPES:
            raise invalid("Results.get_best", "scope", scope, "'last' or 'all'",
                          "Pass scope='last' (each trial's last report) or 'all' (any report).")
        best = best_trial(self.trials, metric, mode, scope, own_metric=(metric == self.metric and mode == self.mode))
        if best is None:
            failed = sum(t.status == TrialStatus.FAILED for t in self.trials)
            if failed and failed == len(self.trials):
                why = f"every trial failed ({failed}); their tracebacks are in `.errors`"
            elif failed:
                why = f"{failed} of {len(self.trials)} trials failed (see `.errors`), the others never reported it"
            else:
                why = f"{len(self.trials)} trials; check the metric's name and the trials' reports"
            raise ExperimentError(f"No trial of {self.path.name!r} reported a finite {metric!r}: {why}.")
        return best

    @property
    def scope(self) -> str:
        """How "best" is meant in this experiment: "last" or "all" (see :meth:`get_best`)."""
        scope = self.meta.get("best_scope")
        return scope if scope in SCOPES else DEFAULT_SCOPE

    @property
    def errors(self) -> dict[str, str]:
        """Tracebacks of failed (or retried) trials, by trial id."""
        return {t.trial_id: t.error for t in self.trials if t.error}

    def dataframe(self) -> pd.DataFrame:
        """One row per trial: status, reports, time, last metrics, best value, ``config/...``."""
        import pandas as pd

        rows = []
        best_col = f"best_{self.metric}" if self.metric else None
        sign = 1.0 if self.mode == "min" else -1.0
        for trial in self.trials:
            row: dict[str, Any] = {
                "trial_id": trial.trial_id,
                "status": trial.status.value,
                "iteration": trial.iteration,
                "time_total_s": trial.time_total_s,
            }
            row.update(trial.metrics)
            if best_col:
                row[best_col] = None if trial.best_value is None else sign * trial.best_value
            row.update(flatten(trial.config, "config/"))
            rows.append(row)
        return pd.DataFrame(rows)

    def history(self, trial_id: str) -> pd.DataFrame:
        """Every report of one trial's trajectory, one row each, iterations 1..n in order.

        A trial that restarted from a checkpoint at iteration k (or from scratch, k = 0)
        continued from there: the rows its lost attempt wrote after k are superseded, kept
        in results.jsonl for audit but not shown here. The ``attempt`` column says which
        run of the trial made each row; ``checkpoint`` names the checkpoint a row commits.
        ``config/<name>`` columns hold the config in effect at each row: under PBT it
        changes where the trial exploited another, and ``cloned_from``/``cloned_iteration``
        then name the trial and report it restarted from (see :meth:`schedule`).
        """
        import pandas as pd

        storage = self._storage(trial_id)
        history = storage.read_history(trial_id)
        history.raise_if_damaged()
        return pd.DataFrame(lineage.annotate(history, storage.read_trial_config(trial_id)))

    def schedule(self, trial_id: str) -> pd.DataFrame:
        """The config schedule that trained one trial's model, one row per change.

        Columns: ``resource`` and ``iteration`` (the report from which the config applies;
        0 for the first), ``trial_id`` (whose run trained that stretch: under PBT the
        schedule follows the trial back through the trials it cloned, each up to the
        report it was cloned at) and ``config/<name>``. A trial that never exploited has
        one row. Replay it from scratch with ``rt.PBTReplay(results.path, trial_id)``.
        """
        import pandas as pd

        segments = lineage.for_experiment(self._storage(trial_id)).schedule(trial_id)
        return pd.DataFrame([{"resource": s.resource, "iteration": s.start, "trial_id": s.trial_id,
                              **flatten(s.config, "config/")} for s in segments])

    def _storage(self, trial_id: str) -> ExperimentStorage:
        if trial_id not in self._by_id:
            raise KeyError(f"No trial {trial_id!r} in {self.path.name!r}; trials are {sorted(self._by_id)[:10]}...")
        return ExperimentStorage(self.path)

    def observations(self) -> list[tuple[dict[str, Any], Outcome]]:
        """Each finished trial's config and how it ended, to continue or fork a search.

        Pass them to a searcher that learns from past trials::

            HyperOptSearcher(warm_start=rt.load(path).observations())

        Values are the Tuner's metric signed to minimize, as searchers see them, so the new
        experiment must optimise the same metric. A STOPPED trial keeps the resource it
        reached and the scheduler's ``max_resource`` (``inf`` if the experiment did not
        record one), so the searcher still knows a low-fidelity value from a final one.
        Pending, running and paused trials are left out: their result is not known yet.
        """
        ends = {TrialStatus.COMPLETED: TrialEnd.COMPLETED, TrialStatus.STOPPED: TrialEnd.STOPPED,
                TrialStatus.FAILED: TrialEnd.FAILED}
        max_resource = self.meta.get("max_resource")
        max_resource = math.inf if max_resource is None else float(max_resource)
        return [
            (dict(t.config), Outcome(ends[t.status], t.last_value, t.resource, max_resource))
            for t in self.trials
            if t.status in ends
        ]

    def report(self, path: str | os.PathLike[str] | None = None, *, metric: str | None = None,
               mode: str | None = None) -> Path:
        """Write a self-contained HTML report with interactive plots (needs plotly).

        Args:
            path: The .html file (or a folder for ``report.html``); default
                ``<experiment>/report.html``.
            metric, mode: What to plot and rank by; default the Tuner's.

        Returns:
            The path written.
        """
        from raytuner._report import write_report

        return write_report(self, self.path / "report.html" if path is None else path, metric=metric, mode=mode)


def load(path: str | os.PathLike[str]) -> Results:
    """Read the results of a finished or running experiment from its folder.

    Reading changes nothing in the folder and runs no code from it.
    """
    storage = ExperimentStorage(path)
    meta = storage.read_experiment()
    trials = []
    for trial_id in storage.trial_ids():
        record, config, error = storage.read_trial(trial_id)
        trial = Trial.from_record(record, config, error)
        if not trial.status.is_finished():  # trial.json lags behind a running trial's reports
            last = last_row(storage.trial_path(trial_id) / RESULTS_FILE)
            if last is not None:
                trial.metrics = {k: v for k, v in last.items() if k not in AUTO_KEYS}
                trial.iteration = last.get("iteration", trial.iteration)
        if trial.checkpoint and not (storage.trial_path(trial_id) / trial.checkpoint).is_dir():
            trial.checkpoint = None  # deleted by hand, or pruned after this record was written
        trials.append(TrialResult.from_trial(trial, storage.trial_path(trial_id)))
    return Results(storage.path, trials, meta.get("metric"), meta.get("mode", "min"), meta)
