"""The driver-worker protocol on the wire: plain values (packed by msgpack, never pickled
object by object), and the run's part of a spec sent once per worker."""

from __future__ import annotations

import math

import msgpack
import pytest

from raytuner._driver.stop import StopCriteria
from raytuner._storage.trial_files import CheckpointRef, ExperimentLocation
from raytuner._worker.protocol import Event, Report, Signal, TrialExit, TrialSpec, spec_from_wire, spec_to_wire

STOP = StopCriteria(None, "loss", "min")


def _spec(**changes) -> TrialSpec:
    fields = dict(trial_id="00007", experiment_name="exp", config={"lr": 0.1, "layers": [2, 3]}, trainable=["ref"],
                  metric=["loss", "acc"], resource_attr="epoch", stop=STOP, decide_at=3.0,
                  storage_dir="/tmp/exp/trials/00007", storage=ExperimentLocation("/tmp/exp", "r1", "n1"),
                  resources={"cpu": 1.0, "gpu": 0.5}, start_iteration=4, start_time_s=2.5,
                  restore=CheckpointRef("00007", "checkpoint_000004"), checkpoints_to_keep=2,
                  checkpoint_interval_s=5.0)
    fields.update(changes)
    return TrialSpec(**fields)


def test_a_spec_comes_back_whole_from_its_two_parts():
    spec = _spec()
    own, shared = spec_to_wire(spec, shared=True)
    assert spec_from_wire(own, shared) == spec
    # Later trials of the run: the worker puts the part it kept from the first one back.
    other = _spec(trial_id="00008", config={"lr": 0.2}, decide_at=math.inf, restore=None, start_iteration=0)
    own, none = spec_to_wire(other, shared=False)
    assert none is None and spec_from_wire(own, shared) == other


def test_the_trials_own_part_is_plain_values_that_msgpack_packs():
    own, _ = spec_to_wire(_spec(restore=None), shared=False)
    assert msgpack.unpackb(msgpack.packb(own), strict_map_key=False) == [
        "00007", {"lr": 0.1, "layers": [2, 3]}, 3.0, "/tmp/exp/trials/00007", 4, 2.5, None]


@pytest.mark.parametrize("event", [
    Event([]),
    Event([Report(1, 1.0, {"loss": 0.5}, 0.1, 1.7e9), Report(2, 2.0, {"loss": 0.4, "acc": 0.9}, 0.2, 1.7e9 + 1,
                                                                "checkpoint_000002", True)], None, "epoch 2\n"),
    Event([Report(3, 3.0, {"loss": 0.3}, 0.3, 1.7e9)], TrialExit(Signal.COMPLETED), ""),
    Event([], TrialExit(Signal.ERROR, "Traceback ...", "ValueError", "bad lr", fatal=True), "boom\n"),
    Event([], TrialExit(Signal.PAUSE)),
    Event([], None, "Trial 00001: advice\n", [("Trial %s: advice", "Trial 00001: advice")]),
])
def test_an_event_survives_the_wire_as_msgpack_carries_it(event):
    wire = event.to_wire()
    # msgpack turns tuples into lists: what the driver gets from Ray.
    assert Event.from_wire(msgpack.unpackb(msgpack.packb(wire))) == event
