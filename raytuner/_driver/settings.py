"""An experiment's settings as the driver runs it: what the Tuner (or a resume) was given,
checked, with the defaults filled in."""

from __future__ import annotations

from dataclasses import dataclass

from raytuner._driver.stop import StopCriteria


@dataclass
class ExperimentSettings:
    name: str
    metric: str | None
    mode: str
    num_trials: int
    max_concurrent: int | None  # None until the run starts: then what the cluster can hold
    resources: dict[str, float]
    stop: StopCriteria
    time_budget_s: float | None
    resource_attr: str | None
    max_failures: int
    fail_fast: bool
    checkpoints_to_keep: int | None
    gpu_memory_fraction: float | None
    verbose: int
    keep_workers_s: float = 30.0
    checkpoint_interval_s: float | None = None  # None: adapted to the stores' cost
