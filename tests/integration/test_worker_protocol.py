"""A real trial worker keeps the run's part of a trial spec from its first trial of the run
(the driver sends it once per worker), and says so plainly if it never got it."""

from __future__ import annotations

import pytest

import raytuner as rt
from raytuner._driver.stop import StopCriteria
from raytuner._storage.trial_files import ExperimentLocation
from raytuner._worker.actor import TrialWorker
from raytuner._worker.protocol import Event, Signal, TrialSpec, spec_to_wire

pytestmark = pytest.mark.usefixtures("ray_cluster")


def two_reports(config):
    for i in range(2):
        rt.report({"loss": config["x"] + i})


def test_a_worker_runs_later_trials_on_the_settings_of_its_first(tmp_path):
    import ray

    trainable = ray.put(two_reports)
    where = ExperimentLocation(str(tmp_path), "run-1", ray.get_runtime_context().get_node_id())
    stop = StopCriteria(None, "loss", "min")

    def spec(trial_id: str, x: float) -> TrialSpec:
        (tmp_path / "trials" / trial_id).mkdir(parents=True)
        return TrialSpec(trial_id=trial_id, experiment_name="exp", config={"x": x}, trainable=[trainable],
                         metric="loss", resource_attr=None, stop=stop, decide_at=float("inf"),
                         storage_dir=str(tmp_path / "trials" / trial_id), storage=where)

    worker = ray.remote(num_cpus=0)(TrialWorker).remote()
    try:
        with pytest.raises(ray.exceptions.RayTaskError, match="got no experiment settings"):
            ray.get(worker.start.remote(*spec_to_wire(spec("00000", 0.0), shared=False)))
        first = Event.from_wire(ray.get(worker.start.remote(*spec_to_wire(spec("00001", 1.0), shared=True))))
        second = Event.from_wire(ray.get(worker.start.remote(*spec_to_wire(spec("00002", 5.0), shared=False))))
    finally:
        ray.kill(worker)
    for event, x in ((first, 1.0), (second, 5.0)):
        assert event.exit is not None and event.exit.signal is Signal.COMPLETED
        assert [(r.iteration, r.metrics) for r in event.reports] == [(1, {"loss": x}), (2, {"loss": x + 1})]
