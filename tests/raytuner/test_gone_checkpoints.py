"""A checkpoint folder deleted by hand is no checkpoint, live: a trial relaunched (a paused
trial promoted, a retry) restarts from its newest checkpoint still in storage, else from
scratch, with one warning, on one trajectory, and searcher and scheduler hear of no
resource twice. No Ray; exact commands (tests/integration/test_gone_checkpoints.py runs it
for real)."""

from __future__ import annotations

from raytuner._driver import events as ev
from raytuner._storage.history import fold
from raytuner._trial import TrialStatus
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import Decision

from tests.raytuner.lifecycle_fakes import ListSearcher, ScriptedScheduler, check_index, make, of, report, reported


def _rows(outs, trial_id="00000"):
    return [row for out in outs for command in of(out, ev.AppendResults) if command.trial_id == trial_id
            for row in command.rows]


def test_a_promoted_trial_whose_checkpoint_was_deleted_restarts_from_its_newest_one_left(caplog):
    scheduler = ScriptedScheduler({("00000", 4): Decision.PAUSE}, resume=["00000"], decide_every=4)
    gone: set[str] = set()
    life = make(scheduler, searcher=ListSearcher(n=1), max_concurrent=1,
                stored=lambda trial_id, folder: folder not in gone)
    outs = [life.handle(ev.Fill(idle=("w1",), pool_size=1))]
    outs.append(life.handle(reported("00000", *[report(i, 1.0 / i, awaits=i == 4, checkpoint=i % 2 == 0)
                                                 for i in range(1, 5)])))
    outs.append(life.handle(reported("00000", exit=TrialExit(Signal.PAUSE))))
    assert life.trials["00000"].status is TrialStatus.PAUSED
    gone.add("checkpoint_000004")  # deleted by hand while the trial waits paused
    outs.append(out := life.handle(ev.Fill(idle=("w1",), pool_size=1)))
    (launch,) = of(out, ev.Launch)
    assert (launch.checkpoint, launch.start_iteration, launch.start_time_s) == ("checkpoint_000002", 2, 2.0)
    assert of(out, ev.DeleteCheckpoints) == []  # nothing past 2 is left to delete
    trial = life.trials["00000"]
    assert (trial.iteration, trial.metrics, trial.checkpoints) == (2, {"loss": 0.5}, ["checkpoint_000002"])
    assert caplog.messages == [(
        "Trial 00000: its checkpoint checkpoint_000004 is gone from /exp/trials/00000 (deleted by hand?). It "
        "restarts from checkpoint_000002; its reports after that are kept in results.jsonl for audit but leave "
        "its history.")]
    # Reports 3 and 4 again, then 5: searcher and scheduler hear of 5 only.
    fed_before = list(life.searcher.results)
    outs.append(life.handle(reported("00000", *[report(i, 0.9 / i, awaits=False) for i in range(3, 6)],
                                     exit=TrialExit(Signal.COMPLETED))))
    assert [r for _, r, _ in life.searcher.results[len(fed_before):]] == [5]
    history = fold(_rows(outs))
    assert [(r["iteration"], r["attempt"]) for r in history.rows] == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
    assert [r["iteration"] for r in history.superseded] == [3, 4]
    assert [(m["reason"], m["checkpoint"], m["start_iteration"]) for m in history.attempts] == [
        ("start", None, 0), ("promotion", "checkpoint_000002", 2)]
    assert trial.status is TrialStatus.COMPLETED and trial.iteration == 5
    check_index(life)


def test_a_retry_whose_checkpoints_are_all_gone_starts_over_with_one_warning(caplog):
    life = make(searcher=ListSearcher(n=1), max_failures=2, max_concurrent=1, checkpoints_to_keep=2,
                stored=lambda trial_id, folder: False)
    outs = [life.handle(ev.Fill(idle=("w1",), pool_size=1))]
    outs.append(life.handle(reported("00000", *[report(i, 1.0 / i, awaits=False, checkpoint=True)
                                                 for i in range(1, 4)])))
    outs.append(life.handle(ev.CallFailed("00000", "boom", worker_lost=True)))
    outs.append(out := life.handle(ev.Fill(idle=("w2",), pool_size=1)))
    (launch,) = of(out, ev.Launch)
    assert (launch.checkpoint, launch.start_iteration, launch.start_time_s) == (None, 0, 0.0)
    trial = life.trials["00000"]
    assert (trial.iteration, trial.checkpoint, trial.checkpoints, trial.metrics) == (0, None, [], {})
    assert [m for m in caplog.messages if "is gone" in m or "are gone" in m] == [(
        "Trial 00000: its checkpoints checkpoint_000003, checkpoint_000002 are gone from /exp/trials/00000 "
        "(deleted by hand?). It restarts from scratch; its reports after that are kept in results.jsonl for audit "
        "but leave its history.")]
    assert not any("Pass `checkpoint=`" in m for m in caplog.messages)  # it did checkpoint
    assert [(m["reason"], m["start_iteration"]) for m in fold(_rows(outs)).attempts] == [("start", 0), ("retry", 0)]
    check_index(life)


def test_a_checkpoint_gone_between_the_launchs_check_and_the_workers_read_is_no_failure(caplog):
    """Deleted by hand in the moment between the launch's check and its worker's read: the
    worker's CheckpointGoneError is answered with a relaunch from the newest checkpoint left,
    no failure counted (max_failures=0: a failure would end the trial FAILED)."""
    scheduler = ScriptedScheduler({("00000", 4): Decision.PAUSE, ("00001", 4): Decision.PAUSE},
                                  resume=["00000", "00001"], decide_every=4)
    gone: set[tuple[str, str]] = set()
    life = make(scheduler, searcher=ListSearcher(n=2), max_concurrent=1,
                stored=lambda trial_id, folder: (trial_id, folder) not in gone)
    outs = []

    def run_to_pause(trial_id):
        outs.append(life.handle(ev.Fill(idle=("w1",), pool_size=1)))
        outs.append(life.handle(reported(trial_id, *[report(i, 1.0 / i, awaits=i == 4, checkpoint=i % 2 == 0)
                                                     for i in range(1, 5)])))
        outs.append(life.handle(reported(trial_id, exit=TrialExit(Signal.PAUSE))))

    run_to_pause("00000")
    outs.append(out := life.handle(ev.Fill(idle=("w1",), pool_size=1)))  # 00000 promoted, from checkpoint 4
    assert of(out, ev.Launch)[0].checkpoint == "checkpoint_000004"
    gone.add(("00000", "checkpoint_000004"))  # deleted now: the worker finds it gone
    error = TrialExit(Signal.ERROR, "Traceback ... CheckpointGoneError", "CheckpointGoneError", "gone")
    outs.append(life.handle(reported("00000", exit=error)))
    trial = life.trials["00000"]
    assert (trial.status, trial.num_failures, trial.error) == (TrialStatus.PENDING, 0, None)
    assert not of(outs[-1], ev.AppendError)
    outs.append(out := life.handle(ev.Fill(idle=("w1",), pool_size=1)))
    (launch,) = of(out, ev.Launch)
    assert (launch.trial_id, launch.checkpoint, launch.start_iteration) == ("00000", "checkpoint_000002", 2)
    assert [(m["reason"], m["checkpoint"]) for m in fold(_rows(outs)).attempts] == [
        ("start", None), ("promotion", "checkpoint_000004"), ("checkpoint gone", "checkpoint_000002")]
    assert any("checkpoint checkpoint_000004 is gone" in m for m in caplog.messages)
    outs.append(life.handle(reported("00000", report(5, 0.1, awaits=False), exit=TrialExit(Signal.COMPLETED))))
    assert trial.status is TrialStatus.COMPLETED

    # The storage still holds the other one's: the worker's error is a failure as any other.
    run_to_pause("00001")
    outs.append(out := life.handle(ev.Fill(idle=("w1",), pool_size=1)))
    assert [(c.trial_id, c.checkpoint) for c in of(out, ev.Launch)] == [("00001", "checkpoint_000004")]
    outs.append(life.handle(reported("00001", exit=error)))
    assert (life.trials["00001"].status, life.trials["00001"].num_failures) == (TrialStatus.FAILED, 1)
    check_index(life)
