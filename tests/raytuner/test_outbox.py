"""The worker's outbox (no Ray): reports reach the driver's queue in the order they were
made, each only once the checkpoint it names is stored; training is not held up meanwhile;
a checkpoint that cannot be stored stops the reports from it on and fails the trial; with
``keep`` (the Tuner's checkpoints_to_keep), a staged checkpoint overtaken by that many newer
ones before its storing starts is dropped, and its report goes out without it, and at most
one store starts per STORE_INTERVAL_S, except for a report that awaits a decision, the
trial's last report and its end (the throttle's time is the test's: :class:`ManualClock`)."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raytuner._worker import outbox as outbox_module
from raytuner._worker.checkpoints import Staged
from raytuner._worker.outbox import Outbox
from raytuner._worker.protocol import Report


def report(iteration, checkpoint=None, awaits_decision=False):
    return Report(iteration, iteration, {"loss": 1.0}, 0.0, 0.0, checkpoint, awaits_decision)


class Store:
    """Stores staged checkpoints when the test lets it; records what it stored."""

    def __init__(self, fail_on=None):
        self.gate: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.stored: list[str] = []
        self.discarded: list[str] = []
        self.fail_on = fail_on
        self.done = threading.Condition()

    def hold(self, name):
        self.gate[name] = threading.Event()
        self.started[name] = threading.Event()

    def __call__(self, staged):
        if staged.name in self.gate:
            self.started[staged.name].set()
            assert self.gate[staged.name].wait(10)
        if staged.name == self.fail_on:
            raise OSError(28, "No space left on device")
        with self.done:
            self.stored.append(staged.name)
            self.done.notify_all()

    def wait_stored(self, names):
        """Wait until exactly ``names`` are stored; False if that never happens."""
        with self.done:
            return self.done.wait_for(lambda: self.stored == names, 10)

    def discard(self, staged):
        self.discarded.append(staged.name)


def drain_events(events):
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def staged(name):
    return Staged(Path("/nowhere") / name, name)


def name(iteration):
    return f"checkpoint_{iteration:06d}"


def storing_first(store, box):
    """Send report 1 with a checkpoint and return once the outbox's thread is storing it
    (held until the test lets it go): from then on it can no longer be dropped."""
    store.hold(name(1))
    box.send(report(1, name(1)), staged(name(1)))
    assert store.started[name(1)].wait(10)


def send_with(box, iteration):
    box.send(report(iteration, name(iteration)), staged(name(iteration)))


def test_a_report_without_checkpoint_goes_out_at_once_and_in_order_behind_one_being_stored():
    events, store = queue.SimpleQueue(), Store()
    box = Outbox(events, store, store.discard)
    box.send(report(1))
    assert [r.iteration for r in drain_events(events)] == [1]  # nothing ahead: straight through

    store.hold("checkpoint_000002")
    box.send(report(2, "checkpoint_000002"), staged("checkpoint_000002"))  # returns: training goes on
    box.send(report(3))
    assert drain_events(events) == []  # neither the report naming it nor the one behind it is out yet
    store.gate["checkpoint_000002"].set()
    box.drain()
    sent = drain_events(events)
    assert [r.iteration for r in sent] == [2, 3] and store.stored == ["checkpoint_000002"]


def test_staged_checkpoints_are_bounded():
    events, store = queue.SimpleQueue(), Store()
    box = Outbox(events, store, store.discard)
    names = [f"checkpoint_00000{i}" for i in range(1, outbox_module.MAX_STAGED + 2)]
    for name in names:
        store.hold(name)
    for i, name in enumerate(names[:-1], start=1):
        box.send(report(i, name), staged(name))
    blocked = threading.Thread(target=box.send, args=(report(len(names), names[-1]), staged(names[-1])))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # one more staged checkpoint waits for room
    store.gate[names[0]].set()
    blocked.join(10)
    assert not blocked.is_alive()
    for name in names[1:]:
        store.gate[name].set()
    box.drain()
    assert [r.iteration for r in drain_events(events)] == list(range(1, len(names) + 1))


def test_a_checkpoint_that_cannot_be_stored_stops_the_reports_from_it_on_and_fails_the_trial():
    events, store = queue.SimpleQueue(), Store(fail_on="checkpoint_000002")
    box = Outbox(events, store, store.discard)
    store.hold("checkpoint_000002")
    box.send(report(1, "checkpoint_000001"), staged("checkpoint_000001"))
    box.send(report(2, "checkpoint_000002"), staged("checkpoint_000002"))
    box.send(report(3, "checkpoint_000003"), staged("checkpoint_000003"))
    store.gate["checkpoint_000002"].set()
    with pytest.raises(OSError, match="No space left"):
        box.drain()
    assert [r.iteration for r in drain_events(events)] == [1]  # no row may name a missing checkpoint
    assert store.discarded == ["checkpoint_000003"]  # its staged copy goes
    with pytest.raises(OSError, match="No space left"):  # the training thread's next report raises it
        box.send(report(4, "checkpoint_000004"), staged("checkpoint_000004"))
    assert store.discarded == ["checkpoint_000003", "checkpoint_000004"] and drain_events(events) == []


def test_a_staged_checkpoint_overtaken_by_a_newer_one_is_dropped_and_its_report_goes_out_without_it():
    events, store = queue.SimpleQueue(), Store()
    box = Outbox(events, store, store.discard, keep=1)
    storing_first(store, box)
    send_with(box, 2)
    assert store.discarded == []  # nothing newer yet
    box.send(report(3))
    send_with(box, 4)  # overtakes 2: report 2 will name no checkpoint
    assert store.discarded == [name(2)]
    send_with(box, 5)  # and 4; neither send waited for the disk, which is still held
    assert store.discarded == [name(2), name(4)] and drain_events(events) == []
    store.gate[name(1)].set()
    box.drain()
    sent = drain_events(events)
    assert [r.iteration for r in sent] == [1, 2, 3, 4, 5]  # every report, in order
    assert [r.checkpoint for r in sent] == [name(1), None, None, None, name(5)]
    assert store.stored == [name(1), name(5)]  # the one being stored, and the newest


def test_keep_none_never_drops():
    events, store = queue.SimpleQueue(), Store()
    box = Outbox(events, store, store.discard, keep=None)
    storing_first(store, box)
    # Beyond MAX_STAGED a send waits for the disk, so the rest are sent from another thread.
    sender = threading.Thread(target=lambda: [send_with(box, i) for i in range(2, 6)])
    sender.start()
    store.gate[name(1)].set()
    sender.join(10)
    assert not sender.is_alive()
    box.drain()
    sent = drain_events(events)
    assert [r.checkpoint for r in sent] == [name(i) for i in range(1, 6)]
    assert store.stored == [name(i) for i in range(1, 6)] and store.discarded == []


def test_keep_two_drops_a_checkpoint_only_once_two_newer_ones_are_staged_behind_it():
    events, store = queue.SimpleQueue(), Store()
    box = Outbox(events, store, store.discard, keep=2)
    storing_first(store, box)
    send_with(box, 2)
    send_with(box, 3)
    assert store.discarded == []  # 2 is overtaken by one only
    send_with(box, 4)
    assert store.discarded == [name(2)]
    send_with(box, 5)
    assert store.discarded == [name(2), name(3)]
    store.gate[name(1)].set()
    box.drain()
    sent = drain_events(events)
    assert [r.checkpoint for r in sent] == [name(1), None, None, name(4), name(5)]
    assert store.stored == [name(1), name(4), name(5)]


def test_a_checkpoint_that_cannot_be_stored_still_fails_the_trial_when_others_are_dropped():
    events, store = queue.SimpleQueue(), Store(fail_on=name(1))
    box = Outbox(events, store, store.discard, keep=1)
    storing_first(store, box)
    send_with(box, 2)
    send_with(box, 3)  # drops 2
    store.gate[name(1)].set()
    with pytest.raises(OSError, match="No space left"):
        box.drain()
    assert drain_events(events) == []  # nothing after the failed one goes out
    assert store.discarded == [name(2), name(3)]  # each staged copy removed once
    with pytest.raises(OSError, match="No space left"):
        send_with(box, 4)
    assert store.discarded == [name(2), name(3), name(4)] and store.stored == []


class ManualClock:
    """The throttle's time in a test: it moves only when the test says so. A throttled
    outbox thread waits on its condition without a wall-clock timeout, woken by
    :meth:`advance`, a send or a drain."""

    def __init__(self):
        self.now_s = 0.0
        self.cond = None
        self.parked = threading.Event()  # the outbox's thread has waited for the throttle

    def now(self):
        return self.now_s

    def wait(self, cond, timeout):
        assert timeout > 0
        self.cond = cond
        self.parked.set()
        cond.wait()

    def advance(self, seconds):
        if self.cond is None:  # no thread has waited: none reads the time meanwhile
            self.now_s += seconds
            return
        with self.cond:  # the thread reads the time under it, so it cannot miss the move
            self.now_s += seconds
            self.cond.notify_all()


INTERVAL = outbox_module.STORE_INTERVAL_S
STEP = INTERVAL / 4


def throttled(keep=1):
    events, store, clock = queue.SimpleQueue(), Store(), ManualClock()
    return events, store, clock, Outbox(events, store, store.discard, keep=keep, clock=clock)


def test_throttle_stores_at_once_when_idle_and_the_last_store_started_an_interval_ago():
    events, store, clock, box = throttled()
    send_with(box, 1)
    assert store.wait_stored([name(1)])  # none stored yet: at once
    clock.advance(INTERVAL)
    send_with(box, 2)
    assert store.wait_stored([name(1), name(2)])  # the clock did not move: it did not wait
    assert not clock.parked.is_set()
    box.drain()
    assert [r.checkpoint for r in drain_events(events)] == [name(1), name(2)]


def test_throttle_frequent_checkpoints_store_the_newest_once_per_interval():
    events, store, clock, box = throttled()
    send_with(box, 1)
    assert store.wait_stored([name(1)])
    iteration, expected = 1, [name(1)]
    for interval in range(1, 4):  # a checkpoint every quarter interval; none is starved
        for _ in range(3):
            clock.advance(STEP)
            iteration += 1
            send_with(box, iteration)
            assert clock.parked.wait(10)
            assert store.stored == expected  # it waits for the interval (the clock is the test's)
        box.send(report(iteration + 1))  # behind the waiting checkpoint, in order
        iteration += 1
        clock.advance(STEP)  # the interval since the last store started is up
        expected.append(name(iteration - 1))
        assert store.wait_stored(expected)  # the newest; the older ones of the interval dropped
    box.drain()
    sent = drain_events(events)
    assert [r.iteration for r in sent] == list(range(1, iteration + 1))
    assert [r.checkpoint for r in sent if r.checkpoint] == expected == [name(1), name(4), name(8), name(12)]
    assert store.discarded == [name(i) for i in (2, 3, 6, 7, 10, 11)]


@pytest.mark.parametrize("keep, stored", [(1, [1, 3]), (2, [1, 2, 3])])
@pytest.mark.parametrize("urgent", ["awaits a decision", "final"])
def test_throttle_a_report_that_awaits_a_decision_or_ends_the_trial_is_stored_at_once(keep, stored, urgent):
    events, store, clock, box = throttled(keep)
    send_with(box, 1)
    assert store.wait_stored([name(1)])
    clock.advance(STEP)
    send_with(box, 2)
    assert clock.parked.wait(10)
    last = report(3, name(3), awaits_decision=urgent == "awaits a decision")
    box.send(last, staged(name(3)), final=urgent == "final")
    # The clock stays put: everything up to that report is stored (and sent) at once.
    assert store.wait_stored([name(i) for i in stored])
    sent = []
    while len(sent) < 3:
        sent.append(events.get(timeout=10))
    assert [r.checkpoint for r in sent] == [name(i) if i in stored else None for i in (1, 2, 3)]


def test_throttle_the_trials_end_stores_the_newest_pending_checkpoint_at_once():
    events, store, clock, box = throttled()
    send_with(box, 1)
    assert store.wait_stored([name(1)])
    clock.advance(STEP)
    send_with(box, 2)
    send_with(box, 3)  # overtakes 2
    assert clock.parked.wait(10)
    box.drain()  # the clock stays put
    assert store.stored == [name(1), name(3)] and store.discarded == [name(2)]
    assert [r.checkpoint for r in drain_events(events)] == [name(1), None, name(3)]


def test_throttle_keep_none_never_waits():
    events, store, clock = queue.SimpleQueue(), Store(), ManualClock()
    box = Outbox(events, store, store.discard, keep=None, clock=clock)
    for i in range(1, 4):
        send_with(box, i)
    assert store.wait_stored([name(1), name(2), name(3)])  # back to back, the clock never moved
    assert not clock.parked.is_set()
    box.drain()
    assert [r.checkpoint for r in drain_events(events)] == [name(1), name(2), name(3)]


def test_a_checkpoint_due_at_once_is_not_overtaken_before_the_thread_gets_to_it():
    # The race seen in CI: the trainable stages checkpoint 2 before the outbox's thread has
    # picked up checkpoint 1, which nothing was ahead of. Holding the outbox's lock (it is
    # reentrant) keeps the thread out until both are sent, every time.
    events, store, clock, box = throttled()
    with box._cond:
        send_with(box, 1)
        send_with(box, 2)
    assert store.discarded == []  # 1 is the thread's next store: 2 waits its turn behind it
    assert store.wait_stored([name(1)])
    send_with(box, 3)  # within the interval: 2, not being stored, is overtaken
    assert store.discarded == [name(2)]
    box.drain()
    assert store.stored == [name(1), name(3)]
    assert [r.checkpoint for r in drain_events(events)] == [name(1), None, name(3)]


class TimedStore(Store):
    """A store that takes ``seconds`` of the test's clock (the outbox's thread moves it)."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def __call__(self, staged):
        self.clock.now_s += self.seconds  # no thread waits on the clock meanwhile: the test waits for the store
        super().__call__(staged)


@pytest.mark.parametrize("fixed, duration, expected", [
    (None, 0.1, outbox_module.STORE_INTERVAL_S),  # d / s = 0.5 s: the floor
    (None, 0.5, 2.5),  # d / s
    (None, 20.0, outbox_module.STORE_INTERVAL_MAX_S),  # d / s = 100 s: the ceiling
    (5.0, 1.0, 5.0),  # the Tuner's checkpoint_interval_s, whatever the store costs
    (5.0, 0.0, 5.0),
])
def test_the_next_store_starts_the_interval_after_the_last_one_started(fixed, duration, expected):
    """T = min(T_max, max(T_min, d / s)) from the last store's start, or the fixed interval."""
    events, clock = queue.SimpleQueue(), ManualClock()
    store = TimedStore(clock, duration)
    box = Outbox(events, store, store.discard, keep=1, interval=fixed, clock=clock)
    send_with(box, 1)  # started at 0, done at `duration`
    assert store.wait_stored([name(1)])
    send_with(box, 2)
    assert clock.parked.wait(10)
    clock.parked.clear()
    clock.advance(expected - duration - STEP)  # a quarter second before it is due
    assert clock.parked.wait(10)  # looked at the time again, and waits on
    assert store.stored == [name(1)]
    clock.advance(STEP + 1e-9)
    assert store.wait_stored([name(1), name(2)])
    box.drain()
    assert [r.checkpoint for r in drain_events(events)] == [name(1), name(2)]


def test_interval_zero_never_waits():
    events, store, clock = queue.SimpleQueue(), Store(), ManualClock()
    box = Outbox(events, store, store.discard, keep=1, interval=0.0, clock=clock)
    for i in range(1, 4):
        send_with(box, i)
        assert store.wait_stored([name(j) for j in range(1, i + 1)])  # the clock never moves
    assert not clock.parked.is_set()
    box.drain()
    assert [r.checkpoint for r in drain_events(events)] == [name(1), name(2), name(3)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keep=st.sampled_from([None, 1, 2]), interval=st.sampled_from([None, 0.0, 0.5, 3.0]), final=st.booleans(),
       steps=st.lists(st.tuples(st.sampled_from(["plain", "checkpoint", "checkpoint", "decision"]),
                                st.sampled_from([0.0, 0.0, 0.3, 1.2])), min_size=1, max_size=20))
def test_whatever_the_pace_each_report_goes_out_once_in_order_naming_only_stored_checkpoints(keep, interval, final,
                                                                                               steps):
    """Random trials (reports with and without checkpoints, some awaiting a decision, the
    clock moved between them): every report reaches the driver once and in order; the
    checkpoints they name are exactly the ones stored, each stored once; every other
    staged copy is discarded once; the newest checkpoint and any a decision waits on are
    never dropped, nor one with fewer than ``keep`` newer ones behind it; without ``keep``
    nothing is."""
    events, store, clock = queue.SimpleQueue(), Store(), ManualClock()
    box = Outbox(events, store, store.discard, keep=keep, interval=interval, clock=clock)
    staged_names, must_store, sent = [], set(), []
    for i, (kind, advance) in enumerate(steps, 1):
        last = final and i == len(steps)
        if kind == "plain":
            box.send(report(i), final=last)
        else:
            box.send(report(i, name(i), awaits_decision=kind == "decision"), staged(name(i)), final=last)
            staged_names.append(name(i))
            if kind == "decision" or last:
                must_store.add(name(i))
        if kind == "decision":  # the training loop waits for the decision, so for this report to go out
            while not sent or sent[-1].iteration < i:
                sent.append(events.get(timeout=10))
        clock.advance(advance)
    box.drain()
    sent += drain_events(events)
    assert [r.iteration for r in sent] == list(range(1, len(steps) + 1))
    named = [r.checkpoint for r in sent if r.checkpoint is not None]
    assert named == store.stored and len(set(named)) == len(named)
    assert sorted(store.stored + store.discarded) == sorted(staged_names)
    assert must_store <= set(store.stored)
    if staged_names:
        assert staged_names[-1] in store.stored
    for dropped in store.discarded:  # only once `keep` newer ones were staged
        assert keep is not None and len(staged_names) - 1 - staged_names.index(dropped) >= keep
