"""Several Ray nodes on this machine, and trial workers that die.

The multi-node scenarios run in a child process (``multinode_scenarios.py``) on a cluster
of three 1-CPU nodes (``ray.cluster_utils.Cluster``), apart from the local Ray that the
other integration tests share in this process; the child prints the facts asserted here.
Worker death on one node runs on that shared local Ray, and so does a check of what a
dead driver leaves for resume, found by ``benchmarks/load_test.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import TrialStatus
from raytuner._storage.history import read_history

from tests.integration import restarts

SCRIPT = Path(__file__).with_name("multinode_scenarios.py")
STEPS = [1, 2, 3, 4]  # each scenario trial reports steps 1..4, checkpointing each


@pytest.fixture(scope="module")
def multinode(tmp_path_factory):
    # A short private RAY_TMPDIR: the cluster's sockets live under it (paths must stay
    # under 108 bytes), and its address file cannot point another process's bare
    # ray.init() at this cluster once it is gone.
    ray_tmp = tempfile.mkdtemp(prefix="rt-mn-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = ray_tmp
    try:
        proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path_factory.mktemp("multinode"))],
                              capture_output=True, text=True, timeout=240, env=env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"scenario script failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def scenario(facts, name):
    result = facts[name]
    assert "crashed" not in result, result.get("crashed")
    return result


def nodes_of(trial):
    return {row["node"] for row in trial["rows"]}


@pytest.mark.slow
def test_trials_spread_over_every_node(multinode):
    facts = scenario(multinode, "spread_and_gpu")
    assert facts["cpu_max_concurrent"] == 3  # one 1-CPU trial per node
    assert all(t["status"] == "COMPLETED" for t in facts["cpu"])
    used = set().union(*(nodes_of(t) for t in facts["cpu"]))
    assert used == set(facts["nodes"]) and multinode["head"] in used


@pytest.mark.slow
def test_what_a_trial_printed_on_another_node_is_in_the_drivers_storage(multinode):
    facts = scenario(multinode, "spread_and_gpu")
    remote = [t for t in facts["cpu"] + facts["gpu"] if nodes_of(t) - {multinode["head"]}]
    assert remote, "no trial ran off the head node"
    for trial in remote:
        # The driver runs on the head node: the file was written there, from the answers.
        expected = "".join(f"step {row['step']} on node {row['node']}\n" for row in trial["rows"])
        assert trial["log"] == expected


@pytest.mark.slow
def test_gpu_trials_run_on_the_node_that_declares_a_gpu(multinode):
    facts = scenario(multinode, "spread_and_gpu")
    assert [t["status"] for t in facts["gpu"]] == ["COMPLETED"] * 3
    rows = [row for t in facts["gpu"] for row in t["rows"]]
    assert {row["node"] for row in rows} == {facts["gpu_node"]}
    assert {row["gpu_visible"] for row in rows} == {0}  # Ray's CUDA_VISIBLE_DEVICES, no real GPU needed
    # The CPU trials spread over every node, the GPU node too, and see no card there.
    cpu_rows = [row for t in facts["cpu"] for row in t["rows"]]
    assert facts["gpu_node"] in {row["node"] for row in cpu_rows}
    assert {row["gpu_visible"] for row in cpu_rows} == {-1}  # CUDA_VISIBLE_DEVICES empty, not unset


@pytest.mark.slow
def test_a_worker_node_that_sees_the_storage_puts_its_checkpoints_there_itself(multinode):
    facts = scenario(multinode, "checkpoints_on_other_nodes")
    trial = facts["shared"]
    assert trial["status"] == "COMPLETED"
    assert {row["node"] for row in trial["rows"]} == {facts["gpu_node"]} != {multinode["head"]}
    assert {row["sees_storage"] for row in trial["rows"]} == {1}  # its experiment.json names this run
    # The retry restarted on that node from the checkpoint it stored, read straight back.
    assert [(row["step"], row["resumed_from"], row["attempt"]) for row in trial["rows"]] == [(1, 0, 1), (2, 0, 1), (3, 2, 2)]
    assert all(row["blob_ok"] for row in trial["rows"])
    assert trial["checkpoint"] and trial["stored_step"] == "3" and trial["stored_blob_ok"]
    assert trial["folders"] == ["checkpoint_000003"]  # checkpoints_to_keep=1; nothing half-stored


@pytest.mark.slow
def test_a_node_told_the_storage_is_not_shared_relays_checkpoints_through_the_drivers_node(multinode):
    facts = scenario(multinode, "checkpoints_on_other_nodes")
    trial = facts["unshared"]
    assert trial["status"] == "COMPLETED"
    assert {row["node"] for row in trial["rows"]} == {facts["unshared_node"]}
    assert {row["sees_storage"] for row in trial["rows"]} == {0}  # its trial_dir is a scratch folder
    # Each checkpoint (9 MiB: three chunks) reached the storage whole, and the retry on the
    # same node got its step-2 checkpoint back through the relay.
    assert [(row["step"], row["resumed_from"], row["attempt"]) for row in trial["rows"]] == [(1, 0, 1), (2, 0, 1), (3, 2, 2)]
    assert all(row["blob_ok"] for row in trial["rows"])
    assert trial["checkpoint"] and trial["stored_step"] == "3" and trial["stored_blob_ok"]
    assert trial["folders"] == ["checkpoint_000003"] and trial["partial"] == []


@pytest.mark.slow
def test_relayed_checkpoints_serve_a_retry_a_resume_and_a_promotion(multinode):
    facts = scenario(multinode, "checkpoints_on_other_nodes")
    restarts.check_retry_then_resume(facts["relay_restarts"], in_storage=0)  # 0: on the node that relays
    restarts.check_promotion(facts["relay_promotion"], in_storage=0)


def _assert_lost_node_trials_retried_elsewhere_with_nothing_lost(facts):
    lost = facts["lost"]
    assert lost is not None, "no trial ran on a worker node, so no node was lost"
    retried = [t for t in facts["trials"] if lost in nodes_of(t)]
    assert retried, "the trial on the lost node is missing"
    for trial in facts["trials"]:
        rows = trial["rows"]
        # One trajectory, nothing missing or repeated; the retry resumed from the newest
        # stored checkpoint, and the first attempt's rows after it were rewound.
        assert [row["step"] for row in rows] == STEPS, trial
        assert trial["status"] == "COMPLETED", trial
        if trial not in retried:
            assert trial["arrived"] == len(rows), trial  # every report that arrived is kept
            assert trial["num_failures"] == 0 and lost not in nodes_of(trial)
            continue
        assert trial["num_failures"] == 1
        assert "node has died" in trial["error"]
        before = [row for row in rows if row["resumed_from"] == 0]
        after = [row for row in rows if row["resumed_from"] > 0]
        assert {row["node"] for row in before} == {lost}
        assert after and after[0]["resumed_from"] == before[-1]["step"]
        # The first attempt's reports all arrived; those after its last stored checkpoint
        # (checkpoints_to_keep=1 stores at most one a second: see Outbox) were rewound.
        assert trial["arrived"] - len(after) >= len(before), trial
        assert lost not in {row["node"] for row in after}  # placed again on a node that remains


@pytest.mark.slow
def test_node_loss_mid_sweep_retries_its_trials_on_the_nodes_that_remain(multinode):
    facts = scenario(multinode, "node_loss")
    assert facts["experiment_status"] == "COMPLETED"
    _assert_lost_node_trials_retried_elsewhere_with_nothing_lost(facts)


@pytest.mark.slow
def test_a_warm_worker_on_a_lost_node_costs_no_trial_an_attempt(multinode):
    facts = scenario(multinode, "warm_worker_on_a_lost_node")
    assert [(t["status"], t["num_failures"]) for t in facts["trials"]] == [("COMPLETED", 0)] * 3


@pytest.mark.slow
def test_node_loss_that_leaves_fewer_slots_than_max_concurrent_still_finishes(multinode):
    facts = scenario(multinode, "node_loss_shrinks_the_cluster")
    assert facts["max_concurrent"] == 2
    assert facts["experiment_status"] == "COMPLETED", facts["experiment_status"]
    _assert_lost_node_trials_retried_elsewhere_with_nothing_lost(facts)


# -- worker death on one node (the shared local Ray) -------------------------------------------
def dies_on_first_attempt(config):
    """Checkpoints each step; its first attempt SIGKILLs its own worker process once the
    checkpoint of step 2 is committed (the row naming it is in results.jsonl), so the retry
    must resume from it."""
    trial_dir = rt.get_context().trial_dir  # on the driver's node: the trial's storage folder
    first_attempt = not (trial_dir / "attempted").exists()
    (trial_dir / "attempted").touch()
    checkpoint = rt.get_checkpoint()
    start = int((checkpoint / "step").read_text()) if checkpoint is not None else 0
    scratch = Path(tempfile.mkdtemp())
    for step in range(start + 1, 5):
        (scratch / "step").write_text(str(step))
        rt.report({"loss": config["x"], "step": step, "resumed_from": start, "pid": os.getpid()}, checkpoint=scratch)
        if step == 2 and first_attempt:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    row.get("checkpoint") == "checkpoint_000002" for row in read_history(trial_dir / "results.jsonl").rows):
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGKILL)


class Starts(rt.Callback):
    def __init__(self):
        self.count = 0

    def on_trial_start(self, trial_id, config):
        self.count += 1


@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_worker_is_detected_and_the_trial_retried_from_its_checkpoint(storage):
    starts = Starts()
    t0 = time.monotonic()
    results = rt.Tuner(dies_on_first_attempt, space={"x": 0.5}, metric="loss", max_failures=1,
                       storage_path=storage, callbacks=[starts], verbose=0, tensorboard=False).fit()
    assert time.monotonic() - t0 < 60  # detected, not hung on
    (trial,) = results.trials
    assert trial.status == TrialStatus.COMPLETED and starts.count == 2
    assert "worker died" in results.errors[trial.trial_id]
    history = results.history(trial.trial_id)
    assert list(history.step) == STEPS and list(history.iteration) == STEPS  # nothing lost or repeated
    assert list(history.resumed_from) == [0, 0, 2, 2]  # the retry resumed from the step-2 checkpoint
    first_pid, retry_pid = history.pid.iloc[0], history.pid.iloc[-1]
    assert list(history.pid) == [first_pid] * 2 + [retry_pid] * 2 and first_pid != retry_pid


@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_worker_without_retries_fails_the_trial_with_the_death_recorded(storage):
    starts = Starts()
    from raytuner.errors import TrialsFailedError

    with pytest.raises(TrialsFailedError, match="worker died") as info:  # every trial failed
        rt.Tuner(dies_on_first_attempt, space={"x": rt.grid([0.1, 0.2])}, metric="loss", max_failures=0,
                 storage_path=storage, callbacks=[starts], verbose=0, tensorboard=False).fit()
    results = info.value.results
    assert [t.status for t in results.trials] == [TrialStatus.FAILED] * 2
    assert starts.count == 2  # no retries
    for trial in results.trials:
        error = rt.load(results.path).errors[trial.trial_id]
        assert "worker died" in error and "ActorDiedError" in error
        assert error.count("--- failure") == 1


def short(config):
    for _ in range(3):
        time.sleep(0.1)
        rt.report({"loss": config["x"]})


@pytest.mark.usefixtures("ray_cluster")
def test_max_concurrent_above_the_clusters_slots_still_finishes(storage):
    results = rt.Tuner(short, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=3, max_concurrent=3,
                       storage_path=storage, verbose=0, time_budget_s=30, tensorboard=False).fit()  # 2 CPUs: 2 slots
    assert results.meta["status"] == "COMPLETED"
    assert [t.status for t in results.trials] == [TrialStatus.COMPLETED] * 3


# -- a driver that dies with a trial in flight (found by benchmarks/load_test.py) --------------
def ten_steps(config):
    restored = rt.get_checkpoint()
    start = int((restored / "step").read_text()) if restored is not None else 0
    for step in range(start + 1, 11):
        checkpoint = None
        if step == 5:
            checkpoint = Path(tempfile.mkdtemp())
            (checkpoint / "step").write_text("5")
        rt.report({"loss": config["x"], "step": step}, checkpoint=checkpoint)


class SnapshotAtLaunch(rt.Callback):
    """Keeps trial.json and experiment.json as the controller wrote them at the launch."""

    def on_experiment_start(self, path, meta):
        self.path = Path(path)

    def on_trial_start(self, trial_id, config):
        self.files = {name: (self.path / name).read_text() for name in ("experiment.json", f"trials/{trial_id}/trial.json")}


@pytest.mark.usefixtures("ray_cluster")
def test_a_trial_in_flight_when_the_driver_died_resumes_from_its_stored_checkpoint(storage):
    snapshot = SnapshotAtLaunch()
    results = rt.Tuner(ten_steps, space={"x": 0.5}, metric="loss", storage_path=storage, name="inflight",
                       callbacks=[snapshot], verbose=0, keep_workers_s=0, tensorboard=False).fit()
    # The files as a driver killed after the trial's last report, before its end was
    # recorded, leaves them: reports and checkpoint_000005 stored, trial.json from the launch.
    for name, text in snapshot.files.items():
        (results.path / name).write_text(text)
    assert (results.path / "trials/00000/checkpoint_000005").is_dir()
    resumed = rt.Tuner.resume(results.path, trainable=ten_steps, verbose=0, tensorboard=False)
    (trial,) = resumed.trials
    assert trial.status == TrialStatus.COMPLETED
    rows = resumed.history(trial.trial_id)
    # One trajectory: the resumed attempt's steps 6-10 supersede the lost attempt's.
    assert list(zip(rows.step, rows.iteration, rows.attempt)) == [(i, i, 1 if i <= 5 else 2) for i in range(1, 11)]
    assert trial.iteration == 10


@pytest.mark.slow
def test_a_pbt_clone_restarts_on_another_node_from_its_donors_checkpoint(multinode):
    facts = scenario(multinode, "pbt_across_nodes")
    assert facts["statuses"] == ["COMPLETED"] and facts["steps"] == [8]
    assert facts["clones"], "no exploit happened"
    for clone in facts["clones"]:  # every clone got its donor's checkpoint, at the cloned report
        assert (clone["restored_trial"], clone["start"]) == (int(clone["donor"]), clone["iteration"])
    assert any(c["node"] != c["written_on"] for c in facts["clones"]), facts["clones"]
