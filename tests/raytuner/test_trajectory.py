"""One trajectory per trial, in the lifecycle: restarts rewind the trial to the checkpoint
they start from, an attempt marker supersedes what the lost attempt wrote past it, and
searcher and scheduler never hear of one resource twice. No Ray; exact commands."""

from __future__ import annotations

from raytuner._driver import events as ev
from raytuner._storage.history import fold, is_marker
from raytuner._trial import TrialStatus
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import Decision
from raytuner.search import TrialEnd

from tests.raytuner.lifecycle_fakes import ListSearcher, ScriptedScheduler, check_index, make, of, report, reported


def _lines(outs):
    """Everything the lifecycle appended to results.jsonl, in order, per trial."""
    lines: dict[str, list] = {}
    for out in outs:
        for command in of(out, ev.AppendResults):
            lines.setdefault(command.trial_id, []).extend(command.rows)
    return lines


def test_a_retry_from_a_checkpoint_rewinds_to_it_and_never_counts_an_iteration_twice():
    searcher = ListSearcher(n=1)
    life = make(searcher=searcher, max_failures=1, max_concurrent=1)
    outs = [life.handle(ev.Fill(idle=("w1",), pool_size=1))]
    # Checkpoints every 5th report; it dies at report 11.
    reports = [report(i, 1.0 / i, awaits=False, checkpoint=i % 5 == 0) for i in range(1, 12)]
    outs.append(life.handle(reported("00000", *reports)))
    outs.append(life.handle(ev.CallFailed("00000", "boom", worker_lost=True)))
    trial = life.trials["00000"]
    assert trial.status is TrialStatus.PENDING
    outs.append(out := life.handle(ev.Fill(idle=("w2",), pool_size=1)))
    (launch,) = of(out, ev.Launch)
    assert (launch.checkpoint, launch.start_iteration, launch.start_time_s) == ("checkpoint_000010", 10, 10.0)
    assert trial.iteration == 10 and trial.attempt == 2 and trial.metrics == {"loss": 0.1}
    # the retry reports 11..15 again: recorded, and fed only past what was fed before (11)
    outs.append(life.handle(reported("00000", *[report(i, 0.5 / i, awaits=False) for i in range(11, 16)],
                                     exit=TrialExit(Signal.COMPLETED))))
    assert [r for _, r, _ in searcher.results] == list(range(1, 16))
    history = fold(_lines(outs)["00000"])
    assert [r["iteration"] for r in history.rows] == list(range(1, 16))
    assert [r["attempt"] for r in history.rows] == [1] * 10 + [2] * 5
    assert [r["iteration"] for r in history.superseded] == [11]
    assert [(m["attempt"], m["start_iteration"], m["reason"]) for m in history.attempts] == [
        (1, 0, "start"), (2, 10, "retry")]
    assert trial.status is TrialStatus.COMPLETED and trial.iteration == 15 and trial.last_value == 0.5 / 15
    check_index(life)


def test_a_restart_without_a_checkpoint_starts_over_and_completes_only_from_a_full_run():
    scheduler = ScriptedScheduler({("00000", 20): Decision.COMPLETE})
    life = make(scheduler=scheduler, searcher=ListSearcher(n=1), max_failures=1, max_concurrent=1)
    outs = [life.handle(ev.Fill(idle=("w1",), pool_size=1))]
    outs.append(life.handle(reported("00000", *[report(i, 1.0 / i, awaits=False) for i in range(1, 18)])))
    outs.append(life.handle(ev.CallFailed("00000", "boom", worker_lost=False)))
    trial = life.trials["00000"]
    outs.append(out := life.handle(ev.Fill(idle=("w1",), pool_size=1)))
    (launch,) = of(out, ev.Launch)
    assert (launch.checkpoint, launch.start_iteration) == (None, 0)
    assert (trial.iteration, trial.resource, trial.last_value, trial.best_value, trial.metrics) == (0, None, None, None, {})
    # steps 0-2 of a fresh run are iterations 1-3, not 18-20: the scheduler hears nothing new
    out = life.handle(reported("00000", *[report(i, 1.0 + i, awaits=False) for i in range(1, 4)]))
    outs.append(out)
    assert trial.iteration == 3 and trial.status is TrialStatus.RUNNING
    outs.append(life.handle(reported("00000", *[report(i, 1.0 / i) for i in range(4, 21)])))
    assert trial.status is TrialStatus.RUNNING  # COMPLETE delivered; its end is in the exit
    outs.append(life.handle(reported("00000", exit=TrialExit(Signal.STOP))))
    assert trial.status is TrialStatus.COMPLETED and trial.iteration == 20
    history = fold(_lines(outs)["00000"])
    assert [r["iteration"] for r in history.rows] == list(range(1, 21)) and len(history.superseded) == 17
    assert {r["attempt"] for r in history.rows} == {2}


def test_a_pause_and_its_promotion_open_an_attempt_that_supersedes_nothing():
    scheduler = ScriptedScheduler({("00000", 2): Decision.PAUSE}, resume=["00000"])
    life = make(scheduler=scheduler, searcher=ListSearcher(n=1), max_concurrent=1)
    outs = [life.handle(ev.Fill(idle=("w1",), pool_size=1))]
    outs.append(life.handle(reported("00000", report(1, 0.5, awaits=False), report(2, 0.4, checkpoint=True))))
    outs.append(life.handle(reported("00000", exit=TrialExit(Signal.PAUSE))))
    outs.append(out := life.handle(ev.Fill(idle=("w1",), pool_size=1)))
    assert [(c.trial_id, c.start_iteration) for c in of(out, ev.Launch)] == [("00000", 2)]
    markers = [line for line in _lines(outs)["00000"] if is_marker(line)]
    assert [(m["attempt"], m["start_iteration"], m["reason"], m["checkpoint"]) for m in markers] == [
        (1, 0, "start", None), (2, 2, "promotion", "checkpoint_000002")]
    assert not fold(_lines(outs)["00000"]).superseded


def test_checkpoints_of_a_lost_attempt_go_with_its_rows():
    life = make(searcher=ListSearcher(n=1), max_failures=1, max_concurrent=1, checkpoints_to_keep=None)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, awaits=False, checkpoint=True),
                         report(2, 0.4, awaits=False, checkpoint=True), report(3, 0.3, awaits=False)))
    # The folder of report 2 was written, but its row not yet: the lifecycle thinks it
    # committed; a retry from it keeps both checkpoints.
    life.handle(ev.CallFailed("00000", "boom", worker_lost=True))
    out = life.handle(ev.Fill(idle=("w2",), pool_size=1))
    assert of(out, ev.DeleteCheckpoints) == []
    assert life.trials["00000"].checkpoints == ["checkpoint_000001", "checkpoint_000002"]


def test_the_searcher_hears_a_retried_trials_end_once_with_its_rewound_value():
    life = make(searcher=(searcher := ListSearcher(n=1)), max_failures=1, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.9, awaits=False, checkpoint=True), report(2, 0.1, awaits=False)))
    life.handle(ev.CallFailed("00000", "boom", worker_lost=True))
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    assert life.trials["00000"].best_value == 0.9  # 0.1 was the lost attempt's
    life.handle(reported("00000", report(2, 0.7, awaits=False), exit=TrialExit(Signal.COMPLETED)))
    assert searcher.ends["00000"].end is TrialEnd.COMPLETED and searcher.ends["00000"].value == 0.7
