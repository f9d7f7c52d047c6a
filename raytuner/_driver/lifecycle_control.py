"""The lifecycle's handlers of what comes from outside the trials: the time budget, Ctrl-C,
the end of all work, an abort, the control commands from ``raytuner control`` or the
dashboard (stop a trial, change the limits, re-run a failed trial, end the experiment), and
a resume's taking in of the trials and catching up (:meth:`ControlHandlers.reconcile`).

:class:`ControlHandlers` is part of :class:`raytuner._driver.lifecycle.Lifecycle`, which
inherits it; the handlers live here to keep each module readable. A control command is
applied now or refused, and either way answered with a :class:`ControlApplied` that says
what was done or why not (the experiment's history shows it).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from raytuner._control_values import COMMANDS, clean_command, number_text, shown
from raytuner._driver.events import (
    Command,
    Control,
    ControlApplied,
    Deadline,
    Discard,
    Drained,
    EndExperiment,
    Interrupt,
    RetryTrial,
    SetLimits,
    StopSoon,
    StopTrial,
    WriteTrial,
)
from raytuner._driver.exploits import Exploits
from raytuner._driver.trial_state import Run, RunPhase
from raytuner._formats import dumps
from raytuner._trial import Trial, TrialStatus
from raytuner.errors import ConfigError
from raytuner.schedulers import Decision, Scheduler
from raytuner.search import Searcher, TrialEnd

logger = logging.getLogger("raytuner")


def _guarded(handler: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A control handler whose error refuses its command, never ends the driver: whatever
    it had queued is dropped, and the refusal names the error.

    The command's :class:`ControlApplied` goes ahead of the effects the handler queued, so
    the driver records the command's history line before it carries out any of them: a
    line the disk refuses leaves none of them written (never an effect without its line).
    """

    @functools.wraps(handler)
    def run(self: ControlHandlers, event: Control) -> None:
        queued = len(self._out)
        try:
            handler(self, event)
        except Exception as exc:  # noqa: BLE001 - one command's fault is that command's
            logger.exception("Control command %s failed", type(event).__name__)
            del self._out[queued:]
            self._refuse(event, f"it could not be applied ({type(exc).__name__}: {shown(str(exc), 200)})")
            return
        for i in range(len(self._out) - 1, queued, -1):
            command = self._out[i]
            if isinstance(command, ControlApplied) and command.command is event:
                self._out.insert(queued, self._out.pop(i))
                break

    return run


_ENDS = {TrialStatus.COMPLETED: TrialEnd.COMPLETED, TrialStatus.STOPPED: TrialEnd.STOPPED,
         TrialStatus.FAILED: TrialEnd.FAILED}


class ControlHandlers:
    # What the handlers use of the Lifecycle they are part of.
    trials: dict[str, Trial]
    searcher: Searcher
    scheduler: Scheduler
    num_trials: int
    max_concurrent: int
    _runs: dict[str, Run]
    _reruns: set[str]
    _unknown: set[str]
    _closed: set[str]
    _ended: bool
    _out: list[Command]
    _restart_reason: dict[str, str]
    _exploits: Exploits

    if TYPE_CHECKING:
        def _add(self, trial: Trial) -> None: ...

        def _search_done(self) -> bool: ...

        def _set_status(self, trial: Trial, status: TrialStatus, note: str | None = None, *,
                        notify: bool = True, record: bool = True) -> None: ...

        def _close(self, trial: Trial, end: TrialEnd) -> None: ...

        def ids(self, status: TrialStatus) -> list[str]: ...

        def _stop_paused_losers(self) -> None: ...

    # -- the experiment's ends -------------------------------------------------------------
    def _on_deadline(self, event: Deadline) -> None:
        self._end_all("time budget reached", final=True)

    def _on_interrupt(self, event: Interrupt) -> None:
        self._end_all("interrupted (Ctrl-C)", final=False)

    def _on_drained(self, event: Drained) -> None:
        self._close_paused("paused when the experiment ended")

    def _close_paused(self, why: str) -> None:
        for trial_id in self.ids(TrialStatus.PAUSED):
            trial = self.trials[trial_id]
            self.scheduler.on_trial_remove(trial_id)
            self._set_status(trial, TrialStatus.STOPPED, note=why)
            self._close(trial, TrialEnd.STOPPED)

    def _end_all(self, why: str, final: bool) -> None:
        """End every trial on a worker now (time budget, abort, Ctrl-C, a control command).

        ``final``: they end as STOPPED, and so do paused ones; otherwise they go back to
        PENDING and restart from their checkpoints when the experiment is resumed.
        """
        for trial_id, run in list(self._runs.items()):
            self._out.append(Discard(run.worker))
            trial = self.trials[trial_id]
            if final:
                self.scheduler.on_trial_remove(trial_id)
                self._set_status(trial, TrialStatus.STOPPED, note=why)
                self._close(trial, TrialEnd.STOPPED)
            else:
                self._set_status(trial, TrialStatus.PENDING, note=why)
        self._runs.clear()
        if final:
            self._ended = True
            self._close_paused(why)

    def end_for_abort(self) -> list[Command]:
        """The experiment is aborting (``abort`` is set): stop everything, as a deadline would."""
        self._end_all("experiment aborted", final=True)
        out, self._out = self._out, []
        return out

    # -- control commands ------------------------------------------------------------------
    @_guarded
    def _on_stop_trial(self, event: StopTrial) -> None:
        trial = self.trials.get(event.trial_id)
        if trial is None:
            self._refuse(event, f"there is no trial {event.trial_id!r} in this experiment")
            return
        if trial.status.is_finished():
            self._refuse(event, f"trial {trial.trial_id} already ended as {trial.status.value}")
            return
        run = self._runs.get(trial.trial_id)
        if run is not None and run.decision is not None and run.decision is not Decision.PAUSE:
            self._refuse(event, f"trial {trial.trial_id} is already ending ({run.decision.value})")
            return
        self.scheduler.on_trial_remove(trial.trial_id)
        trial.note = f"stopped by {event.origin}"
        if run is not None and run.decision is Decision.PAUSE:
            # Its pause (or a promotion right after it) is on its way: the trial ends
            # STOPPED when it lands (_on_exit), as a paused loser does, and trains no more.
            run.decision = Decision.STOP
        elif run is not None:
            # A running trial always has a call out (one per busy worker): the STOP answers
            # that call's return, in _on_reported, instead of racing it as a second call.
            # The worker hears of it now too, so that the trial's next report is its last.
            run.decision, run.phase = Decision.STOP, RunPhase.STOP_QUEUED
            self._out.append(StopSoon(run.worker, trial.trial_id))
        else:  # PENDING or PAUSED: no worker to tell
            self._set_status(trial, TrialStatus.STOPPED)
            self._close(trial, TrialEnd.STOPPED)
        self._out.append(ControlApplied(event, True, f"trial {trial.trial_id} stopped"))

    @_guarded
    def _on_set_limits(self, event: SetLimits) -> None:
        if self._ended:
            self._refuse(event, "the experiment is already ending")
            return
        try:  # the bounds the dashboard and the CLI check too, whatever sent the event
            limits = clean_command("set_limits", {name: getattr(event, name) for name in COMMANDS["set_limits"]}).args
        except ConfigError as exc:
            self._refuse(event, str(exc))
            return
        num_trials = limits.get("num_trials")
        if num_trials is not None and num_trials < len(self.trials):
            self._refuse(event, f"num_trials={num_trials} is below the {len(self.trials)} trials already created")
            return
        if num_trials is not None:
            was_done = self._search_done()
            self.num_trials = num_trials
            if self.searcher.num_trials is not None:
                self.searcher.num_trials = num_trials
            if was_done and not self._search_done():
                # New trials will come after all: a scheduler that stops paused trials once
                # none can (nothing could promote them) goes back to pausing them.
                self.scheduler.on_search_reopened()
        if "max_concurrent" in limits:
            self.max_concurrent = limits["max_concurrent"]
        # The driver moves its deadline, and records the limits, on ControlApplied.
        done = ", ".join(f"{name}={number_text(value)}" for name, value in limits.items())
        self._out.append(ControlApplied(event, True, done))

    @_guarded
    def _on_retry_trial(self, event: RetryTrial) -> None:
        """FAILED -> PENDING: the trial runs again from its latest checkpoint.

        The searcher heard the trial's FAILED outcome when it failed, and hears nothing more
        of it (``on_trial_complete`` exactly once per trial; the re-run's reports do not
        reach ``on_trial_result`` either, as they would come after its end). The scheduler
        ended it too, so the re-run is not decided on: it runs to its own end, the Tuner's
        ``stop=``, or a StopTrial. Its reports are recorded and count for the best trial.
        """
        trial = self.trials.get(event.trial_id)
        if trial is None:
            self._refuse(event, f"there is no trial {event.trial_id!r} in this experiment")
            return
        if trial.status is not TrialStatus.FAILED:
            self._refuse(event, f"trial {trial.trial_id} is {trial.status.value}; only FAILED trials can be re-run")
            return
        if self._ended:
            self._refuse(event, "the experiment is already ending")
            return
        self._reruns.add(trial.trial_id)
        trial.num_failures = 0  # the re-run gets the experiment's max_failures retries again
        trial.end_time = None
        self._set_status(trial, TrialStatus.PENDING, note=f"re-run by {event.origin}", notify=False)
        where = f"from {trial.checkpoint}" if trial.checkpoint else "from scratch (it has no checkpoint)"
        self._out.append(ControlApplied(event, True, f"trial {trial.trial_id} queued to run again {where}"))

    @_guarded
    def _on_end_experiment(self, event: EndExperiment) -> None:
        if self._ended:
            self._refuse(event, "the experiment is already ending")
            return
        ended = tuple(sorted({*self._runs, *self.ids(TrialStatus.PAUSED)}))
        self._end_all(f"experiment ended by {event.origin}", final=True)
        self._out.append(ControlApplied(event, True, "experiment ended", ended))

    def _propose_again(self, trial: Trial, mismatched: list[str], declined: list[str]) -> None:
        """A trial created after the saved state: the searcher proposes it again (see
        :meth:`reconcile`), and the scheduler takes it in."""
        replay = self.searcher.suggest(trial.trial_id)
        if not isinstance(replay, dict):
            self._unknown.add(trial.trial_id)  # it declined: never report this trial to it
            declined.append(trial.trial_id)
        elif json.loads(dumps(replay)) != trial.config and not self.searcher.correct_config(
                trial.trial_id, trial.config):
            mismatched.append(trial.trial_id)
        self.scheduler.on_trial_add(trial.trial_id)

    def _replay_end(self, trial_id: str, closed: set[str]) -> None:
        """A trial the folders have finished and the saved state had not: searcher and
        scheduler are told its end (once)."""
        trial = self.trials.get(trial_id)
        if trial is None or not trial.status.is_finished() or trial_id in closed or trial_id in self._closed:
            return
        end = _ENDS[trial.status]
        self._close(trial, end)
        if end is TrialEnd.COMPLETED:
            self.scheduler.on_trial_complete(trial_id)
        elif end is TrialEnd.FAILED:
            self.scheduler.on_trial_error(trial_id)
        else:
            self.scheduler.on_trial_remove(trial_id)

    def _carry_out_end(self, trial: Trial, decision: Decision) -> None:
        """The end the last driver decided at ``trial``'s last report and did not record
        (:meth:`reconcile`), if it is still to run."""
        if trial.status is not TrialStatus.PENDING or trial.trial_id in self._reruns or decision is Decision.CONTINUE:
            return
        logger.info("Trial %s: its last driver decided %s at its last report and stopped before recording it; "
                    "carried out now.", trial.trial_id, decision.value)
        if decision is Decision.PAUSE:
            self._set_status(trial, TrialStatus.PAUSED, notify=False)  # told to the scheduler below, as paused
            return
        status = TrialStatus.COMPLETED if decision is Decision.COMPLETE else TrialStatus.STOPPED
        self._set_status(trial, status)  # the scheduler ended it when it decided
        self._close(trial, _ENDS[status])

    def _refuse(self, event: Control, why: str) -> None:
        self._out.append(ControlApplied(event, False, why))

    def _restore(self, trials: dict[str, Trial], next_id: int) -> None:
        """On resume, before anything runs: take in the trials as their folders say; those
        not finished run again (RUNNING ones lost their worker with the last driver).
        ``next_id``: the saved state's; trials from it on are new to the scheduler until
        :meth:`reconcile` adds them."""
        for trial in trials.values():
            self._add(trial)
            if trial.status is TrialStatus.RUNNING:
                # Its record says RUNNING until reconcile() has carried out an end decided
                # at its last report (resume.undecided reads that RUNNING); then PENDING.
                self._set_status(trial, TrialStatus.PENDING, notify=False, record=False)
                self._were_running.append(trial.trial_id)
            if trial.status in (TrialStatus.PENDING, TrialStatus.PAUSED) and trial.attempt:
                self._restart_reason[trial.trial_id] = "resume"
        self._exploits.drop_launched(self.trials)
        for trial_id, trial in self.trials.items():
            # As its folder says, whatever a staler saved state says; for the others once
            # the reports since are replayed (reconcile).
            if not trial.status.is_finished() and self.scheduler.changes_configs:
                # With an exploit still to launch, the trial runs next with the exploit's config.
                pending = self._exploits.pending.get(trial_id)
                restore_on(self.scheduler, trial_id, pending.config if pending is not None else trial.config,
                           trial.status is TrialStatus.PAUSED,
                           pending.resource if pending is not None else trial.fed_resource,
                           pending.value if pending is not None else fed_value(trial))
        if self._search_done() and all(int(trial_id) < next_id for trial_id in self.trials):
            self.scheduler.on_search_finished()  # the saved state may predate it; else in reconcile
        elif not self._search_done():
            self.scheduler.on_search_reopened()  # a resume that raised num_trials: its state may say finished

    def reconcile(self, next_id: int, closed: Iterable[str], since: Iterable[tuple[Any, ...]] = (),
                  undecided: Mapping[str, float] | None = None, decided: Mapping[str, str] | None = None
                  ) -> list[Command]:
        """After a resume: catch searcher and scheduler (restored from their last snapshot)
        up with what the trial folders say happened after it.

        ``since`` (:func:`raytuner._driver.resume.since_snapshot`) is what they heard after
        the snapshot, in the order it happened: trials created (``("add", id)``) and reports
        fed (``("result", id, resource, signed value)``) and trials ended (``("end", id)``).
        Both are told again in that order, and the scheduler hears the search finish where
        it did, right after the last trial's creation (with none created since, when the
        trials are taken in: :meth:`_restore`). A trial created is proposed again so the searcher counts it: a searcher
        restored to the same state and told the same results proposes the same config; one
        that proposes another is asked to credit the trial to the config it ran with
        (``Searcher.correct_config``), so that it never learns a result against a config
        that did not produce it. The scheduler's decisions on the reports were carried out
        by the run that made them and are not applied again, but its state moves as it did
        then (a Hyperband round closes; ASHA's rungs fill); then it is told which trials
        the folders have paused and which will run (``on_trial_restore``), as the replay
        cannot tell which paused trials were resumed meanwhile. A scheduler that changes
        configs (PBT) hears no report again: its exploits were carried out already, and
        it was told each trial's state by ``on_trial_restore`` when the trials were taken
        in. Trials that ended with no time recorded are told last.

        ``undecided`` (:func:`raytuner._driver.resume.undecided`): trials whose record says
        RUNNING at their last report, with that report's resource. The end their last
        driver decided there (a pause at a rung, a stop, the full budget) may never have
        reached the record; it is carried out now, as that driver would have, so that the
        trial does not train past the point where it was decided. The decision is the one
        the scheduler makes when that report is told again here, or, for a report it had
        heard before its snapshot, the one the snapshot holds (``decided``: trial id ->
        :class:`Decision` value, kept only where nothing was fed since).
        """
        closed = set(closed)
        mismatched: list[str] = []
        declined: list[str] = []
        for trial_id, trial in self.trials.items():
            if trial_id in closed and not trial.status.is_finished():
                self._reruns.add(trial_id)  # closed, yet to run: only a re-run is both
        new = sorted(trial_id for trial_id in self.trials if int(trial_id) >= next_id)
        added: set[str] = set()
        replay = not self.scheduler.changes_configs
        undecided = dict(undecided or {}) if replay else {}
        ends = {trial_id: Decision(value) for trial_id, value in (decided or {}).items() if trial_id in undecided}
        for event in [*since, *(("add", trial_id) for trial_id in new)]:
            if event[0] == "add":
                trial_id = event[1]
                if trial_id in added or trial_id not in self.trials or int(trial_id) < next_id:
                    continue
                added.add(trial_id)
                self._propose_again(self.trials[trial_id], mismatched, declined)
                if len(added) == len(new) and self._search_done():
                    self.scheduler.on_search_finished()  # as when its last trial was created
            elif event[0] == "end":
                self._replay_end(event[1], closed)
            elif replay:
                _, trial_id, resource, value = event
                if trial_id in closed or trial_id in self._reruns or trial_id not in self.trials:
                    continue
                if trial_id not in self._unknown:
                    self.searcher.on_trial_result(trial_id, resource, value)
                made = self.scheduler.on_result(trial_id, resource, value)
                if undecided.get(trial_id) == resource:
                    ends[trial_id] = made
        for trial_id, decision in sorted(ends.items()):
            self._carry_out_end(self.trials[trial_id], decision)
        if replay:
            for trial_id, trial in self.trials.items():  # paused or to run, as the folders say
                if not trial.status.is_finished() and trial_id not in self._reruns:
                    restore_on(self.scheduler, trial_id, trial.config, trial.status is TrialStatus.PAUSED,
                               trial.fed_resource, fed_value(trial))
        for trial_id in sorted(self.trials):  # ends with no time recorded
            self._replay_end(trial_id, closed)
        self._closed |= closed
        # The ends told above may have let the scheduler decide (a synchronous PBT round):
        # its exploits are taken now, from the donors' checkpoints as they are now.
        self._stop_paused_losers()
        # Trials the last driver was running wait for a worker now: readers show them so
        # (a resume with fewer slots than that leaves some waiting). No end was decided at
        # their last report (or it was carried out above), so a resume of this run, if it
        # dies before they run, has nothing to read from their RUNNING records.
        for trial_id in self._were_running:
            trial = self.trials[trial_id]
            if trial.status is TrialStatus.PENDING:
                self._out.append(WriteTrial(trial_id, trial.to_record()))
        self._were_running.clear()
        if mismatched:
            logger.warning(
                "Trials %s were created after the searcher's last saved state and it now proposes other "
                "configs for them; they keep the configs they ran with, and %s credits their results to the "
                "configs it proposed.", ", ".join(mismatched), type(self.searcher).__name__)
        if declined:
            logger.warning(
                "Trials %s were created after the searcher's last saved state and it proposes none for them "
                "now; they keep the configs they ran with, and the searcher hears nothing of them.",
                ", ".join(declined))
        out, self._out = self._out, []
        return out


def restore_on(scheduler: Scheduler, trial_id: str, config: dict[str, Any], paused: bool,
               resource: float | None, value: Any = None) -> None:
    """``scheduler.on_trial_restore``, with the trial's last fed ``resource`` and its
    ``value`` there where the scheduler takes them (a scheduler of one's own written before
    they were passed does not)."""
    taken = inspect.signature(scheduler.on_trial_restore).parameters
    extra = {name: given for name, given in (("resource", resource), ("value", value)) if name in taken}
    scheduler.on_trial_restore(trial_id, config, paused, **extra)


def fed_value(trial: Trial) -> Any:
    """The value a trial reported at its last fed resource (signed), None if none: its
    latest report there in the kept trajectory."""
    if trial.fed_resource is None:
        return None
    return next((value for _, resource, value in reversed(trial.trajectory) if resource == trial.fed_resource),
                None)
