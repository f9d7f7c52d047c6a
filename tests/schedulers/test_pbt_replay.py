"""PBTReplay: the recorded config changes, applied to one trial at their resources."""

from __future__ import annotations

import json
import math

import pytest

from raytuner.errors import ConfigError
from raytuner.schedulers import Decision, Exploit, PBTReplay, from_config
from raytuner.search import RandomSearcher, TPESearcher

SCHEDULE = [[0, {"lr": 0.1}], [4, {"lr": 0.05}], [8, {"lr": 0.02}]]


def test_each_change_pauses_the_trial_and_relaunches_it_from_its_own_checkpoint_with_the_next_config():
    replay = PBTReplay(schedule=SCHEDULE)
    replay.on_trial_add("00000")
    assert replay.decision_point("00000", 0) == 4
    assert [replay.on_result("00000", r, 1.0) for r in (1, 2, 3)] == [Decision.CONTINUE] * 3
    assert replay.on_result("00000", 4, 1.0) is Decision.PAUSE
    assert replay.exploits() == [Exploit("00000", "00000", {"lr": 0.05})]
    assert replay.choose_trial_to_resume() == "00000" and replay.choose_trial_to_resume() is None
    assert replay.decision_point("00000", 4) == 8
    # A report past a change (a trainable that reports every 3 epochs) applies it there.
    assert replay.on_result("00000", 9, 1.0) is Decision.PAUSE
    assert replay.exploits() == [Exploit("00000", "00000", {"lr": 0.02})]
    replay.choose_trial_to_resume()
    assert replay.decision_point("00000", 9) == math.inf
    assert replay.on_result("00000", 10, 1.0) is Decision.CONTINUE


def test_config_round_trip_keeps_the_schedule():
    replay = PBTReplay(schedule=SCHEDULE, resource_attr="epoch")
    stored = json.loads(json.dumps(replay.config()))
    assert from_config(stored).config() == stored and from_config(stored).schedule == SCHEDULE
    assert replay.milestones()["levels"] == [4, 8] and replay.space == {"lr": 0.1}


def test_bad_schedules_and_setups_are_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="`schedule`"):
        PBTReplay(schedule=[[1, {"lr": 0.1}]])  # must start at 0
    with pytest.raises(ConfigError, match="`schedule`"):
        PBTReplay(schedule=[[0, {}], [4, {}], [4, {}]])
    with pytest.raises(ConfigError, match="`experiment_path`"):
        PBTReplay()
    with pytest.raises(ConfigError, match=r"`experiment_path` is 3, but must be the PBT experiment's folder"):
        PBTReplay(3, "00000")
    # Each argument is named for itself, before any file is read (the folder need not exist).
    with pytest.raises(ConfigError) as error:
        PBTReplay("/no/such/experiment", 0)
    assert str(error.value) == (
        "PBTReplay: `trial_id` is 0, but must be a trial id string such as '00000'. "
        "Pass PBTReplay(results.path, results.best.trial_id), or schedule=[[0, config], ...].")
    with pytest.raises(ConfigError, match="`trial_id` is None"):
        PBTReplay("/no/such/experiment")
    replay = PBTReplay(schedule=SCHEDULE)
    with pytest.raises(ConfigError, match="`num_trials` is 4, but must be 1"):
        replay.check_experiment(replay.space, RandomSearcher(), 4)
    with pytest.raises(ConfigError, match="starts from the recorded first config"):
        replay.check_experiment({"lr": 0.3}, RandomSearcher(), 1)
    with pytest.raises(ConfigError, match="RandomSearcher or GridSearcher"):
        replay.check_experiment(replay.space, TPESearcher(), 1)
    replay.check_experiment(replay.space, RandomSearcher(), 1)
