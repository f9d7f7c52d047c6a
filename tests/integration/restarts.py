"""Trials that restart from stored checkpoints in every way a trial restarts: a retry, a
resume after Ctrl-C, a promotion from a pause. The same runs serve every path a checkpoint
takes to storage: a folder the worker sees (test_tuner.py and the others cover it), a bucket
(test_cloud_storage.py) and the relay through the driver's node (multinode_scenarios.py).

Each run returns plain facts (JSON, for the multi-node script) for the tests to assert on:
per trial, its kept rows ``(step, start, attempt)``, where ``start`` is the step of the
checkpoint that ``rt.get_checkpoint()`` gave the attempt; ``in_storage``: the set of
whether its worker ran in the trial's folder in storage (a folder it sees) rather than a
scratch folder (a bucket, the relay); and its attempt markers
``(reason, checkpoint, start_iteration)``.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import raytuner as rt
from raytuner._storage import remote
from raytuner._storage.experiment import ExperimentStorage
from raytuner.schedulers import ASHAScheduler

from tests._helpers import InterruptAfter


def stepped(config):
    """``config["steps"]`` steps, a checkpoint at each; fails once, on its first attempt,
    right after reporting step ``config["fail_at"]``, and waits to be stopped (a Ctrl-C)
    after reporting step ``config["hold_at"]``, when given: reports do not wait for the
    driver, so without the wait the trial could end before the Ctrl-C reached it."""
    checkpoint = rt.get_checkpoint()
    start = int((checkpoint / "step").read_text()) if checkpoint is not None else 0
    failed = Path(config["marks"]) / f"{rt.get_context().experiment_name}-{rt.get_context().trial_id}"
    for step in range(start + 1, config["steps"] + 1):
        folder = Path(tempfile.mkdtemp())
        (folder / "step").write_text(str(step))
        rt.report({"loss": config["k"] + 1 / step, "step": step, "start": start,
                   "in_storage": int((rt.get_context().trial_dir / "config.json").is_file())}, checkpoint=folder)
        if step == config.get("fail_at") and not failed.exists():
            failed.touch()
            raise RuntimeError(f"failing once after step {step}")
        if step == config.get("hold_at"):
            threading.Event().wait(120)


def retry_then_resume(root: str, name: str, marks: str, **kwargs) -> dict:
    """One trial of 6 steps: it fails after step 2 (the retry restarts from checkpoint 2), is
    interrupted at its 4th report (step 4, where it waits) and resumed (from checkpoint 4)."""
    space = {"k": 0, "steps": 6, "fail_at": 2, "hold_at": 4, "marks": marks}
    first = rt.Tuner(stepped, space=space, metric="loss", num_trials=1, max_failures=1, storage_path=root,
                     name=name, callbacks=[InterruptAfter(4)], verbose=0, tensorboard=False, **kwargs).fit()
    results = rt.Tuner.resume(f"{root}/{name}", stepped, verbose=0, tensorboard=False)
    (trial,) = results.trials
    return {"first_status": first.meta["status"], "status": results.meta["status"],
            "trial": _facts(ExperimentStorage(results.path), trial), "final_step": _step(trial.checkpoint)}


def promotion(root: str, name: str, marks: str, **kwargs) -> dict:
    """Promotion ASHA on four configs one at a time: k=0 is best at every rung, so it pauses
    at rung 1 (alone there) and is promoted from its checkpoint once k=1 has reported."""
    space = {"k": rt.grid([0, 1, 2, 3]), "steps": 4, "marks": marks}
    results = rt.Tuner(stepped, space=space, metric="loss", max_concurrent=1, storage_path=root, name=name,
                       scheduler=ASHAScheduler(max_resource=4, reduction_factor=2, variant="promotion"),
                       verbose=0, tensorboard=False, **kwargs).fit()
    storage = ExperimentStorage(results.path)  # a URI: read from the bucket
    return {"status": results.meta["status"],
            "trials": {str(t.config["k"]): _facts(storage, t) for t in results.trials},
            "best_step": _step(results.best.checkpoint)}


def check_retry_then_resume(facts: dict, *, in_storage: int) -> None:
    """rt.get_checkpoint() gave each attempt the checkpoint its marker names."""
    assert (facts["first_status"], facts["status"]) == ("INTERRUPTED", "COMPLETED")
    trial = facts["trial"]
    assert trial["attempts"] == [["start", None, 0], ["retry", "checkpoint_000002", 2],
                                 ["resume", "checkpoint_000004", 4]]
    assert trial["rows"] == [[1, 0, 1], [2, 0, 1], [3, 2, 2], [4, 2, 2], [5, 4, 3], [6, 4, 3]]
    assert trial["in_storage"] == [in_storage]
    assert facts["final_step"] == 6


def check_promotion(facts: dict, *, in_storage: int) -> None:
    """k=0 was promoted from its checkpoints and went on from each with no gap."""
    assert facts["status"] == "COMPLETED"
    best = facts["trials"]["0"]
    assert [reason for reason, _, _ in best["attempts"]][:2] == ["start", "promotion"]
    for reason, checkpoint, start in best["attempts"][1:]:
        assert reason == "promotion" and checkpoint == f"checkpoint_{start:06d}"
    starts = {number: start for number, (_, _, start) in enumerate(best["attempts"], 1)}
    assert [step for step, _, _ in best["rows"]] == [1, 2, 3, 4]
    assert all(start == starts[attempt] for _, start, attempt in best["rows"])
    assert best["in_storage"] == [in_storage]
    assert facts["best_step"] == 4


def _facts(storage: ExperimentStorage, trial) -> dict:
    history = storage.read_history(trial.trial_id)
    return {"rows": [[row["step"], row["start"], row["attempt"]] for row in history.rows],
            "in_storage": sorted({row["in_storage"] for row in history.rows}),
            "attempts": [[m["reason"], m["checkpoint"], m["start_iteration"]] for m in history.attempts]}


def _step(checkpoint: Path | str | None) -> int | None:
    """The step a stored checkpoint holds; read from the bucket for a URI (cloud storage
    shows checkpoints by their URIs)."""
    if checkpoint is None:
        return None
    if remote.is_uri(checkpoint):
        fs, path = remote.filesystem(f"{checkpoint}/step")
        return int(fs.cat_file(path))
    return int((Path(checkpoint) / "step").read_text())
