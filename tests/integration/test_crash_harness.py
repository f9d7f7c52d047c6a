"""The crash harness: kill the driver at every point of its write path, resume, and check.

A driver (``harness_driver.py``) runs a deterministic trainable in a subprocess, with
``RAYTUNER_FAULT_AFTER_WRITES=N`` (:mod:`raytuner._storage.faults`): at its N-th storage
write it SIGKILLs itself in the middle of that write (half a line appended, a whole file
written but not renamed, an old checkpoint folder about to be deleted; the workers put
checkpoints in place themselves, so a killed driver may leave one no row names), or, with
``:enospc``, that write and every later one fail as on a full disk. Another driver subprocess then resumes the
experiment, and the records must hold:

- the experiment loads, after the kill and after the resume;
- every trial has strictly increasing iterations 1..n, and every row equals what the
  trainable computes at that step (a pure function of config and step);
- no trial is lost or duplicated (ids 0..TRIALS-1, distinct configs);
- COMPLETED means the full budget.

Checkpoints at every report (the worker's store throttle on, and off), every 2nd report and
never; and a PBT population, whose exploits copy checkpoints from trial to trial and restart
clones from them with mutated configs. There the invariants are about state, over every row
written, kept or superseded: an attempt's first row follows from the state held by the
checkpoint it restarted from (for a clone's copy, its donor's row), each later row from the row
before, under the config in effect; the kept history's iterations increase (a clone may skip
ahead to its donor's progress); and each trial's newest checkpoint holds the state its record
says. And the control plane: trials that steer their own run (harness_driver.PLAN: stop a
trial, set limits, end the experiment) with commands written as ``raytuner control`` writes
them, killed before, inside and after each command's history line and its effects; each
command is in the history once, and one recorded as applied has its effect in the final
records (:func:`check_control_records`). And Hyperband, whose round must still be decided
after a resume (one trial COMPLETED, two STOPPED at the milestone, none left paused: the
resumed scheduler catches up with the reports since its saved state). And two objectives under
ASHA's promotion variant: trials pause at its rungs and the best is promoted from its
checkpoint; the front read from the records is the non-dominated set of the trials' last
values, each row's second objective what the trainable computes, none left paused at the
end (:func:`check_mo_records`). And MLflow, sent reports in batches: after a kill and a
resume each trial's run holds its kept history and its status (:func:`check_mlflow`); and
TensorBoard the same (:func:`check_tensorboard`). And
an experiment in a bucket (moto's S3 server), its head lost with its disk at the kill while
the uploader's passes run: the bucket alone must hold the invariants, and a fresh head
resumes from it (:func:`lost_head_and_resume`). A second crash: the
resume of a killed run killed in turn (a copy of the first crash's folder each time), then
resumed again; and a disk full for a moment at a command's history line. The default set
kills at a few points (:data:`LATE_POINT`, and an early one); ``-m full_sweep`` sweeps every write of a run, then every
write of a resume. Drivers join one shared Ray
(a ``ray start --head`` of this module's own), so a kill point costs two driver start-ups,
not a Ray start-up each (``shared_ray``, in conftest.py).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus

sys.path.insert(0, str(Path(__file__).parent))
from harness_driver import (  # noqa: E402
    CONTROL_TRIALS,
    PBT_STEPS,
    PBT_TRIALS,
    PLAN,
    SENT,
    STEPS,
    TRIALS,
    pbt_value,
    size,
    value,
)

from tests._helpers import tmpfs, wait_for  # noqa: E402

DRIVER = Path(__file__).with_name("harness_driver.py")
#: The driver's EVERY argument per kind (see harness_driver.py); "1+": every report, and every
#: checkpoint stored (the worker's store throttle off), so each is committed and pruned.
KINDS = {"every report": "1", "every report, all stored": "1+", "every 2nd report": "2", "no checkpoints": "0",
         "pbt": "pbt", "control": "control", "hyperband": "hyperband", "two objectives, promotion": "mo"}
#: Kill points of the default run: "every report" is killed early (before any trial: nothing
#: of the kind has run yet) and late (trials finishing, pausing at rungs, exploiting); every
#: other kind late only, where its own machinery (checkpoint cadence, PBT's exploits,
#: Hyperband's rounds, two objectives' promotions) is at work. The slow sweep takes every
#: write of every kind.
LATE_POINT = 23
EARLY_POINT = 2
#: The control kind's: in the first command's history line (half of it written: not applied;
#: its file is left, and the resume refuses it), after that line before its file goes and its
#: effects are written (the resume makes them hold, without a second line), and the same
#: after the last command's (end_experiment).
CONTROL_POINTS = ("1:kill:history.jsonl", "1:kill:/control/", "3:kill:/control/")


def drive(env: dict[str, str], folder: Path, every: int | str, fault: str | None = None, step_s: float = 0.02,
          ballast: int = 0) -> subprocess.CompletedProcess:
    """Run (or resume) the experiment in ``folder`` in a driver subprocess, to its end."""
    env = dict(env)
    if fault is not None:
        env["RAYTUNER_FAULT_AFTER_WRITES"] = fault
    return subprocess.run([sys.executable, str(DRIVER), str(folder), str(every), str(step_s), str(ballast)], env=env,
                          capture_output=True, text=True, timeout=180)


def check_records(folder: Path, *, finished: bool) -> rt.Results:
    """The invariants; ``finished``: the run went to its end, so every trial is COMPLETED."""
    results = check_rows(folder)
    if finished:
        assert len(results.trials) == TRIALS and results.status == "COMPLETED"
        assert all(t.status == TrialStatus.COMPLETED for t in results.trials), [t.status for t in results.trials]
    return results


def check_rows(folder: Path) -> rt.Results:
    """The invariants of every trial's rows: iterations 1..n, each row what the trainable
    computes at that step, no trial lost or run twice, COMPLETED at the full budget only."""
    results = rt.load(folder)
    ids = [t.trial_id for t in results.trials]
    assert ids == [f"{i:05d}" for i in range(len(ids))], f"trials lost or duplicated: {ids}"
    assert len({t.config["x"] for t in results.trials}) == len(ids), "a config ran as two trials"
    for trial in results.trials:
        assert trial.status != TrialStatus.DAMAGED, trial.damaged
        history = results.history(trial.trial_id)
        iterations = list(history["iteration"]) if len(history) else []
        assert iterations == list(range(1, len(iterations) + 1)), f"trial {trial.trial_id}: {iterations}"
        for row in history.to_dict("records"):
            assert row["step"] == row["iteration"], (trial.trial_id, row)
            assert row["loss"] == value(trial.config["x"], row["iteration"]), (trial.trial_id, row)
        if trial.status == TrialStatus.COMPLETED:
            assert iterations == list(range(1, STEPS + 1)), f"trial {trial.trial_id} COMPLETED at {iterations}"
            assert trial.iteration == STEPS and trial.metrics["loss"] == value(trial.config["x"], STEPS)
    return results


def check_control_records(folder: Path, *, finished: bool) -> rt.Results:
    """The control kind's invariants (harness_driver.PLAN), besides the rows': the history,
    the CLI and the records read; a command is in the history once, applied or refused, and
    once the run is over every command sent is there; each command applied has its effect in
    the final records (the stopped trial STOPPED before its budget, never run on; the limits
    as set; the trial running when the experiment was ended STOPPED), and one not applied has
    none."""
    from raytuner._storage.control import control_store
    from raytuner.cli import main

    results = check_rows(folder)
    if any(t.iteration for t in results.trials):  # before any report, `show` has no table to print
        assert main(["show", str(folder)]) == 0
    history = control_store(folder).history()
    by_id: dict[str, list[dict]] = {}
    for entry in history:
        by_id.setdefault(entry["id"], []).append(entry)
    for command_id, entries in by_id.items():
        assert len(entries) == 1, f"command {command_id} recorded {len(entries)} times: {entries}"
    sent = {path.name: path.read_text() for path in folder.glob(f"{SENT}*")}
    applied = {entries[0]["command"]: entries[0] for entries in by_id.values() if entries[0]["accepted"]}
    assert set(applied) <= {command for command, _ in PLAN.values()}, history
    if not finished:
        return results
    assert not list(folder.glob("control/*.json")), "a command was never taken up"
    for name, command_id in sent.items():
        # A marker without an id: its worker died (with the driver) between the two writes.
        assert not command_id or command_id in by_id, f"{name}: command {command_id} lost, in no history line"
    trials = {t.trial_id: t for t in results.trials}
    stopped = trials["00000"]
    if "stop_trial" in applied:
        assert stopped.status == TrialStatus.STOPPED and stopped.iteration < STEPS, (stopped.status, stopped.iteration)
    else:
        assert stopped.status == TrialStatus.COMPLETED, stopped.status
    meta = results.meta
    if "set_limits" in applied:
        assert len(trials) == CONTROL_TRIALS and meta["num_trials"] == CONTROL_TRIALS, (len(trials), meta)
        assert meta["max_concurrent"] == 1 and meta["limits"]["max_concurrent"] == 1, meta
    else:
        assert len(trials) == TRIALS and meta["num_trials"] == TRIALS, (len(trials), meta)
    ended = trials.get("00003")
    if "end_experiment" in applied:
        assert ended.status == TrialStatus.STOPPED and ended.iteration < STEPS, (ended.status, ended.iteration)
    assert results.status == "COMPLETED"
    assert all(t.status == TrialStatus.COMPLETED for t in trials.values()
               if t is not stopped and (t is not ended or "end_experiment" not in applied)), trials
    return results


def check_pbt_records(folder: Path, *, finished: bool) -> rt.Results:
    """The invariants of the PBT kind (see the module docstring), over every row each trial's
    results.jsonl holds, kept or superseded."""
    import json

    results = rt.load(folder)
    ids = [t.trial_id for t in results.trials]
    assert ids == [f"{i:05d}" for i in range(len(ids))], f"trials lost or duplicated: {ids}"
    lines = {}
    for trial in results.trials:
        assert trial.status != TrialStatus.DAMAGED, trial.damaged
        text = (trial.path / "results.jsonl").read_text()
        # A line cut short by the kill is the file's last, unterminated one: readers skip it.
        lines[trial.trial_id] = [json.loads(line) for line in text.split("\n")[:-1]]

    def made(trial_id: str, attempt: int, iteration: int) -> float:
        """The state of the checkpoint that a line of an attempt of a trial committed at an
        iteration: the loss its row reported there, or, for a copy (that attempt's exploit
        marker), the state of the donor's checkpoint it copied."""
        (line,) = [r for r in lines[trial_id] if r["attempt"] == attempt and (
            r["iteration"] == iteration if "_marker" not in r
            else r["reason"] == "exploit" and r["start_iteration"] == iteration)]
        if "_marker" not in line:
            return line["loss"]
        donor = line["cloned_from"]
        return made(donor["trial_id"], donor["attempt"], donor["iteration"])

    for trial in results.trials:
        state: dict[str, float] = {}  # checkpoint name -> the state (loss) it holds
        last = None
        for row in lines[trial.trial_id]:
            where = (trial.trial_id, row)
            if "_marker" in row:
                if row["reason"] == "exploit":  # the clone's copy holds its donor's state
                    donor = row["cloned_from"]
                    state[row["checkpoint"]] = made(donor["trial_id"], donor["attempt"], donor["iteration"])
                # An attempt starts from the state of the checkpoint it restarts from.
                last = (row["start_iteration"], state[row["checkpoint"]] if row["start_iteration"] else 1.0)
                continue
            assert last is not None and row["iteration"] == last[0] + 1 and row["prev"] == last[1], where
            assert row["step"] == row["iteration"], where
            assert row["loss"] == pbt_value(row["prev"], row["x_used"], row["step"]), where
            if row.get("checkpoint"):
                state[row["checkpoint"]] = row["loss"]
            last = (row["iteration"], row["loss"])
        history = results.history(trial.trial_id)
        iterations = list(history["iteration"]) if len(history) else []
        assert iterations == sorted(set(iterations)), (trial.trial_id, iterations)
        if iterations:  # the config in effect
            assert (history["x_used"] == history["config/x"]).all(), trial.trial_id
        if trial.checkpoint is not None:  # the newest checkpoint holds the state its record says
            name = trial.checkpoint.relative_to(trial.path).as_posix()
            assert float((trial.checkpoint / "loss").read_text()) == state[name], (trial.trial_id, name)
        if trial.status == TrialStatus.COMPLETED:
            assert iterations[-1] == PBT_STEPS, (trial.trial_id, iterations)
    if finished:
        assert len(ids) == PBT_TRIALS and results.status == "COMPLETED"
        assert all(t.status == TrialStatus.COMPLETED for t in results.trials), [t.status for t in results.trials]
    return results


def check_hyperband_records(folder: Path, *, finished: bool) -> rt.Results:
    """The hyperband kind's: the rows' invariants, and once the run is over its one bracket
    decided: the best trial at the milestone COMPLETED, the other two STOPPED there by the
    round, none left paused when nothing more could run (a resumed scheduler that lost
    track of a paused trial ends it so)."""
    import json

    results = check_rows(folder)
    if finished:
        assert len(results.trials) == TRIALS and results.status == "COMPLETED"
        statuses = sorted(t.status.value for t in results.trials)
        assert statuses == ["COMPLETED", "STOPPED", "STOPPED"], statuses
        for trial in results.trials:
            note = json.loads((trial.path / "trial.json").read_text())["note"]
            assert note != "paused when the experiment ended", (trial.trial_id, note)
            if trial.status == TrialStatus.STOPPED:  # at the milestone (5 / 3, so report 2), as if never killed:
                assert trial.iteration == 2, (trial.trial_id, trial.iteration)  # a pause decided there is kept
    return results


def check_mo_records(folder: Path, *, finished: bool) -> rt.Results:
    """The two-objective kind's: the rows' invariants, each row's second objective what the
    trainable computes at that step, and the Pareto front the non-dominated set of the
    trials' last values, read from the records. Once the run is over, every trial ended by
    the scheduler (a trial ASHA left paused is stopped when nothing can be promoted), none
    left paused when the experiment ended."""
    import json

    results = check_rows(folder)
    last = {}
    for trial in results.trials:
        for row in results.history(trial.trial_id).to_dict("records"):
            assert row["size"] == size(trial.config["x"], row["iteration"]), (trial.trial_id, row)
        if trial.iteration:
            last[trial.trial_id] = (trial.metrics["loss"], trial.metrics["size"])
            assert last[trial.trial_id] == (value(trial.config["x"], trial.iteration),
                                            size(trial.config["x"], trial.iteration)), trial.trial_id

    def dominates(a: tuple, b: tuple) -> bool:
        return all(p <= q for p, q in zip(a, b)) and a != b

    if last:  # before any report there is no front (pareto_front() says so)
        front = {i for i, p in last.items() if not any(dominates(q, p) for q in last.values())}
        assert {t.trial_id for t in results.pareto_front()} == front, (last, results.pareto_front())
    if finished:
        assert len(results.trials) == TRIALS and results.status == "COMPLETED"
        assert all(t.status in (TrialStatus.COMPLETED, TrialStatus.STOPPED) for t in results.trials), \
            [t.status for t in results.trials]
        for trial in results.trials:
            note = json.loads((trial.path / "trial.json").read_text())["note"]
            assert note != "paused when the experiment ended", (trial.trial_id, note)
            if trial.status == TrialStatus.STOPPED:  # at a rung (R = 5, eta = 2: 1, 2, 4), as if never killed
                assert trial.iteration in (1, 2, 4), (trial.trial_id, trial.iteration)
    return results


def check(folder: Path, every: int | str, *, finished: bool) -> rt.Results:
    checker = {"pbt": check_pbt_records, "control": check_control_records,
               "hyperband": check_hyperband_records, "mo": check_mo_records}.get(str(every), check_records)
    return checker(folder, finished=finished)


def kill_and_resume(env: dict[str, str], folder: Path, every: int | str, point: int | str) -> bool:
    """Kill the driver at write ``point`` (or as the fault ``N:kill:PART`` says), check,
    resume, check; whether the kill happened."""
    first = drive(env, folder, every, point if isinstance(point, str) else f"{point}:kill")
    killed = first.returncode == -signal.SIGKILL
    assert killed or first.returncode == 0, first.stderr[-3000:]
    ran = 0.0
    if killed and (folder / "experiment.json").is_file():
        ran = check(folder, every, finished=False).meta.get("run_time_s") or 0.0
    resumed = drive(env, folder, every)
    assert resumed.returncode == 0, f"resume after a kill at write {point}:\n{resumed.stderr[-3000:]}"
    # The run time the killed run recorded goes on in the resume (the time budget counts it).
    assert check(folder, every, finished=True).meta["run_time_s"] > ran
    return killed


@pytest.mark.parametrize("kind", KINDS)
def test_a_driver_killed_at_any_write_resumes_into_trustworthy_records(shared_ray, tmp_path, kind):
    points = CONTROL_POINTS if kind == "control" else (EARLY_POINT, LATE_POINT) if kind == "every report" \
        else (LATE_POINT,)
    kills = [kill_and_resume(shared_ray, tmp_path / f"kill_{i}", KINDS[kind], point) for i, point in enumerate(points)]
    assert all(kills), f"a run ended before one of the kill points {points}: they need moving"


def test_a_full_disk_stops_the_run_cleanly_and_resume_completes_it(shared_ray, tmp_path):
    folder = tmp_path / "full"
    first = drive(shared_ray, folder, 2, "14:enospc")
    assert first.returncode == 1, first.stderr[-3000:]
    assert "raytuner.errors.StorageError: Cannot write" in first.stderr
    assert "No space left on device (ENOSPC)" in first.stderr
    assert f"resume {folder}" in first.stderr  # `raytuner resume`, or `python -m raytuner.cli resume`
    # One clear error: neither the raw OSError nor a second error chained to it.
    assert "[Errno" not in first.stderr and "During handling" not in first.stderr, first.stderr[-3000:]
    assert "direct cause" not in first.stderr
    assert rt.load(folder).status == "INTERRUPTED"
    check_records(folder, finished=False)
    resumed = drive(shared_ray, folder, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_records(folder, finished=True)


def lost_head_and_resume(env: dict[str, str], uri: str, heads: Path, point: int) -> bool:
    """The bucket kind killed at write ``point``, its head lost with its disk (the staging
    copy): the bucket checked; then a resume on a fresh head from the bucket alone, checked;
    whether the kill happened."""
    from raytuner._storage import remote

    first = drive({**env, "XDG_CACHE_HOME": str(heads / "first")}, uri, "bucket", f"{point}:kill")
    killed = first.returncode == -signal.SIGKILL
    assert killed or first.returncode == 0, first.stderr[-3000:]
    fs, root = remote.filesystem(uri)
    fs.invalidate_cache()
    if killed and fs.exists(f"{root}/experiment.json"):
        check_records(uri, finished=False)
    resumed = drive({**env, "XDG_CACHE_HOME": str(heads / "second")}, uri, "bucket")
    assert resumed.returncode == 0, f"resume after a kill at write {point}:\n{resumed.stderr[-3000:]}"
    check_records(uri, finished=True)
    return killed


@pytest.mark.full_sweep  # with the sweep of every write of its kind, run before each stop
def test_a_head_lost_at_any_write_leaves_the_bucket_a_run_that_resumes(shared_ray, bucket, tmp_path):
    """The experiment in a bucket (moto's S3 server): the driver killed late in its run (trials
    finishing) and its disk lost, while its uploader's passes (every 0.05 s here) are under way;
    what the bucket holds then loads and holds the invariants, and a fresh head resumes it from
    the bucket alone to the end. The full sweep kills at every write."""
    point = LATE_POINT
    assert lost_head_and_resume(shared_ray, f"{bucket}/exps/kill_{point}", tmp_path / f"heads_{point}", point), \
        f"the run ended before the kill point {point}: it needs moving"


@pytest.mark.slow
@pytest.mark.full_sweep
@pytest.mark.timeout(1200)
def test_every_write_of_a_run_in_a_bucket_is_a_safe_place_to_lose_the_head(shared_ray, bucket, tmp_path):
    clean = drive({**shared_ray, "XDG_CACHE_HOME": str(tmp_path / "count")}, f"{bucket}/exps/count", "bucket",
                  "1000000000")
    assert clean.returncode == 0, clean.stderr[-3000:]
    total = int(re.search(r"WRITES (\d+)", clean.stdout).group(1))
    started = time.monotonic()
    for point in range(1, total + 1):
        lost_head_and_resume(shared_ray, f"{bucket}/exps/kill_{point}", tmp_path / f"heads_{point}", point)
    print(f"bucket: {total} kill points in {time.monotonic() - started:.0f} s")


def check_mlflow(uri: str, results: rt.Results) -> None:
    """Each trial's MLflow run holds its kept history, every point once, and its status."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == results.path.name]
    runs = {r.data.tags.get("raytuner.trial_id"): r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs, key=str) == sorted([None, *(t.trial_id for t in results.trials)], key=str), list(runs)
    for trial in results.trials:
        run = runs[trial.trial_id]
        history = results.history(trial.trial_id)
        for key in ("loss", "step"):
            points = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            assert points == list(zip(history["iteration"], history[key])), (trial.trial_id, key, points)
        assert run.data.tags["raytuner.status"] == trial.status.value, (trial.trial_id, run.data.tags)
        assert run.info.status == "FINISHED", (trial.trial_id, run.info.status)
    assert runs[None].info.status == "FINISHED"


def tracked_kill_and_resume(env: dict[str, str], folder: Path, point: int, tracker: str) -> bool:
    """The every-report kind logging to ``tracker`` ("mlflow" or "tensorboard"), killed at
    write ``point`` and resumed; the records and the tracker's runs checked; whether the kill
    happened."""
    uri = f"sqlite:///{folder.parent / (folder.name + '.db')}"
    env = {**env, "HARNESS_MLFLOW": uri} if tracker == "mlflow" else {**env, "HARNESS_TENSORBOARD": "1"}
    killed = drive(env, folder, 1, f"{point}:kill")
    assert killed.returncode in (0, -signal.SIGKILL), killed.stderr[-3000:]
    resumed = drive(env, folder, 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = check_records(folder, finished=True)
    if tracker == "mlflow":
        check_mlflow(uri, results)
    else:
        check_tensorboard(folder, results)
    return killed.returncode != 0


@pytest.mark.full_sweep  # with the sweep of every write of its kind, run before each stop
def test_mlflow_runs_a_killed_driver_left_open_are_settled_by_the_resume(shared_ray, tmp_path):
    """MLflow gets reports in batches: a driver killed mid-run leaves runs open, without the
    reports of their last seconds, or with a trial's end never sent. The resume settles them:
    each run then holds its trial's kept history and status, as the records have them. (At
    write 9 trials are running with points in their batches; the full sweep kills at each.)"""
    pytest.importorskip("mlflow")
    assert tracked_kill_and_resume(shared_ray, tmp_path / "exp", 9, "mlflow")


def check_tensorboard(folder: Path, results: rt.Results) -> None:
    """Each trial's TensorBoard run shows its kept history, its session start, and its end
    once it ended (read as TensorBoard reads it: restarts drop what they supersede)."""
    from raytuner.tracking._tensorboard_runs import as_stored, read_run

    for trial in results.trials:
        run = read_run(folder / "tensorboard" / trial.trial_id)
        history = results.history(trial.trial_id)
        loss = {step: tags["loss"] for step, tags in run.points.items()}
        assert loss == {int(i): as_stored(v) for i, v in zip(history["iteration"], history["loss"])}, \
            (trial.trial_id, loss)
        assert run.started and run.ended == trial.status.is_finished(), (trial.trial_id, run.started, run.ended)


@pytest.mark.full_sweep  # with the sweep of every write of its kind, run before each stop
def test_tensorboard_runs_a_killed_driver_left_are_settled_by_the_resume(shared_ray, tmp_path):
    """Reports reach TensorBoard after their storage writes: a driver killed between the two
    leaves runs without those points (at write 13, a trial's last three reports, which its
    resume never makes again: it restarts from its checkpoint at the end) or without a
    trial's end. The resume settles each run against the records. (The full sweep kills at
    each write; without the settling, writes 13, 19 and 23 leave a run short.)"""
    pytest.importorskip("tensorboard")
    assert tracked_kill_and_resume(shared_ray, tmp_path / "exp", 13, "tensorboard")


@pytest.mark.slow
@pytest.mark.full_sweep
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("tracker", ["mlflow", "tensorboard"])
def test_every_write_of_a_run_logging_to_a_tracker_is_a_safe_place_to_die(shared_ray, tmp_path, tracker):
    pytest.importorskip(tracker)
    clean = drive(shared_ray, tmp_path / "count", 1, "1000000000")
    total = int(re.search(r"WRITES (\d+)", clean.stdout).group(1))
    started = time.monotonic()
    for point in range(1, total + 1):
        tracked_kill_and_resume(shared_ray, tmp_path / f"kill_{point}", point, tracker)
    print(f"{tracker}: {total} kill points in {time.monotonic() - started:.0f} s")


@pytest.mark.slow
@pytest.mark.full_sweep
# The PBT kind: 73 kill points and 25 full-disk points, about 5 minutes; control: 40 and 14, about 4; hyperband: 30
# and 10, about 2; two objectives: 27 and 9, about 2. Its resume sweep below: PBT 56 and 19, about 4 minutes; each
# other kind 1.5-2.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", KINDS)
def test_every_write_of_a_run_is_a_safe_place_to_die(shared_ray, tmp_path, kind):
    every = KINDS[kind]
    clean = drive(shared_ray, tmp_path / "count", every, "1000000000")
    assert clean.returncode == 0, clean.stderr[-3000:]
    total = int(re.search(r"WRITES (\d+)", clean.stdout).group(1))
    started = time.monotonic()
    for point in range(1, total + 1):
        kill_and_resume(shared_ray, tmp_path / f"kill_{point}", every, point)
    for point in range(1, total + 1, 3):
        folder = tmp_path / f"full_{point}"
        first = drive(shared_ray, folder, every, f"{point}:enospc")
        if first.returncode == 0:
            # A run's writes vary by a few with its timing (the searcher's and scheduler's
            # state is saved at most once a second): this one ended before the point.
            assert int(re.search(r"WRITES (\d+)", first.stdout).group(1)) < point, first.stdout
        else:
            assert first.returncode == 1 and "StorageError" in first.stderr, first.stderr[-3000:]
        assert drive(shared_ray, folder, every).returncode == 0
        check(folder, every, finished=True)
    print(f"{kind}: {total} kill points and {len(range(1, total + 1, 3))} full-disk points in "
          f"{time.monotonic() - started:.0f} s")


def copy_crashed(template: Path, folder: Path) -> None:
    """A copy of ``template``, whose dead driver's workers may go on for a moment (putting a
    checkpoint in place, or giving up on one): taken as ``cp -r`` takes a live experiment,
    leaving out what vanishes while it copies (a crash state as any other)."""
    try:
        shutil.copytree(template, folder, symlinks=True)
    except shutil.Error as exc:  # raised once the rest is copied
        if not all("No such file or directory" in str(why) for _, _, why in exc.args[0]):
            raise


def second_crash(env: dict[str, str], template: Path, folder: Path, every: int | str, fault: str) -> bool:
    """A second crash: copy ``template`` (an experiment whose driver was killed) to ``folder``,
    resume it with ``fault`` (``N:kill``, or ``N:enospc``: the disk full from its N-th write
    on), check, resume again, check; whether the fault struck (False: the resume ended before)."""
    copy_crashed(template, folder)
    second = drive(env, folder, every, fault)
    full = fault.split(":")[1] == "enospc"
    struck = second.returncode == (1 if full else -signal.SIGKILL)
    assert struck or second.returncode == 0, f"resume with the fault {fault}:\n{second.stderr[-3000:]}"
    assert not (struck and full) or "StorageError" in second.stderr, second.stderr[-3000:]
    check(folder, every, finished=not struck)
    third = drive(env, folder, every)
    assert third.returncode == 0, f"resume after a resume with the fault {fault}:\n{third.stderr[-3000:]}"
    check(folder, every, finished=True)
    return struck


def killed_run(env: dict[str, str], folder: Path, every: int | str, point: int) -> Path:
    """``folder``, holding the experiment of a driver killed at write ``point``."""
    first = drive(env, folder, every, f"{point}:kill")
    assert first.returncode == -signal.SIGKILL, f"the run ended before write {point}: it needs moving"
    return folder


@pytest.mark.parametrize("kind", ["pbt", "hyperband"])
def test_a_resume_killed_in_its_catching_up_resumes_again_into_trustworthy_records(shared_ray, tmp_path, kind):
    """The resume's first writes are its catching up (trials closed, rows superseded, the
    exploits and decisions since the snapshot carried out): a crash there, then a resume.
    The two kinds with the most to catch up (PBT's exploits, Hyperband's rounds); the full
    sweep kills every kind's resume at each of its writes."""
    every = KINDS[kind]
    template = killed_run(shared_ray, tmp_path / "first", every, 23)
    assert second_crash(shared_ray, template, tmp_path / "second", every, "3:kill")


@pytest.mark.slow
@pytest.mark.full_sweep
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kind", KINDS)
def test_every_write_of_a_resume_is_a_safe_place_to_die(shared_ray, tmp_path, kind):
    """Two crashes: the run killed half-way through its writes, then its resume killed at
    each of its own writes in turn, and its disk full from every third of them on (each
    from a copy of the first crash's folder)."""
    every = KINDS[kind]
    clean = drive(shared_ray, tmp_path / "count", every, "1000000000")
    assert clean.returncode == 0, clean.stderr[-3000:]
    total = int(re.search(r"WRITES (\d+)", clean.stdout).group(1))
    template = killed_run(shared_ray, tmp_path / "first", every, total // 2)
    started, writes = time.monotonic(), 0
    while second_crash(shared_ray, template, tmp_path / f"kill_{writes + 1}", every, f"{writes + 1}:kill"):
        writes += 1
    assert writes > 5, f"the resume made only {writes} writes"
    for point in range(1, writes + 1, 3):
        second_crash(shared_ray, template, tmp_path / f"full_{point}", every, f"{point}:enospc")
    print(f"{kind}: first run killed at write {total // 2} of {total}; its resume killed at each of its {writes} "
          f"writes, and its disk full from every third, in {time.monotonic() - started:.0f} s")


@pytest.mark.parametrize("line", [1, 2, 3])
def test_a_disk_full_for_a_moment_at_a_commands_line_leaves_none_of_its_effects(shared_ray, tmp_path, line):
    """The history line goes before the command's effects: when the disk refuses that line
    alone, the run stops with none of them written (no limits in experiment.json, no trial
    ended by it, nothing of it in the searcher's and scheduler's state); the command's file
    stays, the next run refuses it, and the records say the same as the history."""
    folder = tmp_path / "exp"
    first = drive(shared_ray, folder, "control", f"{line}:enospc1:history.jsonl")
    assert first.returncode == 1 and "StorageError" in first.stderr, first.stderr[-3000:]
    check_control_records(folder, finished=False)
    resumed = drive(shared_ray, folder, "control")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_control_records(folder, finished=True)


def test_commands_a_run_recorded_as_applied_hold_after_it_dies_before_their_effects(shared_ray, tmp_path):
    """The history's line is written before a command's effects: a driver killed between them
    leaves trial.json RUNNING and experiment.json without the limit. The resume makes them
    hold: the trial stopped by command does not run on, the experiment gets its 4th trial."""
    import json

    from raytuner._storage.control import control_store

    folder = tmp_path / "exp"
    # Write 9 is inside trial 00000's run when no write comes at a time of its own.
    assert drive({**shared_ray, "HARNESS_RUN_TIME_EVERY_S": "5"}, folder, 1, "9:kill").returncode == -signal.SIGKILL
    before = check_records(folder, finished=False)
    assert not before["00000"].status.is_finished(), before["00000"].status
    run_id = json.loads((folder / "experiment.json").read_text())["run_id"]
    applied = [("stop_trial", {"trial_id": "00000"}), ("set_limits", {"num_trials": 4})]
    control_store(folder).record(*[
        {"time": time.time(), "id": f"c{i}", "origin": "cli", "command": command, "args": args, "accepted": True,
         "message": "", "sent": time.time(), "run_id": run_id, "file": f"0-c{i}.json"}
        for i, (command, args) in enumerate(applied)])
    resumed = drive(shared_ray, folder, 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = check_rows(folder)
    assert results["00000"].status == TrialStatus.STOPPED
    assert json.loads((folder / "trials/00000/trial.json").read_text())["note"] == "stopped by cli"
    assert results["00000"].iteration == before["00000"].iteration  # not run on
    assert len(results.trials) == 4 and results.meta["num_trials"] == 4 and results.status == "COMPLETED"
    assert all(t.status == TrialStatus.COMPLETED for t in results.trials[1:]), [t.status for t in results.trials]


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), mounted for the test; root only."""
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def test_a_real_disk_filling_up_stops_the_run_and_resume_completes_it_once_there_is_room(shared_ray, small_disk):
    folder = small_disk / "exp"
    first = drive(shared_ray, folder, 1, ballast=300_000)  # a few checkpoints of 300 kB fill it up
    assert first.returncode == 1, first.stderr[-3000:]
    assert "raytuner.errors.StorageError: Cannot write" in first.stderr
    assert "No space left on device (ENOSPC)" in first.stderr and "free space on that disk" in first.stderr
    assert "[Errno" not in first.stderr and "During handling" not in first.stderr, first.stderr[-3000:]
    interrupted = check_records(folder, finished=False)
    assert interrupted.status == "INTERRUPTED"
    kept = {t.trial_id: interrupted.history(t.trial_id).to_dict("records") for t in interrupted.trials
            if t.status == TrialStatus.COMPLETED}
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # room again
    resumed = drive(shared_ray, folder, 1, ballast=300_000)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = check_records(folder, finished=True)
    for trial_id, rows in kept.items():  # nothing written before is lost, nor run again
        assert results.history(trial_id).to_dict("records") == rows


# -- bad input: each gets a clear message naming what and where; nothing computed is lost ----
def _interrupted(env: dict[str, str], folder: Path, point: int = 24) -> rt.Results:
    """An experiment whose driver died at write ``point``, checkpointing every report."""
    assert drive(env, folder, 1, f"{point}:kill").returncode == -signal.SIGKILL
    return check_records(folder, finished=False)


def test_a_line_damaged_in_the_middle_of_results_is_named_and_resume_refuses_until_repaired(shared_ray, tmp_path,
                                                                                            capsys):
    from raytuner.cli import main

    folder = tmp_path / "exp"
    _interrupted(shared_ray, folder)
    results_file = folder / "trials/00000/results.jsonl"
    original = results_file.read_bytes()
    lines = original.split(b"\n")
    assert len(lines) > 3
    results_file.write_bytes(b"\n".join([lines[0], lines[1][:15], *lines[2:]]))  # line 2 of many, cut short
    where = f"{results_file}, line 2: not valid JSON"
    loaded = rt.load(folder)
    assert loaded["00000"].status == TrialStatus.DAMAGED and loaded["00000"].damaged.startswith(where)
    assert all(t.status != TrialStatus.DAMAGED for t in loaded.trials if t.trial_id != "00000")
    capsys.readouterr()
    assert main(["show", str(folder)]) == 0 and where in capsys.readouterr().out
    assert main(["export", str(folder), "--csv", "--history"]) != 0 and where in capsys.readouterr().err
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert main(["resume", str(folder)]) == 1
    err = capsys.readouterr().err
    assert where in err and "cannot be resumed (nothing was changed)" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    results_file.write_bytes(original)  # repaired: resume goes on
    assert drive(shared_ray, folder, 1).returncode == 0
    check_records(folder, finished=True)


def _stored(results: rt.Results, trial_id: str, rows: int) -> bool:
    """Whether the trial has ``rows`` rows at least, and a checkpoint among them."""
    history = results.history(trial_id)
    return len(history) >= rows and "checkpoint" in history and bool(history["checkpoint"].notna().any())


def test_a_checkpoint_deleted_by_hand_is_named_and_the_trial_restarts_from_the_one_before(shared_ray, tmp_path,
                                                                                          capsys, caplog):
    import shutil

    from raytuner.cli import main

    # Of 26 writes: the last trial runs, a checkpoint stored. How many rows one append carries
    # depends on the load, so the first of a few late points that leaves such a trial is taken.
    for point in (22, 23, 24, 21):
        folder = tmp_path / f"exp_{point}"
        before = _interrupted(shared_ray, folder, point=point)
        unfinished = [t for t in before.trials if not t.status.is_finished() and _stored(before, t.trial_id, rows=2)]
        if unfinished:
            break
    assert unfinished, [(t.trial_id, t.status) for t in before.trials]
    trial = unfinished[0]
    newest = before.history(trial.trial_id)["checkpoint"].dropna().iloc[-1]
    shutil.rmtree(folder / "trials" / trial.trial_id / newest)
    loaded = rt.load(folder)
    assert all(t.checkpoint is None or Path(t.checkpoint).is_dir() for t in loaded.trials)
    capsys.readouterr()
    assert main(["show", str(folder)]) == 0
    resumed = drive(shared_ray, folder, 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Trial {trial.trial_id}: its checkpoint {newest} is gone from" in resumed.stderr
    results = check_records(folder, finished=True)  # it trained again from the checkpoint before
    done = results[trial.trial_id]
    shutil.rmtree(Path(done.checkpoint))  # and a finished trial's, deleted after the run
    caplog.clear()
    assert rt.load(folder)[trial.trial_id].checkpoint is None
    assert f"Trial {trial.trial_id}: its checkpoint {Path(done.checkpoint).name} is gone" in caplog.text


def test_an_experiment_copied_while_its_driver_runs_loads_and_resumes(shared_ray, tmp_path, capsys):
    import shutil

    from raytuner.cli import main

    folder, copy = tmp_path / "exp", tmp_path / "copy"
    env = {**shared_ray}
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(folder), "2", "0.15"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sum(p.read_bytes().count(b"\n") for p in folder.glob("trials/*/results.jsonl")) >= 6,
                 "reports to copy the folder in the middle of", timeout_s=120, interval_s=0.02, process=driver)
        shutil.copytree(folder, copy)  # as `cp -r` does it, file by file, while the driver writes
    finally:
        out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err[-3000:]
    check_records(folder, finished=True)
    copied = check_records(copy, finished=False)
    assert copied.status == "INTERRUPTED"  # RUNNING in the copy, and no driver holds it
    capsys.readouterr()
    assert main(["show", str(copy)]) == 0 and "INTERRUPTED" in capsys.readouterr().out
    resumed = drive(shared_ray, copy, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_records(copy, finished=True)


ARGV_SCRIPT = """
import sys
from pathlib import Path

import raytuner as rt

EPOCHS = int(sys.argv[1])  # read at import: resume imports the script with the first run's command line
SCALE = float(Path(sys.argv[3]).read_text())  # a file the script needs when it is imported


def train(config):
    for epoch in range(1, EPOCHS + 1):
        rt.report({"loss": SCALE * config["x"] / epoch})


if __name__ == "__main__":
    rt.Tuner(train, space={"x": rt.uniform(1, 2)}, metric="loss", num_trials=2, storage_path=sys.argv[2],
             name="argv", verbose=0, tensorboard=False).fit()
"""


def test_resume_imports_a_script_with_its_first_runs_arguments_and_explains_one_it_cannot_import(shared_ray,
                                                                                                tmp_path):
    script, settings = tmp_path / "train_argv.py", tmp_path / "scale.txt"
    script.write_text(ARGV_SCRIPT)
    settings.write_text("2.0")
    done = subprocess.run([sys.executable, str(script), "3", str(tmp_path), str(settings)], env=shared_ray,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    resume = [sys.executable, "-m", "raytuner.cli", "resume", str(tmp_path / "argv"), "--num-trials", "3"]
    # The file its top level reads is gone: the import fails, and the resume says why.
    settings.unlink()
    before = {path: path.read_bytes() for path in (tmp_path / "argv").rglob("*.json*")}
    failed = subprocess.run(resume, env=shared_ray, capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1
    # A resume that cannot run writes nothing: not this run's id, not a trial's record.
    assert {path: path.read_bytes() for path in (tmp_path / "argv").rglob("*.json*")} == before
    said = " ".join(failed.stderr.split())  # as one line: the terminal wraps it
    assert "Traceback" not in said, failed.stderr
    assert f"Resume imports {script} to find the trainable 'train'" in said
    assert "it raised FileNotFoundError" in said and "at line 8 (SCALE = float(" in said, said
    assert f"raytuner.Tuner.resume('{tmp_path / 'argv'}', trainable=train)" in said
    # With it back, the script is imported with `3 <root> <file>` as sys.argv, not with
    # `raytuner resume`'s own arguments: the new trial trains 3 epochs as the first two did.
    settings.write_text("2.0")
    resumed = subprocess.run(resume, env=shared_ray, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = rt.load(tmp_path / "argv").trials
    assert [t.iteration for t in trials] == [3, 3, 3]
