"""An experiment's run time over all its runs, and its time budget (raytuner._driver.run_clock,
raytuner._formats.run_time), on clocks the test moves."""

from __future__ import annotations

import math

import pytest

from raytuner._driver.run_clock import RUN_TIME_EVERY_S, RunClock
from raytuner._formats import run_time


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_new_experiment_has_its_whole_budget_from_its_start():
    clock = Clock()
    run = RunClock({}, clock=clock, wall=lambda: 5e8)
    assert run.deadline(60) == 1060 and run.deadline(None) == math.inf
    clock.now += 12.5
    assert run.record() == {"run_time_s": 12.5, "run_time_at": 5e8}


def test_a_resume_has_what_its_earlier_runs_left_of_the_budget():
    # The last run recorded 50 s, then the experiment sat for a day: the day does not count.
    clock = Clock(now=90_000.0)
    run = RunClock({"run_time_s": 50.0, "run_time_at": 1e6, "start_time": 1e6 - 50, "end_time": 1e6},
                   clock=clock, wall=lambda: 1e6 + 86_400)
    run.start()
    assert run.deadline(60) == 90_010.0  # 10 s left
    clock.now += 4
    assert run.elapsed() == 54 and run.record()["run_time_s"] == 54


def test_a_budget_the_earlier_runs_used_up_is_already_past():
    clock = Clock()
    run = RunClock({"run_time_s": 75.0}, clock=clock)
    assert run.deadline(60) < clock.now
    # A budget raised by a command mid-run moves the deadline the same way.
    assert run.deadline(100) == clock.now + 25


@pytest.mark.parametrize("recorded", [-30.0, math.nan, math.inf, "50", True, None])
def test_a_damaged_or_hostile_run_time_gives_no_extra_budget(recorded):
    clock = Clock()
    run = RunClock({"run_time_s": recorded}, clock=clock)
    assert run.before == 0.0 and run.deadline(60) == clock.now + 60


def test_the_run_time_is_due_for_writing_every_few_seconds():
    clock = Clock()
    run = RunClock({}, clock=clock)
    assert not run.due()
    clock.now += RUN_TIME_EVERY_S - 0.01
    assert not run.due()
    clock.now += 0.01
    assert run.due() and not run.due()  # a yes counts as written
    clock.now += RUN_TIME_EVERY_S
    assert run.due()


def test_readers_take_the_recorded_run_time_and_count_on_while_a_driver_runs_it():
    meta = {"run_time_s": 40.0, "run_time_at": 2000.0, "start_time": 0.0, "end_time": 1500.0}
    assert run_time(meta) == 40.0  # not the 1,500 s from the first start to the last end
    assert run_time(meta, live=True, now=2003.0) == 43.0
    assert run_time(meta, live=True, now=1990.0) == 40.0  # a clock behind the driver's never counts back


def test_readers_of_an_experiment_written_before_the_run_time_was_kept_take_its_span():
    assert run_time({"start_time": 100.0, "end_time": 160.0}) == 60.0
    assert run_time({"start_time": 100.0}, live=True, now=130.0) == 30.0
    assert run_time({"start_time": 100.0}) is None  # it never ended, and no driver runs it
    assert run_time({}) is None and run_time({"start_time": "yesterday"}) is None
    assert run_time({"run_time_s": -5.0}) == 0.0
