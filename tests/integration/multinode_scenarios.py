"""Multi-node scenarios for test_multinode.py, run in a process of their own.

``python multinode_scenarios.py STORAGE_DIR`` starts a Ray cluster of several nodes on
this machine (``ray.cluster_utils.Cluster``: a head and worker nodes, each its own raylet),
runs the scenarios below on it one after another (adding and killing worker nodes) and
prints one line ``RESULT {json}`` of facts, one entry per scenario, for the tests to
assert on. A separate process keeps this cluster apart from the local Ray that the other
integration tests share in the pytest process; one cluster for all scenarios keeps the
start-up cost (several seconds on 2 cores) to one.

Node ids are reported as numbers (their first 12 hex digits) because reports hold numbers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

import raytuner as rt
from raytuner._storage.history import read_history
from raytuner._storage.trial_files import UNSHARED_ENV, partial_folders

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*
from tests.integration import restarts  # noqa: E402 - needs the line above

# Lose a node fast: by default the GCS marks a silent raylet dead after about 15 s.
FAST_FAILURE = {"health_check_period_ms": 200, "health_check_failure_threshold": 3,
                "health_check_initial_delay_ms": 0}


def node_number(node_id: str) -> int:
    return int(node_id[:12], 16)


def where(config):
    """Reports where it runs; checkpoints each report so a retry continues from it. With a
    ``gate`` (a folder), a first attempt on a node other than ``head`` holds after its first
    report until the file ``gate/open`` exists, so that a scenario kills that node while
    the trial runs instead of racing it."""
    start = 0
    checkpoint = rt.get_checkpoint()
    if checkpoint is not None:
        start = int((checkpoint / "step").read_text())
    scratch = Path(tempfile.mkdtemp())
    for step in range(start + 1, config["reports"] + 1):
        time.sleep(config["sleep"])
        (scratch / "step").write_text(str(step))
        node = node_number(ray.get_runtime_context().get_node_id())
        print(f"step {step} on node {node}", file=sys.stderr if step % 2 else sys.stdout)
        rt.report({
            "loss": config["x"],
            "step": step,
            "resumed_from": start,
            "node": node_number(ray.get_runtime_context().get_node_id()),
            # The card Ray gave; -1: none (CUDA_VISIBLE_DEVICES empty); -2: unset, so every card.
            "gpu_visible": int(os.environ.get("CUDA_VISIBLE_DEVICES") or -1) if "CUDA_VISIBLE_DEVICES" in os.environ
            else -2,
        }, checkpoint=scratch)
        if config.get("gate") and step == 1 and start == 0 and node != config["head"]:
            deadline = time.monotonic() + 120
            while not (Path(config["gate"]) / "open").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{config['gate']}/open did not appear")
                time.sleep(0.02)


def fails_once(config):
    """Checkpoints a blob of several relay chunks at each of 3 steps and fails once, right
    after reporting step 2, so its retry restarts from the stored checkpoint of step 2.
    Reports whether its worker sees the experiment's storage (its trial_dir is the trial's
    folder there, config.json and all, rather than a scratch folder)."""
    context = rt.get_context()
    checkpoint = rt.get_checkpoint()
    start = int((checkpoint / "step").read_text()) if checkpoint is not None else 0
    blob_ok = checkpoint is None or (checkpoint / "blob").read_bytes() == _blob(start)
    failed_once = Path(config["marks"]) / f"{context.experiment_name}-{context.trial_id}"  # one /tmp for all nodes
    scratch = Path(tempfile.mkdtemp())
    for step in range(start + 1, 4):
        (scratch / "step").write_text(str(step))
        (scratch / "blob").write_bytes(_blob(step))
        rt.report({"loss": config["x"], "step": step, "resumed_from": start, "blob_ok": int(blob_ok),
                   "node": node_number(ray.get_runtime_context().get_node_id()),
                   "sees_storage": int((context.trial_dir / "config.json").is_file())}, checkpoint=scratch)
        if step == 2 and not failed_once.exists():
            failed_once.touch()
            raise RuntimeError("failing once after step 2")


def _blob(step: int) -> bytes:
    return bytes([step]) * (9 * 1024 * 1024 + step)  # three relay chunks of 4 MiB


def pbt_member(config):
    """A PBT member: checkpoints each step with the node and the trial that wrote it, and
    reports where the checkpoint it restarted from was written."""
    acc, start, writer, written_on = 0.0, 0, -1, -1
    checkpoint = rt.get_checkpoint()
    if checkpoint is not None:
        acc, start, writer, written_on = json.loads((checkpoint / "state.json").read_text())
    me = int(rt.get_context().trial_id)
    for step in range(start + 1, 9):
        time.sleep(0.1)
        acc += min(config["lr"], 0.1) / max(config["lr"], 0.1)
        node = node_number(ray.get_runtime_context().get_node_id())
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "state.json").write_text(json.dumps([acc, step, me, node]))
            rt.report({"acc": acc, "step": step, "start": start, "node": node, "restored_trial": writer,
                       "restored_node": written_on}, checkpoint=folder)


class Arrivals(rt.Callback):
    """Counts the reports the controller received, per trial, and shows each to ``watch``."""

    def __init__(self, watch=None):
        self.count: dict[str, int] = {}
        self._watch = watch

    def on_trial_result(self, trial_id, result):
        self.count[trial_id] = self.count.get(trial_id, 0) + 1
        if self._watch is not None:
            self._watch(trial_id, result)


class Sweeps:
    def __init__(self, storage: str):
        # Three 1-CPU nodes: the head (where the driver runs), one declaring a GPU, one plain.
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "_system_config": FAST_FAILURE})
        self.gpu_node = self.cluster.add_node(num_cpus=1, num_gpus=1)
        self.cluster.add_node(num_cpus=1)
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, logging_level="ERROR", log_to_driver=False)
        self.head = node_number(ray.get_runtime_context().get_node_id())
        self.storage = storage

    def tune(self, name: str, *, reports: int, sleep: float, gate: str | None = None, **kwargs):
        kwargs.setdefault("keep_workers_s", 0)
        kwargs.setdefault("tensorboard", False)
        space = {"x": rt.uniform(0, 1), "reports": reports, "sleep": sleep}
        if gate is not None:
            space.update(gate=gate, head=self.head)
        return rt.Tuner(where, space=space, metric="loss", storage_path=self.storage, name=name,
                        verbose=0, **kwargs).fit()

    def kill(self, node) -> None:
        """SIGKILL every process of the node, as when a machine vanishes; wait until Ray knows."""
        self.cluster.remove_node(node, allow_graceful=False)
        deadline = time.time() + 20
        while any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()) and time.time() < deadline:
            time.sleep(0.1)

    def worker_nodes(self):
        return {node_number(n.node_id): n for n in self.cluster.worker_nodes}

    # -- scenarios ------------------------------------------------------------------------
    def spread_and_gpu(self) -> dict:
        """1-GPU trials land on the node that declares a GPU; 1-CPU trials use every node.
        The CPU sweep leaves its workers warm (one per node) for the next scenario."""
        gpu = self.tune("gpu", reports=2, sleep=0.0, num_trials=3, resources={"cpu": 1, "gpu": 1})
        # Trials go to workers as they come up, so each trial outlasts a worker's start-up
        # (about 1 s here) for the sweep to reach every node.
        cpu = self.tune("spread", reports=3, sleep=0.6, num_trials=6, keep_workers_s=60)
        return {"nodes": [self.head, *self.worker_nodes()], "gpu_node": node_number(self.gpu_node.node_id),
                "cpu_max_concurrent": cpu.meta["max_concurrent"], "cpu": trial_facts(cpu), "gpu": trial_facts(gpu)}

    def pbt_across_nodes(self) -> dict:
        """PBT over the three nodes: clones restart from donors' checkpoints written on
        whichever node the donor ran (the clone's worker reads its copy from storage)."""
        scheduler = rt.PBTScheduler(perturbation_interval=2, mutations={"lr": rt.loguniform(1e-3, 1.0)},
                                    max_resource=8, seed=2)
        results = rt.Tuner(pbt_member, space={"lr": rt.loguniform(1e-3, 1.0)}, metric="acc", mode="max",
                           num_trials=6, max_concurrent=3, scheduler=scheduler, storage_path=self.storage,
                           name="pbt", verbose=0, keep_workers_s=0, tensorboard=False, seed=1).fit()
        clones = []
        for trial in results.trials:
            history = read_history(trial.path / "results.jsonl")
            for marker in history.attempts:
                if marker["reason"] != "exploit":
                    continue
                made = [r for r in history.rows + history.superseded if r["attempt"] == marker["attempt"]]
                first = min(made, key=lambda r: r["iteration"])
                clones.append({"trial": trial.trial_id, "donor": marker["cloned_from"]["trial_id"],
                               "iteration": marker["cloned_from"]["iteration"], "restored_trial": first["restored_trial"],
                               "start": first["start"], "node": first["node"], "written_on": first["restored_node"]})
        return {"statuses": sorted({t.status.value for t in results.trials}),
                "steps": sorted({t.iteration for t in results.trials}), "clones": clones}

    def warm_worker_on_a_lost_node(self) -> dict:
        """The previous sweep left a worker warm on every node; a node dies and a new one
        joins (as when a spot node is replaced). The next sweep (max_failures=0) reuses the
        warm workers: the dead one must not cost a trial its only attempt."""
        lost = next(number for number in self.worker_nodes() if number != node_number(self.gpu_node.node_id))
        self.kill(self.worker_nodes()[lost])
        self.cluster.add_node(num_cpus=1)
        self.cluster.wait_for_nodes()
        after = self.tune("warm", reports=2, sleep=0.0, num_trials=3, max_concurrent=3, max_failures=0)
        return {"lost": lost, "trials": trial_facts(after)}

    def node_loss(self) -> dict:
        """A worker node dies under a running trial; the nodes left can hold max_concurrent."""
        return self._lose_node_mid_sweep("loss", max_concurrent=2)

    def node_loss_shrinks_the_cluster(self) -> dict:
        """The same with the default max_concurrent (every slot at the start): after the loss
        the cluster holds fewer trials than the Tuner runs at once."""
        return self._lose_node_mid_sweep("shrink", max_concurrent=None, time_budget_s=30)

    def _lose_node_mid_sweep(self, name: str, *, max_concurrent, **kwargs) -> dict:
        nodes = self.worker_nodes()
        lost: list[int] = []
        gate = Path(tempfile.mkdtemp())

        def kill_first_worker_node_to_report(trial_id, result):
            # Trials on worker nodes hold after their first report (``where``): the kill lands
            # mid-run. Then the trials held on the node that remains go on.
            if not lost and result["node"] in nodes:
                lost.append(result["node"])
                self.kill(nodes[result["node"]])
                (gate / "open").touch()

        arrivals = Arrivals(kill_first_worker_node_to_report)
        t0 = time.time()
        results = self.tune(name, reports=4, sleep=0.25, gate=str(gate), num_trials=4, max_concurrent=max_concurrent,
                            max_failures=2, callbacks=[arrivals], **kwargs)
        return {"lost": lost[0] if lost else None, "seconds": time.time() - t0,
                "experiment_status": results.meta["status"], "max_concurrent": results.meta["max_concurrent"],
                "trials": trial_facts(results, arrivals)}

    def checkpoints_on_other_nodes(self) -> dict:
        """A trial on a worker node that sees the storage (the GPU node: this machine's
        folders) puts its checkpoints there itself; one on a node told the storage is not
        shared relays them through the driver's node. Each fails once and restarts on its
        node from its stored checkpoint: read back directly, or through the relay. On the
        node that relays, trials also restart from relayed checkpoints after a Ctrl-C (a
        resume) and a pause (a promotion)."""
        unshared = self.cluster.add_node(num_cpus=1, resources={"unshared": 1}, env_vars={UNSHARED_ENV: "1"})
        self.cluster.wait_for_nodes()
        marks = tempfile.mkdtemp()
        facts = {"unshared_node": node_number(unshared.node_id), "gpu_node": node_number(self.gpu_node.node_id)}
        try:
            for kind, resources in (("shared", {"cpu": 1, "gpu": 1}), ("unshared", {"cpu": 1, "unshared": 1})):
                results = rt.Tuner(fails_once, space={"x": 0.5, "marks": marks}, metric="loss", name=f"ck-{kind}",
                                   storage_path=self.storage, resources=resources, max_failures=1, verbose=0,
                                   keep_workers_s=0, tensorboard=False).fit()
                (trial,) = results.trials
                stored = trial.path / "checkpoint_000003"
                facts[kind] = {
                    "status": trial.status.value,
                    "rows": [{k: row[k] for k in ("step", "resumed_from", "node", "sees_storage", "blob_ok", "attempt")}
                             for row in read_history(trial.path / "results.jsonl").rows],
                    "checkpoint": trial.checkpoint is not None and trial.checkpoint == stored,
                    "stored_step": (stored / "step").read_text() if stored.is_dir() else None,
                    "stored_blob_ok": stored.is_dir() and (stored / "blob").read_bytes() == _blob(3),
                    "folders": sorted(p.name for p in trial.path.iterdir() if p.name.startswith(("checkpoint", "."))),
                    "partial": [p.name for p in partial_folders(trial.path)],
                }
            relayed = {"resources": {"cpu": 1, "unshared": 1}, "keep_workers_s": 0}
            facts["relay_restarts"] = restarts.retry_then_resume(self.storage, "relay-restarts", marks, **relayed)
            facts["relay_promotion"] = restarts.promotion(self.storage, "relay-promotion", marks, **relayed)
        finally:
            self.cluster.remove_node(unshared)
        return facts

    def close(self) -> None:
        ray.shutdown()
        self.cluster.shutdown()


def trial_facts(results, arrivals: Arrivals | None = None) -> list[dict]:
    facts = []
    for trial in results.trials:
        rows = read_history(trial.path / "results.jsonl").rows
        facts.append({
            "trial_id": trial.trial_id,
            "status": trial.status.value,
            "num_failures": json.loads((trial.path / "trial.json").read_text())["num_failures"],
            "error": results.errors.get(trial.trial_id),
            "rows": [{k: row[k] for k in ("step", "resumed_from", "node", "gpu_visible")} for row in rows],
            "arrived": None if arrivals is None else arrivals.count.get(trial.trial_id, 0),
            "log": (trial.path / "log.txt").read_text() if (trial.path / "log.txt").is_file() else "",
        })
    return facts


SCENARIOS = ("spread_and_gpu", "checkpoints_on_other_nodes", "pbt_across_nodes", "warm_worker_on_a_lost_node",
             "node_loss", "node_loss_shrinks_the_cluster")

if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    sweeps = Sweeps(sys.argv[1])
    facts: dict = {"head": sweeps.head}
    for scenario in sys.argv[2:] or SCENARIOS:
        t0 = time.time()
        try:
            facts[scenario] = getattr(sweeps, scenario)()
        except Exception:  # noqa: BLE001 - reported to the test, which names the scenario
            facts[scenario] = {"crashed": traceback.format_exc()}
        print(f"{scenario}: {time.time() - t0:.1f} s", file=sys.stderr)
    sweeps.close()
    print("RESULT " + json.dumps(facts))
