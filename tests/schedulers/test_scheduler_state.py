"""state()/restore(): a run restored from a pickled state mid-way decides exactly the same."""

from __future__ import annotations

import pickle

import pytest

from raytuner.errors import ResourceError
from raytuner.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperbandScheduler,
    MedianStoppingScheduler,
)

MAKERS = {
    "fifo": lambda: FIFOScheduler(max_resource=20),
    "asha-stopping": lambda: ASHAScheduler(27, reduction_factor=3),
    "asha-promotion": lambda: ASHAScheduler(27, reduction_factor=3, variant="promotion"),
    "async-hyperband": lambda: ASHAScheduler(81, reduction_factor=3, brackets=3, variant="promotion"),
    "hyperband": lambda: HyperbandScheduler(27, reduction_factor=3),
    "median": lambda: MedianStoppingScheduler(grace_period=3),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("every", [7, 50])
def test_round_trip_mid_run_gives_identical_decisions(sim, curves, name, every):
    make = MAKERS[name]
    plain = sim(make, curves(1), 60, slots=3, length=30)
    restored = sim(make, curves(1), 60, slots=3, length=30, roundtrip_every=every)
    assert restored.log == plain.log
    assert {t: r.status for t, r in restored.trials.items()} == {
        t: r.status for t, r in plain.trials.items()
    }


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_state_is_plain_and_picklable(name):
    scheduler = MAKERS[name]()
    scheduler.on_trial_add("a")
    scheduler.on_result("a", 1, 0.5)
    state = scheduler.state()
    assert pickle.loads(pickle.dumps(state)) == state
    again = MAKERS[name]()
    again.restore(state)
    assert again.state() == state


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_after_on_trial_restore_the_resource_goes_on_from_the_last_one_fed(name):
    """``on_trial_restore``'s contract: the controller feeds a restored trial only resources
    above the last one it fed (a restart from an older checkpoint repeats reports, and it
    drops those), so these schedulers take the next one and refuse one that starts over,
    with a message that names the report count (resource_attr=None) and the fix for it."""
    scheduler = MAKERS[name]()
    scheduler.on_trial_add("a")
    scheduler.on_result("a", 1, 0.5)
    again = MAKERS[name]()
    again.restore(pickle.loads(pickle.dumps(scheduler.state())))
    again.on_trial_restore("a", {}, paused=False)
    again.on_result("a", 2, 0.4)
    with pytest.raises(ResourceError) as refused:
        again.on_result("a", 1, 0.5)
    owner = type(again).__name__
    assert str(refused.value) == (
        f"{owner}: trial 'a' reported resource 1 after 2 (resource_attr=None); the resource must increase with "
        "every report. With resource_attr=None the resource is the trial's report count (1, 2, 3, ...), which "
        "the Tuner counts itself; a caller driving the scheduler directly must pass each report once, in order."
    )
