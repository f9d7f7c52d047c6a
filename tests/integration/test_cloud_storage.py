"""A sweep with its storage in S3 (moto's server over HTTP, the real s3fs client): the
bucket holds the whole experiment; rt.load, the CLI and resume on a fresh head read it; a PBT
clone restarts from its own copy of its donor's checkpoint there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.experiment import ExperimentStorage
from raytuner.cli import main

from tests._helpers import wait_for
from tests.integration import restarts

pytestmark = pytest.mark.usefixtures("ray_cluster")

CRASH_SCRIPT = Path(__file__).with_name("crash_driver.py")


def checkpointed(config):
    for epoch in range(1, 4):
        out = Path(tempfile.mkdtemp())
        (out / "epoch").write_text(str(epoch))
        rt.report({"loss": config["x"] / epoch, "epoch": epoch}, checkpoint=out)


def _keys(uri: str) -> dict[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix):].lstrip("/"): o["Key"] for page in pages for o in page.get("Contents", [])}


def _get(uri: str, rel: str) -> bytes:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{rel}")["Body"].read()


def test_a_sweep_lives_in_the_bucket_and_reads_back_from_it(bucket, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    root = f"{bucket}/exps"
    results = rt.Tuner(checkpointed, space={"x": rt.uniform(1, 2)}, metric="loss", num_trials=3, max_concurrent=2,
                       storage_path=root, name="swept", verbose=0, seed=3, tensorboard=False).fit()
    uri = f"{root}/swept"
    keys = _keys(uri)
    assert json.loads(_get(uri, "experiment.json"))["status"] == "COMPLETED"
    for trial in results.trials:
        assert _get(uri, f"trials/{trial.trial_id}/results.jsonl").count(b"\n") == 1 + 3  # its attempt, 3 reports
        assert json.loads(_get(uri, f"trials/{trial.trial_id}/trial.json"))["status"] == "COMPLETED"
        assert _get(uri, f"trials/{trial.trial_id}/checkpoint_000003/epoch") == b"3"
        assert f"trials/{trial.trial_id}/checkpoint_000002/epoch" not in keys  # checkpoints_to_keep=1, also there
    assert {"tuner.pkl", "state.pkl"} <= set(keys)
    assert not any(tmp_path.glob("s3*")), "nothing may land in a local folder named after the URI"
    # Every path shown is the URI, a str; the staging copy is gone once everything is in the bucket.
    assert results.path == uri and isinstance(results.path, str) and results.path.name == "swept"
    for trial in results.trials:
        assert trial.path == f"{uri}/trials/{trial.trial_id}"
        assert trial.checkpoint == f"{uri}/trials/{trial.trial_id}/checkpoint_000003"
    assert not [p for p in (tmp_path / "cache/raytuner/stage").rglob("*") if p.is_file()]

    # A reader elsewhere: another cache, the bucket alone.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))
    loaded = rt.load(uri)
    assert loaded.dataframe().equals(results.dataframe())
    assert loaded.best.checkpoint == f"{uri}/trials/{results.best.trial_id}/checkpoint_000003"  # the URI
    assert not list((tmp_path / "other-machine").rglob("checkpoint_*"))  # read from the listing, not downloaded
    assert _get(uri, f"trials/{results.best.trial_id}/checkpoint_000003/epoch") == b"3"
    assert len(loaded.history(results.best.trial_id)) == 3

    capsys.readouterr()
    with caplog.at_level("WARNING", logger="raytuner"):
        assert main(["ls", root]) == 0
    listed = capsys.readouterr()
    assert "swept" in listed.out and "COMPLETED" in listed.out
    # Each experiment is read as one in the bucket: its checkpoints are there (none "gone"),
    # and the listing names the bucket, not the local cache it pulled the records into.
    assert "is gone" not in caplog.text + listed.err, caplog.text
    assert f"experiments in {root}" in " ".join(listed.out.split()), listed.out
    assert main(["show", "swept", "--root", root]) == 0
    assert results.best.trial_id in capsys.readouterr().out
    assert main(["best", uri]) == 0
    assert json.loads(capsys.readouterr().out) == results.best.config
    assert main(["export", uri, "--csv", "--history"]) == 0
    assert capsys.readouterr().out.count("\n") == 1 + 3 * 3
    assert main(["report", uri, "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 0
    assert main(["rename", uri, "other"]) == 2  # refused: renaming in a bucket is a copy of everything


def test_a_retry_and_a_resume_restart_from_the_checkpoints_workers_put_in_the_bucket(bucket, tmp_path):
    root = f"{bucket}/exps"
    restarts.check_retry_then_resume(restarts.retry_then_resume(root, "restarts", str(tmp_path)), in_storage=0)
    kept = sorted({rel.split("/")[2] for rel in _keys(f"{root}/restarts") if "/checkpoint_" in rel})
    assert kept == ["checkpoint_000006"]  # checkpoints_to_keep=1: the older ones were deleted there


def test_a_promoted_trial_restarts_from_its_checkpoint_in_the_bucket(bucket, tmp_path):
    restarts.check_promotion(restarts.promotion(f"{bucket}/exps", "promoted", str(tmp_path)), in_storage=0)


def _completed_in_bucket(uri: str) -> int:
    count = 0
    for rel in _keys(uri):
        if rel.endswith("/trial.json"):
            count += json.loads(_get(uri, rel))["status"] == "COMPLETED"
    return count


HELD = ("00003", "00004")  # crash_driver.FIRST_HELD on: they hold before epoch 3


def _held_at_epoch_2_in_bucket(uri: str, gate: Path) -> bool:
    """Whether trials 3 and 4 hold, the row committing their checkpoint of epoch 2 uploaded."""
    keys = _keys(uri)
    for trial_id in HELD:
        rel = f"trials/{trial_id}/results.jsonl"
        if not (gate / f"held-{trial_id}").exists() or rel not in keys:
            return False
        rows = [json.loads(line) for line in _get(uri, rel).splitlines() if b'"_marker"' not in line]
        if [(r["epoch"], r.get("checkpoint")) for r in rows][-1:] != [(2, "checkpoint_000002")]:
            return False
    return True


def test_a_lost_head_resumes_on_a_fresh_one_from_the_bucket_alone(bucket, tmp_path, monkeypatch):
    root = f"{bucket}/exps"
    uri = f"{root}/crashed"
    head = tmp_path / "old-head-cache"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(head)}
    driver = subprocess.Popen([sys.executable, str(CRASH_SCRIPT), root, str(gate)], env=env, start_new_session=True)
    try:
        # The head is lost mid-run, at a chosen point: trials 0-2 finished, 3 and 4 held before
        # epoch 3 with their checkpoints of epoch 2 recorded in the bucket, 5-7 not started.
        wait_for(lambda: _completed_in_bucket(uri) == 3 and _held_at_epoch_2_in_bucket(uri, gate),
                 "three trials to complete and two to hold mid-run in the bucket, to kill the driver",
                 timeout_s=120, interval_s=0.2, process=driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the head is gone ...
        driver.wait()  # (the held workers exit, their raylet gone: crash_driver.hold)
    shutil.rmtree(head)  # ... with its disk

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "new-head-cache"))
    before = rt.load(uri)
    assert before.meta["status"] == "RUNNING"
    done_before = {t.trial_id: t.metrics for t in before.trials if t.status == TrialStatus.COMPLETED}
    assert sorted(done_before) == ["00000", "00001", "00002"]
    assert sorted(t.trial_id for t in before.trials) == [*done_before, *HELD]
    files_before = {t: _get(uri, f"trials/{t}/results.jsonl") for t in done_before}
    results = rt.Tuner.resume(uri, verbose=0)
    assert results.meta["status"] == "COMPLETED"
    assert len(results.trials) == 8 and all(t.status == TrialStatus.COMPLETED for t in results.trials)
    for trial_id, metrics in done_before.items():
        assert results[trial_id].metrics == metrics
        assert len(results.history(trial_id)) == 4
        assert _get(uri, f"trials/{trial_id}/results.jsonl") == files_before[trial_id], "finished trials are not rerun"
    after = rt.load(uri)  # and the bucket has the end of it
    assert after.meta["status"] == "COMPLETED" and after.meta["resumed"] == 1
    assert {t.trial_id: list(after.history(t.trial_id)["epoch"]) for t in after.trials} == {t.trial_id: list(results.history(t.trial_id)["epoch"]) for t in results.trials}
    assert all(list(after.history(t.trial_id)["epoch"]) == [1, 2, 3, 4] for t in after.trials), {t.trial_id: (t.status, list(after.history(t.trial_id)["epoch"])) for t in after.trials}
    reader = ExperimentStorage(uri)
    for trial_id in HELD:  # the trials lost mid-run went on from their checkpoints in the bucket
        (resumed,) = [m for m in reader.read_history(trial_id).attempts if m["reason"] == "resume"]
        assert (resumed["start_iteration"], resumed["checkpoint"]) == (2, "checkpoint_000002")


def pbt_member(config):
    """A PBT member whose checkpoint says who wrote it at which step. A clone, on its first
    run from a donor's checkpoint, first waits until the donor's own checkpoint at that step
    is pruned from the bucket, then reads its copy there (``copy_intact``: 1 if whole)."""
    acc, start, writer, copy_intact = 0.0, 0, -1, -1.0
    me = rt.get_context().trial_id
    checkpoint = rt.get_checkpoint()
    if checkpoint is not None:
        state = json.loads((checkpoint / "state.json").read_text())
        acc, start, writer = state["acc"], state["step"], state["trial"]
        if writer != int(me):
            copy_intact = _copy_after_donors_pruning(config["exp"], f"{writer:05d}", me, start, state)
    for step in range(start + 1, 10):
        acc += min(config["lr"], 0.2 / (1.0 + acc)) / max(config["lr"], 0.2 / (1.0 + acc))
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"acc": acc, "step": step, "trial": int(me)}))
            rt.report({"acc": acc, "start": start, "restored_from": writer, "copy_intact": copy_intact},
                      checkpoint=folder)


def _copy_after_donors_pruning(exp: str, donor: str, me: str, step: int, state: dict) -> float:
    import fsspec

    fs, root = fsspec.core.url_to_fs(exp)

    def files(pattern: str) -> list[str]:
        fs.invalidate_cache()
        return fs.glob(f"{root}/trials/{pattern}")

    wait_for(lambda: not files(f"{donor}/checkpoint_{step:06d}/*"), f"trial {donor}'s checkpoint at {step} to be pruned",
             timeout_s=120)
    copies = files(f"{me}/clone_*/checkpoint_{step:06d}/state.json")
    return float(len(copies) == 1 and json.loads(fs.cat_file(copies[0])) == state)


def test_a_pbt_clone_restarts_from_its_own_copy_in_the_bucket_which_the_donors_pruning_leaves(bucket):
    root = f"{bucket}/exps"
    uri = f"{root}/pbt"
    # Synchronous: every round (at 3 and 6) has an exploit, whatever order the reports come in.
    scheduler = rt.PBTScheduler(perturbation_interval=3, mutations={"lr": rt.loguniform(1e-3, 1.0)}, synch=True,
                                max_resource=9, seed=0)
    results = rt.Tuner(pbt_member, space={"lr": rt.loguniform(1e-3, 1.0), "exp": uri}, metric="acc", mode="max",
                       num_trials=4, max_concurrent=2, scheduler=scheduler, storage_path=root, name="pbt", verbose=0,
                       seed=3, checkpoints_to_keep=1, tensorboard=False).fit()
    assert all(t.status is TrialStatus.COMPLETED and t.iteration == 9 for t in results.trials)
    reader = ExperimentStorage(uri)
    exploits = 0
    for trial in results.trials:
        folded = reader.read_history(trial.trial_id)
        for marker in folded.attempts:
            if marker["reason"] != "exploit":
                continue
            exploits += 1
            donor, k = marker["cloned_from"]["trial_id"], marker["cloned_from"]["iteration"]
            # It restarted from a copy in its own folder in the bucket, with the donor's state
            # at k; the donor's own checkpoint there was pruned while the copy stayed whole.
            assert marker["checkpoint"] == f"clone_{marker['attempt']}/checkpoint_{k:06d}"
            first = min((r for r in folded.rows + folded.superseded if r["attempt"] == marker["attempt"]),
                        key=lambda r: r["iteration"])
            assert (first["restored_from"], first["start"], first["iteration"]) == (int(donor), k, k + 1)
            assert first["copy_intact"] == 1.0
    assert exploits >= 2
    # checkpoints_to_keep=1, clones' copies too: each trial ends with its last checkpoint only.
    assert sorted(rel for rel in _keys(uri) if "/checkpoint_" in rel) == sorted(
        f"trials/{t.trial_id}/checkpoint_000009/state.json" for t in results.trials)


def failing(config):
    rt.report({"loss": config["x"]})
    if config["x"] > 1.5:
        raise KeyError("lr")


def test_messages_name_the_uri_and_no_staging_copy_is_left(bucket, tmp_path, capsys):
    uri = f"{bucket}/exps/mixed"
    results = rt.Tuner(failing, space={"x": rt.grid([1.0, 2.0])}, metric="loss", storage_path=f"{bucket}/exps",
                       name="mixed", verbose=1, tensorboard=False).fit()
    out = capsys.readouterr().out
    assert f"Full tracebacks: {uri}/trials/00001/error.txt" in out, out
    assert str(results.path) == uri and results["00001"].path == f"{uri}/trials/00001"
    assert not [p for p in (tmp_path / "cache/raytuner/stage").rglob("*") if p.is_file()]
    # Resuming a finished experiment from the bucket answers from it, and leaves no copy either.
    assert rt.Tuner.resume(uri, verbose=0).path == uri
    assert not [p for p in (tmp_path / "cache/raytuner/stage").rglob("*") if p.is_file()]
    assert rt.load(uri).best.trial_id == "00000"  # the failed trial never best


def test_an_experiment_whose_trials_all_fail_is_failed_in_the_bucket_and_leaves_no_copy(bucket, tmp_path, caplog):
    uri = f"{bucket}/exps/broken"
    with pytest.raises(rt.TrialsFailedError):
        rt.Tuner(failing, space={"x": rt.grid([2.0, 3.0])}, metric="loss", storage_path=f"{bucket}/exps",
                 name="broken", verbose=0, tensorboard=False).fit()
    # FAILED is written after the driver's uploads ended, and goes up with nothing left behind.
    assert json.loads(_get(uri, "experiment.json"))["status"] == "FAILED"
    assert rt.load(uri).status == "FAILED"
    assert not [p for p in (tmp_path / "cache/raytuner/stage").rglob("*") if p.is_file()]
    assert "not everything reached the bucket" not in caplog.text
