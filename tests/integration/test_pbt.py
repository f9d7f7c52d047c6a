"""PBT and PB2 on a local Ray: exploits relaunch clones from their donors' checkpoints with
new configs, a population larger than the slots waits PAUSED, histories stay one trajectory
with the config in effect, the best trial's schedule replays to the same model, bad setups
fail before any trial starts, and a driver killed mid-run or in the middle of a clone's copy
(in a folder and in a bucket) resumes with its population, lineage and nothing half made."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage import remote
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.history import History, read_history
from raytuner.errors import ConfigError
from raytuner.schedulers import Decision, Exploit, Scheduler

from tests._helpers import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


def toy(config):
    """A deterministic pbt_function: accuracy grows fastest when lr is near a best value
    that falls as accuracy grows. The checkpoint holds the state and who wrote it."""
    acc, start, writer = 0.0, 0, -1
    checkpoint = rt.get_checkpoint()
    if checkpoint is not None:
        state = json.loads((checkpoint / "state.json").read_text())
        acc, start, writer = state["acc"], state["step"], state["trial"]
    me = int(rt.get_context().trial_id)
    for step in range(start + 1, config["steps"] + 1):
        best = 0.2 / (1.0 + acc)
        acc += min(config["lr"], best) / max(config["lr"], best)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"acc": acc, "step": step, "trial": me}))
            rt.report({"acc": acc, "start": start, "restored_from": writer}, checkpoint=folder)


def never_checkpoints(config):
    for step in range(1, 10):
        rt.report({"acc": step * config["lr"]})


SPACE = {"lr": rt.loguniform(1e-3, 1.0), "steps": 12}
MUTATIONS = {"lr": rt.loguniform(1e-3, 1.0)}


def pbt_run(storage, scheduler, **kwargs):
    return rt.Tuner(toy, space=SPACE, metric="acc", mode="max", num_trials=4, max_concurrent=2,
                    scheduler=scheduler, storage_path=storage, verbose=0, seed=3, checkpoints_to_keep=1,
                    tensorboard=False, **kwargs).fit()


def markers(results, trial_id):
    return read_history(results[trial_id].path / "results.jsonl").attempts


def test_clones_restart_from_their_donors_checkpoint_with_the_new_config(storage):
    # Synchronous: the whole population is ranked at each interval, so its bottom quarter
    # exploits whatever order the reports arrive in. Asynchronous, a trial exploits only if it
    # is the worst of those ranked when it reports, which the order of arrival decides (CI
    # once saw no exploit at all); tests/schedulers/test_pbt.py pins those decisions exactly.
    results = pbt_run(storage, rt.PBTScheduler(perturbation_interval=3, mutations=MUTATIONS, max_resource=12, seed=0,
                                               synch=True))
    assert all(t.status is TrialStatus.COMPLETED and t.iteration == 12 for t in results.trials)
    exploits = 0
    for trial in results.trials:
        history = results.history(trial.trial_id)
        assert list(history["iteration"]) == sorted(set(history["iteration"])) and history["iteration"].iloc[-1] == 12
        folded = read_history(trial.path / "results.jsonl")
        exploits += _clones_restarted_from_their_donors(folded)
        for marker in folded.attempts:
            if marker["reason"] != "exploit":
                continue
            kept = history[history["attempt"] == marker["attempt"]]
            assert (kept["config/lr"] == marker["config"]["lr"]).all() and (kept["cloned_from"] == marker["cloned_from"]["trial_id"]).all()
    assert exploits >= 1
    reasons = {m["reason"] for t in results.trials for m in markers(results, t.trial_id)}
    assert "promotion" in reasons  # 4 trials on 2 slots: members waited PAUSED for their turn
    assert results.best.config == results.history(results.best.trial_id).filter(like="config/").iloc[-1].rename(
        lambda c: c[len("config/"):]).to_dict()
    # No checkpoint is missing though each trial keeps only its newest: clones own their copies.
    for trial in results.trials:
        assert trial.checkpoint is not None and trial.checkpoint.is_dir()


def _clones_restarted_from_their_donors(folded: History) -> int:
    """Check that each exploit in a trial's history restarted it from its donor's checkpoint;
    return how many there were."""
    exploits = [m for m in folded.attempts if m["reason"] == "exploit"]
    for marker in exploits:
        donor, k = marker["cloned_from"]["trial_id"], marker["cloned_from"]["iteration"]
        # Its first report (kept, or superseded by a later exploit at once) restarted from
        # the donor's checkpoint at k: rt.get_checkpoint() gave the donor's.
        made = [r for r in folded.rows + folded.superseded if r["attempt"] == marker["attempt"]]
        assert made, "a clone has steps left to train: a donor at max_resource is done, never cloned"
        first = min(made, key=lambda r: r["iteration"])
        assert (first["restored_from"], first["start"], first["iteration"]) == (int(donor), k, k + 1)
    return len(exploits)


def test_the_best_trials_schedule_replays_to_the_same_model(storage):
    results = pbt_run(storage, rt.PBTScheduler(perturbation_interval=3, mutations=MUTATIONS, max_resource=12, seed=1))
    best = results.best
    schedule = results.schedule(best.trial_id)
    replay = rt.PBTReplay(results.path, best.trial_id)
    assert [[r, c["lr"]] for r, c in replay.schedule] == [[row["resource"], row["config/lr"]]
                                                          for row in schedule.to_dict("records")]
    again = rt.Tuner(toy, space=replay.space, scheduler=replay, metric="acc", mode="max", num_trials=1,
                     storage_path=storage, verbose=0, tensorboard=False).fit()
    (trial,) = again.trials
    assert trial.status is TrialStatus.COMPLETED
    assert trial.metrics["acc"] == pytest.approx(best.metrics["acc"], rel=1e-12)
    changes = again.schedule(trial.trial_id)
    assert [(r["resource"], r["config/lr"]) for r in changes.to_dict("records")] == [
        (row["resource"], row["config/lr"]) for row in schedule.to_dict("records")]


def test_synchronous_pb2_runs_the_population_to_the_end(storage):
    scheduler = rt.PB2Scheduler(perturbation_interval=3, mutations=MUTATIONS, synch=True, max_resource=12, seed=0)
    results = pbt_run(storage, scheduler)
    assert all(t.status is TrialStatus.COMPLETED and t.iteration == 12 for t in results.trials)
    reasons = [m["reason"] for t in results.trials for m in markers(results, t.trial_id)]
    assert reasons.count("exploit") >= 1
    for trial in results.trials:
        for marker in markers(results, trial.trial_id):
            if marker["reason"] == "exploit":
                assert 1e-3 <= marker["config"]["lr"] <= 1.0


def test_a_trainable_that_never_checkpoints_fails_before_any_exploit(storage):
    with pytest.raises(ConfigError, match="reached its first decision point .* without a checkpoint"):
        rt.Tuner(never_checkpoints, space={"lr": rt.uniform(0.1, 1)}, metric="acc", mode="max", num_trials=2,
                 scheduler=rt.PBTScheduler(perturbation_interval=2, mutations={"lr": rt.uniform(0.1, 1)}),
                 storage_path=storage, verbose=0, tensorboard=False).fit()


def _exploit_markers(exp: Path) -> set[tuple[str, int, str, int]]:
    found = set()
    for path in exp.glob("trials/*/results.jsonl"):
        for marker in read_history(path).attempts:
            if marker.get("reason") == "exploit":
                found.add((path.parent.name, marker["attempt"], marker["cloned_from"]["trial_id"],
                           marker["cloned_from"]["iteration"]))
    return found


def test_a_sigkilled_pbt_driver_resumes_with_its_population_and_lineage(storage, tmp_path):
    import os
    import signal
    import subprocess
    import sys


    exp = storage / "crashed_pbt"
    script = Path(__file__).with_name("crash_driver.py")
    gate = tmp_path / "gate"
    gate.mkdir()
    driver = subprocess.Popen([sys.executable, str(script), str(storage), "pbt", str(gate)], start_new_session=True)
    try:
        # The kill lands mid-run, at a chosen point: both slots' members hold before step 7,
        # past three synchronous rounds, so the clones of the first two were launched.
        wait_for(lambda: len(list(gate.glob("held-*"))) == 2 and len(_exploit_markers(exp)) >= 2,
                 "two members held before step 7, two exploits launched, to kill the driver", timeout_s=120,
                 process=driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()  # the held workers exit, their raylet gone (crash_driver.hold)
    before = _exploit_markers(exp)
    assert max(t.iteration for t in rt.load(exp).trials) == 6  # killed mid-run, where it was held
    configs_before = {t.trial_id: rt.load(exp).history(t.trial_id) for t in rt.load(exp).trials}

    results = rt.Tuner.resume(exp, verbose=0)
    assert results.meta["status"] == "COMPLETED"
    assert all(t.status is TrialStatus.COMPLETED and t.iteration == 16 for t in results.trials)
    assert before <= _exploit_markers(exp)  # the lineage written before the crash is all there
    for trial in results.trials:
        history = results.history(trial.trial_id)
        assert list(history["iteration"]) == sorted(set(history["iteration"])) and history["iteration"].iloc[-1] == 16
        old = configs_before[trial.trial_id]
        kept = history[history["iteration"] <= (old["iteration"].max() if len(old) else 0)]
        # Rows kept across the crash keep the config they were made with.
        shared = old.merge(kept, on=["iteration", "attempt"], suffixes=("", "_after"))
        assert (shared["config/x"] == shared["config/x_after"]).all()
        # Every row's config is the one its step trained with, after the resume too.
        assert (history["x_trained"] == history["config/x"]).all(), trial.trial_id
        for marker in read_history(trial.path / "results.jsonl").attempts:
            if marker["reason"] == "resume":  # every member checkpointed: none restarted from scratch
                assert marker["start_iteration"] > 0 and marker["checkpoint"]
    assert not results.schedule(results.best.trial_id).empty


def _clone_files(exp: str) -> dict[str, list[str]]:
    """The files (hidden ones too) under every trial's ``clone_<n>`` folders, in a folder or
    a bucket, by ``<trial>/clone_<n>/<child>``."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(exp)
    fs.invalidate_cache()
    found: dict[str, list[str]] = {}
    for key in fs.find(f"{root}/trials"):
        parts = key[len(root):].strip("/").split("/")
        if len(parts) > 4 and parts[2].startswith("clone_"):
            found.setdefault("/".join(parts[1:4]), []).append("/".join(parts[4:]))
    return {folder: sorted(files) for folder, files in found.items()}


# The bucket case (moto's S3 server: 10 s) runs with the full sweep, before each stop
# (`pytest -m full_sweep tests/integration`); the folder case in every run.
@pytest.mark.parametrize("where", ["folder", pytest.param("bucket", marks=pytest.mark.full_sweep)])
def test_a_driver_killed_in_the_middle_of_a_clones_copy_resumes_without_it(where, storage, request):
    import os
    import signal
    import subprocess
    import sys

    from raytuner._storage import faults

    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    exp = f"{root}/crashed_pbt"
    script = Path(__file__).with_name("crash_driver.py")
    # The fault hook kills the driver in the middle of its first copy of a donor's checkpoint
    # (the first synchronous round, at 2): in a folder once the copy is made beside its place,
    # in a bucket with half its files copied to their place.
    driver = subprocess.Popen([sys.executable, str(script), root, "pbt"], start_new_session=True,
                              env={**os.environ, faults.ENV: "1:kill:/clone_"})
    try:
        assert driver.wait(timeout=120) == -signal.SIGKILL
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # its Ray
        except ProcessLookupError:
            pass
    ((folder, files),) = _clone_files(exp).items()
    if where == "folder":
        assert folder.split("/")[2].startswith(".checkpoint") and files == ["same_state", "state"]
    else:
        assert folder.split("/")[2].startswith("checkpoint_") and len(files) == 1
    assert not any("clone_" in str(t.checkpoint) for t in rt.load(exp).trials)  # no record names it

    results = rt.Tuner.resume(exp, verbose=0)
    assert results.meta["status"] == "COMPLETED"
    assert all(t.status is TrialStatus.COMPLETED and t.iteration == 16 and t.error is None for t in results.trials)
    # Whatever clone copies are left are whole and in place: the half one is gone.
    assert all(folder.split("/")[2].startswith("checkpoint_") and files == ["same_state", "state"]
               for folder, files in _clone_files(exp).items()), _clone_files(exp)
    if where == "folder":
        assert all(any(clone.iterdir()) for clone in storage.glob("crashed_pbt/trials/*/clone_*"))
    reader = ExperimentStorage(exp)
    for trial in results.trials:
        history = results.history(trial.trial_id)
        assert list(history["iteration"]) == sorted(set(history["iteration"])) and history["iteration"].iloc[-1] == 16
        assert (history["x_trained"] == history["config/x"]).all()
    assert sum(_clones_restarted_from_their_donors(reader.read_history(t.trial_id)) for t in results.trials) >= 1


# -- a donor's checkpoint deleted by hand before its clone's copy ------------------------------
class ClonesOnce(Scheduler):
    """Trial 00000 clones trial 00001 once: paused at its report 4 (every report of it awaits
    a decision), it is given the exploit once 00001 has reported 2, whichever comes last."""

    requires_checkpoints = True
    changes_configs = True

    def __init__(self):
        self.donor_at, self.paused, self.cloned = 0, False, False
        self._exploits: list[Exploit] = []
        self._resume: list[str] = []

    def on_result(self, trial_id, resource, value):
        if trial_id == "00001":
            self.donor_at = resource
        elif resource >= 4 and not self.paused:
            self.paused = True
            self._decide()
            return Decision.PAUSE
        self._decide()
        return Decision.CONTINUE

    def _decide(self):
        if self.paused and self.donor_at >= 2 and not self.cloned:
            self.cloned = True
            self._exploits.append(Exploit("00000", "00001", {"x": 0.5}))
            self._resume.append("00000")

    def decision_point(self, trial_id, resource):
        return resource + 1 if trial_id == "00000" else math.inf

    def choose_trial_to_resume(self):
        return self._resume.pop(0) if self._resume else None

    def exploits(self):
        out, self._exploits = self._exploits, []
        return out


class DeletesTheDonorsCheckpoint(ClonesOnce):
    """Between the exploit's decision and the copy (as :meth:`exploits` hands it over), the
    donor's checkpoint folders are deleted, as a person may delete them by hand."""

    def __init__(self, exp: str):
        super().__init__()
        self.exp = exp

    def exploits(self):
        out = super().exploits()
        if out:
            import fsspec

            fs, root = fsspec.core.url_to_fs(self.exp)
            fs.invalidate_cache()
            for folder in fs.glob(f"{root}/trials/00001/checkpoint_*"):
                fs.rm(folder, recursive=True)
        return out


def member(config):
    """Sixteen steps, a checkpoint at each that says who wrote it at which step."""
    start, writer = 0, -1
    checkpoint = rt.get_checkpoint()
    if checkpoint is not None:
        state = json.loads((checkpoint / "state.json").read_text())
        start, writer = state["step"], state["trial"]
    me = int(rt.get_context().trial_id)
    for step in range(start + 1, 17):
        if me == 1 and step == 2 and config.get("gate"):
            wait_for(lambda: Path(config["gate"]).exists(), "the gate to the donor's step 2")
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps({"step": step, "trial": me}))
            rt.report({"loss": config["x"] / step, "start": start, "restored_from": writer, "x_trained": config["x"]},
                      checkpoint=folder)


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_clone_whose_donors_checkpoint_was_deleted_by_hand_keeps_its_own_and_the_run_goes_on(
        where, storage, request, caplog):
    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    exp = f"{root}/handdeleted"
    results = rt.Tuner(member, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=2, max_concurrent=2,
                       scheduler=DeletesTheDonorsCheckpoint(exp), storage_path=root, name="handdeleted", verbose=0,
                       checkpoints_to_keep=None, seed=3, tensorboard=False).fit()
    _kept_its_own(results, exp, caplog)
    if where == "folder":
        assert not list(storage.glob("handdeleted/trials/*/clone_*")), "nor an empty clone folder left"


class OpensTheGateOnThePause(rt.Callback):
    def __init__(self, gate: Path):
        self.gate = gate

    def on_trial_end(self, trial):
        if trial.trial_id == "00000" and trial.status is TrialStatus.PAUSED:
            self.gate.touch()


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_a_clone_whose_donors_checkpoint_goes_at_the_copy_after_the_launch_check_keeps_its_own(
        where, storage, request, caplog, monkeypatch, tmp_path):
    """00000 is paused when the donor reaches 2 (the donor waits for that), so the exploit is
    decided between two launch checks and its copy is still queued when the next one looks:
    the donor's folder is deleted as the copy starts (a hook on the driver's storage)."""
    root = str(storage) if where == "folder" else f"{request.getfixturevalue('bucket')}/exps"
    exp = f"{root}/handdeleted"
    copy = ExperimentStorage.clone_checkpoint

    def deleted_first(self, source_trial, source, trial_id, name):
        if self.uri is not None:
            remote.remove([f"{self.uri}/trials/{source_trial}/{source}"])
        else:
            shutil.rmtree(self.trial_path(source_trial) / source)
        return copy(self, source_trial, source, trial_id, name)

    monkeypatch.setattr(ExperimentStorage, "clone_checkpoint", deleted_first)
    gate = tmp_path / "gate"
    results = rt.Tuner(member, space={"x": rt.uniform(0, 1), "gate": str(gate)}, metric="loss", num_trials=2,
                       max_concurrent=2, scheduler=ClonesOnce(), storage_path=root, name="handdeleted", verbose=0,
                       checkpoints_to_keep=None, seed=3, tensorboard=False,
                       callbacks=[OpensTheGateOnThePause(gate)]).fit()
    _kept_its_own(results, exp, caplog)


def _kept_its_own(results, exp, caplog):
    assert results.meta["status"] == "COMPLETED"
    assert all(t.status is TrialStatus.COMPLETED and t.iteration == 16 and t.error is None for t in results.trials)
    # Said once, naming the trial and the folder that is gone.
    (said,) = [r.getMessage() for r in caplog.records if "cannot clone" in r.getMessage()]
    assert said.startswith("Trial 00000 cannot clone trial 00001: its checkpoint folder ") and f"{exp}/trials/00001/checkpoint_0" in said
    assert "keeps its own model and config" in said
    # It went on from its own checkpoint at 4, with its own config: one trajectory, no exploit.
    clone = results["00000"]
    history = ExperimentStorage(exp).read_history("00000")
    assert [(m["attempt"], m["reason"], m["start_iteration"], m["checkpoint"]) for m in history.attempts] == [
        (1, "start", 0, None), (2, "promotion", 4, "checkpoint_000004")]
    assert [r["iteration"] for r in history.rows] == list(range(1, 17)) and not history.superseded
    assert {r["x_trained"] for r in history.rows} == {clone.config["x"]} != {0.5}
    assert [(r["start"], r["restored_from"]) for r in history.rows if r["iteration"] == 5] == [(4, 0)]
    assert (results.history("00000")["config/x"] == clone.config["x"]).all()
    assert not _clone_files(exp), "no copy was made"
