"""Reading a stopped experiment back, to continue it (:meth:`raytuner.Tuner.resume`): after a
driver crash, a Ctrl-C, or to run more trials.

What the folder holds decides what happens: finished trials are kept as they are; trials
that were on a worker start again from their latest checkpoint; paused trials wait for the
scheduler, restored from its last snapshot together with the searcher's. Nothing runs a
config twice except trials that were in flight.

Built-in searchers and schedulers are rebuilt from the configs in experiment.json
(:mod:`raytuner._storage.components`). Resuming still unpickles ``tuner.pkl`` (settings,
user-defined components) and ``state.pkl`` from the folder, and may import the script that
defined the trainable: resume only experiments you trust.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import importlib.util
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from raytuner._driver import exploits
from raytuner._control_values import clean_command
from raytuner._display import resume_call
from raytuner._driver.control import record_limits, replay, stored_limits
from raytuner._storage import components
from raytuner._objectives import Objectives
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.history import History
from raytuner._storage import trajectory
from raytuner._storage.lineage import attempt_of
from raytuner._storage.records import config_fault, read_record, trial_fault
from raytuner._trial import Trial, TrialStatus
from raytuner.errors import ConfigError, ExperimentError
from raytuner.schedulers import Scheduler
from raytuner.search import Searcher

logger = logging.getLogger("raytuner")


@dataclass
class Restored:
    """The trials of a stopped experiment and the bookkeeping its run goes on from."""

    trials: dict[str, Trial]
    next_id: int = 0  # the next trial id, as the last state snapshot saw it
    closed: set[str] = field(default_factory=set)  # trials the searcher had been told the end of
    exploits: dict[str, Any] = field(default_factory=dict)  # PBT exploits decided, not launched yet
    commanded: list[str] = field(default_factory=list)  # trials a replayed control command changed: to rewrite
    #: Trials created, reports fed and trials ended after the last snapshot, in order (:func:`since_snapshot`).
    since: list[tuple[Any, ...]] = field(default_factory=list)
    #: Trials whose record says RUNNING at their last report: the resource of that report (:func:`undecided`).
    undecided: dict[str, float] = field(default_factory=dict)
    #: The ends the snapshot had decided at such a report and not seen in (``Lifecycle.state``'s ``decided``).
    decided: dict[str, str] = field(default_factory=dict)


def trainable_name(trainable: Callable[..., Any]) -> str:
    return f"{getattr(trainable, '__module__', '?')}:{getattr(trainable, '__qualname__', '?')}"


def trainable_file(trainable: Callable[..., Any]) -> str | None:
    """The file that defines a trainable (its script, for one from ``__main__``), so that the
    CLI can import it from any folder."""
    module = sys.modules.get(getattr(trainable, "__module__", ""))
    path = getattr(module, "__file__", None)
    return str(Path(path).resolve()) if path else None


def _module_root(module_name: str, file: str | None) -> str:
    """The folder a module is imported from: its recorded file's, less the package folders
    (``pkg.sub`` in ``/x/pkg/sub.py``: ``/x``); the current folder if none is recorded."""
    if not file:
        return os.getcwd()
    path = Path(file)
    if path.name == "__init__.py":
        path = path.parent
    parents = path.parents
    depth = module_name.count(".")
    return str(parents[depth]) if depth < len(parents) else os.getcwd()


@contextlib.contextmanager
def _command_line(meta: dict[str, Any], script: str | None) -> Iterator[None]:
    """``sys.argv`` as the sweep's first run had it, while its script (or the trainable's
    module) is imported: top-level code that reads it (``MODE = sys.argv[1]``) takes the
    values the trials before took, not those of ``raytuner resume``. An experiment that
    recorded none gets the script alone, as ``python script.py`` would."""
    recorded = meta.get("argv")
    if not (isinstance(recorded, list) and recorded and all(isinstance(arg, str) for arg in recorded)):
        recorded = [script or ""]
    saved = sys.argv
    sys.argv = list(recorded)
    try:
        yield
    finally:
        sys.argv = saved


def import_trainable(meta: dict[str, Any], location: str = "path") -> Callable[..., Any]:
    """The trainable the experiment recorded, imported by name (from its script, for one
    defined in ``__main__``); ``location`` is the experiment, for the messages."""
    recorded = meta.get("trainable", "")
    module_name, _, qualname = recorded.partition(":")
    fix = f"Pass it explicitly, in Python: {resume_call(location, recorded)}."
    if not qualname or "<locals>" in qualname:
        raise ConfigError(f"The experiment's trainable {recorded!r} cannot be imported. {fix}")
    if module_name == "__main__":
        script = meta.get("trainable_file")
        if not script:
            raise ConfigError(f"The trainable {qualname!r} was defined in a notebook or at the Python prompt, where "
                              f"a resume cannot import it from. {fix}")
        if not Path(script).is_file():
            raise ConfigError(f"The trainable {qualname!r} was defined in a script that is no longer at {script!r}. "
                              f"{fix}")
        spec = importlib.util.spec_from_file_location("raytuner_resumed_script", script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            with _command_line(meta, script):  # its top level runs, not its `if __name__ == "__main__"` block
                spec.loader.exec_module(module)
        except BaseException as exc:  # SystemExit from argparse, a missing file, an input() at EOF...
            sys.modules.pop(spec.name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise ConfigError(_unimportable(script, qualname, location, exc)) from None
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(module)  # workers cannot import it by name
    else:
        try:
            try:
                with _command_line(meta, meta.get("trainable_file")):
                    module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                # `raytuner resume` runs from the console script's folder: the trainable's
                # module (train.py beside the script that ran the sweep) is not on the path.
                root = _module_root(module_name, meta.get("trainable_file"))
                if exc.name != module_name.split(".")[0] or root in sys.path:
                    raise
                sys.path.insert(0, root)
                with _command_line(meta, meta.get("trainable_file")):
                    module = importlib.import_module(module_name)
                from ray import cloudpickle

                cloudpickle.register_pickle_by_value(module)  # the workers' path lacks it too
        except ImportError as exc:
            raise ConfigError(f"Cannot import {module_name!r} to find the trainable ({exc}). {fix}") from None
        except (Exception, SystemExit) as exc:
            raise ConfigError(_unimportable(module_name, qualname, location, exc)) from None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{module_name!r} has no {qualname!r} any more. {fix}")
    return obj


def _unimportable(script: str, qualname: str, location: str, exc: BaseException) -> str:
    """Why the script that defines the trainable could not be imported, and the way round."""
    import traceback

    if isinstance(exc, SystemExit):
        what = f"it exited (SystemExit({exc.code!r}))"
    else:
        what = f"it raised {type(exc).__name__}: {exc}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == script
              or Path(f.filename).stem == script.rpartition(".")[2]]
    where = f" at line {frames[-1].lineno} ({(frames[-1].line or '').strip()})" if frames else ""
    return (
        f"Resume imports {script} to find the trainable {qualname!r}, and running its top level failed: "
        f"{what}{where}. A script that reads sys.argv, parses arguments or does other work outside "
        "`if __name__ == \"__main__\":` cannot be imported this way. Resume from Python code that has the "
        f"function instead, e.g. at the end of that script: raytuner.Tuner.resume({location!r}, "
        f"trainable={qualname}); or move that work under `if __name__ == \"__main__\":`."
    )


def _restore_trials(storage: ExperimentStorage, objectives: Objectives,
                    histories: dict[str, History] | None = None) -> dict[str, Trial]:
    """The trials as their folders left them, each on its one trajectory.

    ``results.jsonl`` is the record (trial.json may lag behind a trial that was running):
    the kept rows give the trial's iteration, metrics and values; the newest checkpoint they
    commit that is still on disk is where it restarts. A checkpoint folder no kept row names
    was written by a crash before its row (or by a lost attempt): it is not a checkpoint, and
    :func:`tidy` removes it. Reads only. A results.jsonl damaged before its tail stops the
    resume, naming the line. ``histories``, if given, receives each trial's results.jsonl
    as read.
    """
    trials: dict[str, Trial] = {}
    for trial_id in storage.trial_ids(started_only=False):
        path = storage.trial_path(trial_id)
        config, damage = read_record(path / "config.json", config_fault)
        record, record_damage = read_record(path / "trial.json", lambda value: trial_fault(value, trial_id))
        history = storage.read_history(trial_id)
        damage = damage or record_damage or history.damaged
        if damage is not None:
            raise ExperimentError(
                f"{damage.describe()}: trial {trial_id}'s files are damaged, so the experiment cannot be resumed "
                "(nothing was changed). Repair that file (or move the trial's folder out of the experiment to "
                "drop it); raytuner.load() and `raytuner show` read the rest meanwhile, with the trial DAMAGED.")
        if record is not None:
            trial = Trial.from_record(record, config, storage.read_error(trial_id))
        else:
            trial = Trial(trial_id, config)  # created just before the driver stopped
        gone = trajectory.replay(trial, history, objectives, set(storage.checkpoint_folders(trial_id)))
        if gone is not None:
            logger.warning(
                "Trial %s: its checkpoint %s is gone from %s (deleted by hand?). It restarts from %s; the reports "
                "after that are kept in results.jsonl for audit but leave its history.", trial_id, gone,
                storage.trial_path(trial_id), trial.checkpoint or "scratch")
        seen = [row.get("resource", row.get("iteration")) for row in history.rows + history.superseded]
        seen = [r for r in seen if isinstance(r, (int, float))]
        if seen and (trial.fed_resource is None or max(seen) > trial.fed_resource):
            # Fed to searcher and scheduler or not, they never hear of these resources again:
            # a report that reached them just before the crash must not count twice.
            trial.fed_resource = max(seen)
        if histories is not None:
            histories[trial_id] = history
        exploits.restore(trial, history)
        trials[trial_id] = trial
    return trials


def since_snapshot(histories: dict[str, History], fed: dict[str, float | None] | None, next_id: int,
                   objectives: Objectives, ended: dict[str, float] | None = None) -> list[tuple[Any, ...]]:
    """What searcher and scheduler heard after a snapshot, in the order it happened, for
    :meth:`Lifecycle.reconcile <raytuner._driver.lifecycle.Lifecycle.reconcile>` to tell them
    again: ``("add", trial id)`` for each trial created after it (ids from ``next_id``; at its
    first attempt marker's time, or last if it has none), ``("result", trial id, resource,
    signed value)`` for each report fed after it, and ``("end", trial id)`` for each trial
    in ``ended`` (trial id -> its record's ``end_time``) at that time.

    ``fed[trial_id]`` is the resource the snapshot had heard the trial up to (missing:
    nothing of it); ``fed`` None is a snapshot from before that was recorded, so no result is
    known to be unheard. Reports are as the lifecycle fed them: every row, kept or superseded
    by a restart, in the order made, whenever its resource went past the highest fed so far
    (a restarted trial's reports count only past it).

    Rows are timed by their workers' clocks (another node's, which may be skewed from the
    driver's), a trial's creation and end by the driver's. Each trial's own events keep the
    order they happened in whatever the clocks say: its rows in the order made (by attempt,
    then iteration), none before its creation, its end after them all. Only the order of
    different trials' events rests on the clocks."""
    events: list[tuple[float, int, tuple[Any, ...]]] = []
    last: dict[str, float] = {}  # each trial's latest event time so far
    for trial_id, history in histories.items():
        clock = -math.inf
        if int(trial_id) >= next_id:
            first = history.attempts[0].get("timestamp") if history.attempts else None
            clock = first if _number(first) else math.inf
            events.append((clock, 0, ("add", trial_id)))
        if fed is None:
            last[trial_id] = clock
            continue
        heard = fed.get(trial_id)
        for row in sorted(history.rows + history.superseded, key=_made_order):
            if _number(row.get("timestamp")):
                clock = max(clock, row["timestamp"])
            resource = row.get("resource", row.get("iteration"))
            if not _number(resource):
                continue
            if heard is not None and resource <= heard:
                continue
            heard = resource
            value = objectives.signed(row)
            if value is not None:
                events.append((clock, 1, ("result", trial_id, resource, value)))
        last[trial_id] = clock
    for trial_id, at in (ended or {}).items():
        events.append((max(at, last.get(trial_id, -math.inf)), 2, ("end", trial_id)))
    # At one time, a creation, then reports, then ends; ties in the order of the trial ids, and
    # within a trial in the order listed (the sort is stable).
    return [event for _, _, event in sorted(events, key=lambda e: (e[0], e[1], e[2][1]))]


def undecided(trials: dict[str, Trial], histories: dict[str, History]) -> dict[str, float]:
    """The trials whose last driver may have decided their end at their last report without
    its record saying so: trial id -> that report's resource.

    A trial's record says RUNNING until its end is in; a scheduler's decision at a report
    (pause at a rung, stop, complete at the budget) is carried out after the report's row
    is written, so a crash between the two leaves the row and a RUNNING record. That is the
    case when the record says RUNNING and the trial's last report fed to the scheduler (the
    first, in the order made, to reach the highest resource: a restart's reports count only
    past it) belongs to its latest attempt: a relaunch after the decision (a promotion)
    writes an attempt marker after it.
    :meth:`Lifecycle.reconcile <raytuner._driver.lifecycle.Lifecycle.reconcile>` then
    carries out the decision the scheduler made there, if any."""
    out: dict[str, float] = {}
    for trial_id, trial in trials.items():
        history = histories.get(trial_id)
        if trial.status is not TrialStatus.RUNNING or history is None:
            continue
        fed = None
        for row in sorted(history.rows + history.superseded, key=_made_order):
            resource = row.get("resource", row.get("iteration"))
            if _number(resource) and (fed is None or resource > fed[0]):
                fed = resource, attempt_of(row)
        if fed is not None and fed[1] == history.attempt:
            out[trial_id] = fed[0]
    return out


def decided_before(state: dict[str, Any], open_ends: dict[str, float]) -> dict[str, str]:
    """The ends a snapshot holds as decided and not in yet, for the trials of ``open_ends``
    (:func:`undecided`) that nothing was fed to since: decided at their last report."""
    fed = state.get("fed") or {}
    return {trial_id: value for trial_id, value in dict(state.get("decided") or {}).items()
            if trial_id in open_ends and fed.get(trial_id) == open_ends[trial_id]}


def _made_order(row: dict[str, Any]) -> tuple[int, float]:
    """A row's place among its trial's rows: its attempt, then its iteration within it."""
    iteration = row.get("iteration")
    return attempt_of(row), iteration if _number(iteration) else 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def restore(storage: ExperimentStorage, meta: dict[str, Any], *, trainable: Callable[..., Any] | None = None,
            num_trials: int | None = None, time_budget_s: float | None = None,
            max_concurrent: int | None = None) -> tuple[Any, Searcher, Scheduler, Restored]:
    """An experiment as its folder left it: its settings, searcher and scheduler (rebuilt,
    then restored from the last snapshot), and its trials.

    Args:
        storage, meta: The experiment's folder and its experiment.json.
        trainable: The function the caller resumes with, checked against the recorded one.
        num_trials, time_budget_s, max_concurrent: Limits given to this resume; they win
            over those a control command set in an earlier run, and are recorded the same
            way (``meta``'s ``"limits"``). ``num_trials`` may only extend the experiment.
    """
    storage.refuse_if_live()  # before anything is cleaned up (the lock is taken later); a bucket's: its record there
    settings, searcher, scheduler = components.load(storage, meta)
    # The folder's name, as `raytuner rename` (or a move by hand) left it: tuner.pkl keeps
    # the name the experiment started under, which trials, the terminal and trackers would use.
    settings.name = meta["name"] = storage.name
    if trainable is not None:
        recorded = meta.get("trainable", "").partition(":")[2]
        given = getattr(trainable, "__qualname__", "?")
        if recorded and given != recorded:
            raise ConfigError(
                f"`trainable` is {given!r} but the experiment was run with {recorded!r}. Pass the same function "
                "(resuming with another would mix two trainables in one experiment), or start a new experiment "
                "warm-started from this one: HyperOptSearcher(warm_start=rt.load(path).observations())."
            )
    state = storage.load_state("state") or {}
    if "searcher" in state:
        searcher.restore(state["searcher"])
        scheduler.restore(state["scheduler"])
    pending = dict(state.get("exploits", {}))
    objectives = Objectives.of(settings.metric, settings.mode)
    histories: dict[str, History] = {}
    trials = _restore_trials(storage, objectives, histories)
    # No snapshot at all (state.pkl deleted): searcher and scheduler start afresh and hear everything.
    ended = {trial_id: trial.end_time for trial_id, trial in trials.items()
             if trial.status.is_finished() and isinstance(trial.end_time, (int, float))}
    heard = since_snapshot(histories, state.get("fed") if "searcher" in state else {}, state.get("next_id", 0),
                           objectives, ended)
    commanded = replay(storage, meta, trials)  # before the limits: those given now win over a command's
    _restore_limits(meta, settings, searcher, num_trials, time_budget_s, max_concurrent)
    open_ends = undecided(trials, histories)
    restored = Restored(trials, state.get("next_id", 0), set(state.get("closed", ())), pending, commanded, heard,
                        open_ends, decided_before(state, open_ends))
    return settings, searcher, scheduler, restored


def _restore_limits(meta: dict[str, Any], settings: Any, searcher: Searcher, num_trials: int | None,
                    time_budget_s: float | None, max_concurrent: int | None) -> None:
    """The limits in force: those a control command set in an earlier run (experiment.json's
    ``"limits"``), then those given now, which win and are recorded the same way. Every one
    is checked as a control command's is (:func:`raytuner._control_values.clean_command`).

    ``num_trials`` given here counts as the Tuner's does (with a grid: repetitions of the
    grid); a stored one, as a command's: trials in all.
    """
    # A grid's points: the searcher counts trials in all (points x repetitions), the
    # settings repetitions, as the Tuner was given them.
    per = None if searcher.num_trials is None else searcher.num_trials // max(1, settings.num_trials)
    stored = stored_limits(meta)
    if "num_trials" in stored:
        if per in (None, 1):
            settings.num_trials = stored["num_trials"]
        if per is not None:
            searcher.num_trials = stored["num_trials"]
    settings.max_concurrent = stored.get("max_concurrent", settings.max_concurrent)
    settings.time_budget_s = stored.get("time_budget_s", settings.time_budget_s)
    given = {"num_trials": num_trials, "time_budget_s": time_budget_s, "max_concurrent": max_concurrent}
    if not any(value is not None for value in given.values()):
        return
    given = clean_command("set_limits", given, owner="Tuner.resume").args
    if "num_trials" in given:
        if per is None:
            if given["num_trials"] < settings.num_trials:
                raise ConfigError(f"Tuner.resume: `num_trials` is {given['num_trials']}, but must be at least the "
                                  f"experiment's {settings.num_trials}. Pass a larger number to run more trials.")
        else:  # a grid: repetitions of its points
            total = per * given["num_trials"]
            if total < searcher.num_trials:
                raise ConfigError(
                    f"Tuner.resume: `num_trials` is {given['num_trials']}, {total} trials as repetitions of the grid's "
                    f"{per} point{'s' if per != 1 else ''}, but the experiment already has {searcher.num_trials}. Pass "
                    f"at least {-(-searcher.num_trials // per)} to run more trials.")
            searcher.num_trials = total
        settings.num_trials = given["num_trials"]
        given["num_trials"] = searcher.num_trials or settings.num_trials  # recorded as trials in all
    settings.time_budget_s = given.get("time_budget_s", settings.time_budget_s)
    settings.max_concurrent = given.get("max_concurrent", settings.max_concurrent)
    record_limits(meta, given)


@dataclass(frozen=True)
class ResumePlan:
    """What a resume keeps, restarts and leaves, told to the user before it starts."""

    kept: dict[str, int]  # finished trials by status
    restart: list[tuple[str, int, int]]  # (trial id, reports made, report its checkpoint is at)
    paused: list[str]
    new: int  # trials still to create, at most
    retry: list[str] = field(default_factory=list)  # FAILED trials run again (retry_failed)
    failed: int = 0  # FAILED trials kept

    @classmethod
    def of(cls, trials: dict[str, Trial], target: int, *, retry_failed: bool = False) -> ResumePlan:
        kept: dict[str, int] = {}
        restart, paused, retry = [], [], []
        for trial in trials.values():
            if retry_failed and trial.status == TrialStatus.FAILED:
                retry.append(trial.trial_id)
            elif trial.status.is_finished():
                kept[trial.status.value] = kept.get(trial.status.value, 0) + 1
            elif trial.status == TrialStatus.PAUSED:
                paused.append(trial.trial_id)
            else:  # RUNNING or PENDING: on a worker (or about to be) when the last driver stopped
                restart.append((trial.trial_id, trial.iteration, trial.checkpoint_iteration if trial.checkpoint else 0))
        return cls(kept, restart, paused, max(0, target - len(trials)), retry, kept.get(TrialStatus.FAILED.value, 0))

    @property
    def nothing_to_do(self) -> bool:
        return not self.restart and not self.paused and self.new == 0 and not self.retry

    def describe(self) -> str:
        finished = sum(self.kept.values())
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.kept.items()))
        if self.nothing_to_do:
            again = (f", or retry_failed=True (--retry-failed) to run its {self.failed} failed trial"
                     f"{'s' if self.failed != 1 else ''} again from {'their' if self.failed != 1 else 'its'} latest "
                     "checkpoint" if self.failed else "")
            return (f"already finished ({finished} trials: {counts or 'none'}); nothing to resume. Pass "
                    f"num_trials= (or --num-trials) to run more trials{again}.")
        parts = [f"keeping {finished} finished trial{'s' if finished != 1 else ''} ({counts})" if finished
                 else "no trial had finished"]
        if self.restart:
            shown = []
            for trial_id, reports, at in self.restart[:6]:
                shown.append(f"{trial_id} from report {at}" if at else
                             (f"{trial_id} from scratch (no checkpoint; its {reports} report"
                              f"{'s are' if reports != 1 else ' is'} superseded)" if reports
                              else f"{trial_id} from scratch"))
            more = f" and {len(self.restart) - 6} more" if len(self.restart) > 6 else ""
            parts.append(f"restarting {len(self.restart)} that did not finish: {', '.join(shown)}{more}")
        if self.retry:
            parts.append(f"running {len(self.retry)} failed trial{'s' if len(self.retry) != 1 else ''} again "
                         f"({', '.join(self.retry[:6])}{' and more' if len(self.retry) > 6 else ''})")
        if self.paused:
            parts.append(f"{len(self.paused)} paused wait{'s' if len(self.paused) == 1 else ''} for the scheduler")
        if self.new:
            parts.append(f"up to {self.new} new trial{'s' if self.new != 1 else ''}")
        return "; ".join(parts) + "."
