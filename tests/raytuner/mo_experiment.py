"""A multi-objective experiment written straight into the storage layout (no Ray), and the
brute-force Pareto front its views must agree with (test_results_mo.py, test_cli_mo.py,
test_report_mo.py, the dashboard tests)."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Sequence

from raytuner._objectives import Objectives
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner.schedulers import ASHAScheduler

EVIL_METRIC = "<b>size</b>&"


def write_mo_experiment(root: Path, name: str = "mo", n: int = 16, *, metrics: Sequence[str] = ("loss", "score"),
                        modes: Sequence[str] = ("min", "max"), scope: str | None = None, seed: int = 2,
                        failed: Sequence[int] = (), nan: Sequence[int] = ()) -> Path:
    """``n`` trials of 1 to 4 reports each; trials in ``failed`` end FAILED, those in ``nan``
    report NaN for the first metric at their last report."""
    storage = ExperimentStorage(root / name)
    storage.create()
    scheduler = ASHAScheduler(max_resource=4)
    now = time.time()
    meta: dict[str, Any] = {
        "name": name, "metric": list(metrics), "mode": list(modes), "searcher": "TPESearcher",
        "scheduler": repr(scheduler), "scheduler_config": scheduler.config(), "milestones": scheduler.milestones(),
        "status": "COMPLETED", "created": "2024-01-01T00:00:00", "start_time": now - 100, "end_time": now,
        "space": {"a": {"type": "uniform", "low": 0, "high": 1}, "b": {"type": "uniform", "low": 0, "high": 1}},
    }
    if scope is not None:
        meta["best_scope"] = scope
    storage.write_experiment(meta)
    objectives = Objectives.of(list(metrics), list(modes))
    rng = random.Random(seed)
    for i in range(n):
        trial_id = f"{i:05d}"
        config = {"a": rng.random(), "b": rng.random()}
        storage.write_config(trial_id, config)
        trial = Trial(trial_id, config)
        rows = []
        steps = 1 + i % 4
        for it in range(1, steps + 1):
            values = [rng.uniform(0, 10) for _ in metrics]
            if i in nan and it == steps:
                values[0] = math.nan
            reported = dict(zip(metrics, values))
            rows.append({**reported, "iteration": it, "time_total_s": it * 0.1, "timestamp": now - 90 + i * 5 + it})
            trial.observe(it, it, reported, objectives.signed(reported), it * 0.1)
        storage.append_results(trial_id, rows)
        trial.status = TrialStatus.FAILED if i in failed else TrialStatus.COMPLETED if steps == 4 else TrialStatus.STOPPED
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def brute_front(points: dict[Any, Sequence[float]]) -> set[Any]:
    """The keys of the points no other point dominates (all signed to minimise)."""
    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return {key for key, p in points.items() if not any(dominates(q, p) for other, q in points.items() if other != key)}


def final_points(path: Path, statuses: Sequence[str] = ("COMPLETED", "STOPPED")) -> dict[str, tuple[float, ...]]:
    """Each trial's signed last values (finite ones only), by trial id, read from trial.json."""
    storage = ExperimentStorage(path)
    meta = storage.read_experiment()
    objectives = Objectives.of(meta["metric"], meta["mode"])
    out = {}
    for trial_id in storage.trial_ids():
        record, _, _ = storage.read_trial(trial_id)
        value = objectives.signed(record["metrics"])
        if record["status"] in statuses and value is not None and all(math.isfinite(v) for v in value):
            out[trial_id] = value
    return out
