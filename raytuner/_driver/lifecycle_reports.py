"""The lifecycle's handling of what the trials send: their reports (recorded, fed to the
searcher and the scheduler, their checkpoints committed and pruned) and their ends (paused,
stopped, completed, failed and retried), and the ending of paused trials the scheduler will
never resume.

:class:`ReportHandlers` is part of :class:`raytuner._driver.lifecycle.Lifecycle`, which
inherits it; the handlers live here to keep each module readable.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

from raytuner import errors
from raytuner._driver.events import AppendError, AppendResults, Command, DeleteCheckpoints, Notify
from raytuner._driver.exploits import Exploits, unchecked
from raytuner._driver.trial_state import LifecycleSettings, Run, RunPhase, checkpoint_gone
from raytuner._objectives import Objectives
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.protocol import Report, Signal, TrialExit
from raytuner.errors import RayTunerError
from raytuner.schedulers import Decision, Scheduler
from raytuner.search import Searcher, TrialEnd

logger = logging.getLogger("raytuner")


class ReportHandlers:
    # What the handlers use of the Lifecycle they are part of.
    settings: LifecycleSettings
    objectives: Objectives
    trials: dict[str, Trial]
    searcher: Searcher
    scheduler: Scheduler
    abort: BaseException | None
    _runs: dict[str, Run]
    _reruns: set[str]
    _out: list[Command]
    _restart_reason: dict[str, str]
    _exploits: Exploits
    _stored: Callable[[str, str], bool] | None
    _clock: Callable[[], float]

    if TYPE_CHECKING:
        def _set_status(self, trial: Trial, status: TrialStatus, note: str | None = None, *,
                        notify: bool = True, record: bool = True) -> None: ...

        def _close(self, trial: Trial, end: TrialEnd) -> None: ...

    # -- reports and ends ------------------------------------------------------------------
    def _record(self, trial: Trial, run: Run, reports: list[Report]) -> Decision | None:
        """Record the reports, feed them to searcher and scheduler; the decision to send
        (None: no report awaits one and none but CONTINUE was made)."""
        if not reports:
            return None
        rows = []
        decision: Decision | None = None
        committed = False
        for report in reports:
            row = dict(report.metrics)
            row.update(iteration=report.iteration, time_total_s=report.time_total_s, timestamp=report.timestamp,
                       attempt=trial.attempt)
            if self.settings.resource_attr is not None:
                row["resource"] = report.resource
            if report.checkpoint is not None:
                # The worker put the folder in storage before it sent the report: the row
                # that names it commits it.
                row["checkpoint"] = report.checkpoint
                trial.commit(report.checkpoint, report.iteration, report.time_total_s, report.metrics, trial.attempt)
                committed = True
            rows.append(row)
            # A float, or with several objectives a tuple signed per metric (the worker
            # checked that each report holds every objective).
            value = self.objectives.signed(report.metrics)
            trial.observe(report.iteration, report.resource, report.metrics, value, report.time_total_s)
            if report.awaits_decision and self.abort is None:
                self.abort = unchecked(self.scheduler, trial, report.resource)
            # A restarted trial re-reports resources searcher and scheduler have seen; only
            # progress beyond them is news to them.
            if (value is None or run.decision or trial.trial_id in self._reruns
                    or (trial.fed_resource is not None and report.resource <= trial.fed_resource)):
                continue
            trial.fed_resource = report.resource
            self.searcher.on_trial_result(trial.trial_id, report.resource, value)
            made = self.scheduler.on_result(trial.trial_id, report.resource, value)
            self._out.extend(self._exploits.take(self.scheduler, self.trials))  # the donor's checkpoint, copied now
            if made is not Decision.CONTINUE and decision in (None, Decision.CONTINUE):
                decision = made
        if decision is None and reports[-1].awaits_decision:
            decision = Decision.CONTINUE  # the training loop waits for an answer, whatever was fed where
        self._out.append(AppendResults(trial.trial_id, rows))
        keep = self.settings.checkpoints_to_keep
        if committed and keep is not None and len(trial.checkpoints) > keep:
            # Only now: an older checkpoint goes once the row committing a newer one is written.
            old = trial.checkpoints[:-keep]
            trial.forget(old)
            self._out.append(DeleteCheckpoints(trial.trial_id, tuple(old)))
        self._out.extend(Notify("on_trial_result", (trial.trial_id, row)) for row in rows)
        self._stop_paused_losers()
        return decision

    def _on_exit(self, trial: Trial, run: Run, exit: TrialExit) -> None:
        if exit.signal is Signal.ERROR:
            if (exit.error_type == errors.CheckpointGoneError.__name__ and run.decision is not Decision.STOP
                    and checkpoint_gone(trial, self._stored)):
                self._restart_reason[trial.trial_id] = "checkpoint gone"  # no failure: see checkpoint_gone
                self._set_status(trial, TrialStatus.PENDING, notify=False)
                return
            if exit.fatal and self.abort is None:
                # A bug in the script (a report the Tuner cannot use), the same in every trial.
                self.abort = errors.rebuilt(exit.error_type, exit.message)
            self._on_failure(trial, exit.error or "", retry=run.decision is not Decision.STOP)
            return
        decided = run.decision
        if decided is None:
            decided = {Signal.STOP: Decision.STOP, Signal.PAUSE: Decision.PAUSE}.get(exit.signal)
        if decided is Decision.PAUSE:
            self._set_status(trial, TrialStatus.PAUSED)
            if run.phase is RunPhase.PROMOTED:
                self._set_status(trial, TrialStatus.PENDING, notify=False)  # next in line for a worker
                self._restart_reason[trial.trial_id] = "promotion"
        elif decided is Decision.STOP and exit.signal is not Signal.COMPLETED:
            self._set_status(trial, TrialStatus.STOPPED)
            self._close(trial, TrialEnd.STOPPED)
        else:  # it returned, the Tuner's stop= was reached, or the scheduler saw its full budget
            if decided is Decision.STOP:
                # The stop (a command's, the run's end) reached the worker after the trainable
                # had returned: it ran its whole course, so it is COMPLETED, not ended early.
                trial.note = f"completed before it was {trial.note}" if trial.note else None
            if run.cloned_at is not None and trial.iteration == run.cloned_at:
                _cloned_at_its_end(trial)
            self._set_status(trial, TrialStatus.COMPLETED)
            if decided is None and trial.trial_id not in self._reruns:  # else already closed there
                self.scheduler.on_trial_complete(trial.trial_id)
            self._close(trial, TrialEnd.COMPLETED)
        self._stop_paused_losers()

    def _on_failure(self, trial: Trial, error: str, retry: bool = True) -> None:
        """``retry``: False for a trial that failed while it was being stopped (a command's or
        the scheduler's stop): it ends FAILED whatever retries it has left."""
        trial.num_failures += 1
        trial.error = (trial.error + "\n" if trial.error else "") + error
        self._out.append(AppendError(
            trial.trial_id, f"--- failure {trial.num_failures} at {time.ctime(self._clock())} ---\n{error}"))
        if retry and trial.num_failures <= self.settings.max_failures and self.abort is None:
            self._set_status(trial, TrialStatus.PENDING, notify=False)
            logger.warning("Trial %s failed (%d of %d retries used); retrying from %s.", trial.trial_id,
                           trial.num_failures, self.settings.max_failures,
                           "its latest checkpoint" if trial.checkpoint else "scratch (it has no checkpoint yet)")
            return
        self._set_status(trial, TrialStatus.FAILED)
        self.scheduler.on_trial_error(trial.trial_id)
        self._close(trial, TrialEnd.FAILED)
        self._stop_paused_losers()
        if self.settings.fail_fast and self.abort is None:
            self.abort = RayTunerError(
                f"Trial {trial.trial_id} failed and `fail_fast=True`, so the experiment stopped. Its results "
                f"so far are in {self.settings.experiment_path}; fix the cause, then continue it with "
                f"raytuner.Tuner.resume({self.settings.experiment_path!r}).\n{error}"
            )

    # -- ending trials the lifecycle's way -------------------------------------------------
    def _stop_paused_losers(self) -> None:
        """Paused trials the scheduler will never resume end as STOPPED (and exploits it
        decided meanwhile are taken). One whose pause is still on its way from the worker
        (a Hyperband round that another trial's report closed first) ends STOPPED when it
        lands: the scheduler names each trial once."""
        self._out.extend(self._exploits.take(self.scheduler, self.trials))
        for trial_id in self.scheduler.trials_to_stop():
            trial = self.trials[trial_id]
            run = self._runs.get(trial_id)
            if trial.status == TrialStatus.PAUSED:
                self._set_status(trial, TrialStatus.STOPPED)
                self._close(trial, TrialEnd.STOPPED)
            elif run is not None and run.decision is Decision.PAUSE:
                run.decision = Decision.STOP


def _cloned_at_its_end(trial: Trial) -> None:
    """A PBT clone whose trainable returned before it reported: it was perturbed at its
    last report (a scheduler without ``max_resource`` cannot tell), so its new config
    trained nothing and its values are its donor's. Said in its note, and as a warning."""
    trial.note = ("cloned at its last report: its trainable returned without training under the new config, so its "
                  "values are its donor's")
    logger.warning("Trial %s was cloned at its last report and its trainable returned without training: its config "
                   "%s never trained, and its values are its donor's. Pass PBTScheduler(max_resource=...) (the "
                   "trainable's length) so that no trial is perturbed at its end.", trial.trial_id, trial.config)
