"""Lineage on disk: a PBT run's files, written by the lifecycle's commands into a real
experiment folder (no Ray), read back as histories with the config in effect, schedules
that follow the donors, a replay's schedule, and a resume that restores the clones."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from raytuner._driver import events as ev
from raytuner._formats import checkpoint_name
from raytuner._driver.lifecycle import Lifecycle
from raytuner._driver.resume import _restore_trials
from raytuner._driver.tidy import tidy
from raytuner._objectives import Objectives
from raytuner._results import load
from raytuner._storage.experiment import ExperimentStorage
from raytuner._worker.protocol import Signal, TrialExit
from raytuner.schedulers import PBTReplay

from tests.raytuner.lifecycle_fakes import ListSearcher, make, report, reported
from tests.raytuner.test_exploits import ScriptedExploits


def stored(disk: Disk, trial_id: str, iteration: int, text: str) -> bool:
    """Store a checkpoint as the trial's worker does, before the report naming it."""
    folder = disk.storage.trial_path(trial_id) / checkpoint_name(iteration)
    folder.mkdir(parents=True)
    (folder / "model.txt").write_text(text)
    return True


class Disk:
    """Carries out the lifecycle's storage commands on a real folder, as the driver does."""

    def __init__(self, path: Path):
        self.storage = ExperimentStorage(path, writable=True)
        self.storage.create()
        self.storage.write_experiment({"name": path.name, "metric": "loss", "mode": "min", "resource_attr": None,
                                       "status": "COMPLETED", "scheduler_config": {"type": "PBTScheduler"}})

    def __call__(self, commands):
        s = self.storage
        for c in commands:
            if isinstance(c, ev.WriteConfig):
                s.write_config(c.trial_id, c.config)
            elif isinstance(c, ev.WriteTrial):
                s.write_trial(c.trial_id, c.record)
            elif isinstance(c, ev.AppendResults):
                s.append_results(c.trial_id, c.rows)
            elif isinstance(c, ev.CopyCheckpoint):
                s.clone_checkpoint(c.source_trial, c.source, c.trial_id, c.folder)
            elif isinstance(c, ev.DeleteCheckpoints):
                s.delete_checkpoints(c.trial_id, c.folders)
        return commands


def run_pbt_story(path: Path) -> tuple[Lifecycle, Disk]:
    """Three trials. 00002 clones 00000 at 2 (k: 2 -> 20); 00000 then clones 00001 at 1
    (rewinding below the report 00002 cloned); 00002 clones itself at 4 (k -> 30)."""
    disk = Disk(path)
    scheduler = ScriptedExploits({("00002", 2): ("00000", {"k": 20}), ("00000", 3): ("00001", {"k": 10}),
                                  ("00002", 4): ("00002", {"k": 30})})
    life = make(scheduler=scheduler, searcher=ListSearcher(n=3), num_trials=3, max_concurrent=3)
    disk(life.handle(ev.Fill(idle=("w0", "w1", "w2"), pool_size=3)))
    disk(life.handle(reported("00001", report(1, 0.1, awaits=False, checkpoint=stored(disk, "00001", 1, "B1")))))
    disk(life.handle(reported("00000", report(1, 0.5, awaits=False), report(2, 0.4, awaits=False,
                                                                             checkpoint=stored(disk, "00000", 2, "A2")))))
    disk(life.handle(reported("00002", report(1, 0.9, awaits=False), report(2, 0.9, checkpoint=stored(disk, "00002", 2, "C2")))))
    disk(life.handle(reported("00002", exit=TrialExit(Signal.PAUSE))))
    disk(life.handle(ev.Fill(idle=("w2",), pool_size=3)))
    disk(life.handle(reported("00000", report(3, 0.3, checkpoint=stored(disk, "00000", 3, "A3")))))
    disk(life.handle(reported("00000", exit=TrialExit(Signal.PAUSE))))
    disk(life.handle(ev.Fill(idle=("w0",), pool_size=3)))
    disk(life.handle(reported("00000", report(2, 0.05, awaits=False))))
    disk(life.handle(reported("00002", report(3, 0.2, awaits=False), report(4, 0.2, checkpoint=stored(disk, "00002", 4, "C4")))))
    disk(life.handle(reported("00002", exit=TrialExit(Signal.PAUSE))))
    disk(life.handle(ev.Fill(idle=("w2",), pool_size=3)))
    disk(life.handle(reported("00002", report(5, 0.1, awaits=False))))
    return life, disk


def test_the_copy_outlives_the_donors_own_checkpoint_and_is_listed_with_the_clones(tmp_path):
    life, disk = run_pbt_story(tmp_path / "exp")
    storage = disk.storage
    # 00000 rewound below 2 after 00002 cloned it there: its own checkpoint_000002 is gone,
    # the clone's copy is not.
    assert not (storage.trial_path("00000") / "checkpoint_000002").exists()
    assert (storage.trial_path("00002") / "clone_2" / "checkpoint_000002" / "model.txt").read_text() == "A2"
    assert storage.checkpoint_folders("00002") == ["checkpoint_000002", "checkpoint_000004", "clone_2/checkpoint_000002"]
    storage.delete_checkpoints("00002", ["clone_2/checkpoint_000002"])
    assert not (storage.trial_path("00002") / "clone_2").exists()


def test_a_copy_is_hard_linked_where_the_file_system_allows(tmp_path):
    disk = Disk(tmp_path / "exp")
    disk.storage.write_config("00000", {})  # makes the trial folder, as the driver does first
    stored(disk, "00000", 3, "weights")
    disk.storage.clone_checkpoint("00000", "checkpoint_000003", "00001", "clone_4/checkpoint_000003")
    copy = disk.storage.trial_path("00001") / "clone_4" / "checkpoint_000003" / "model.txt"
    assert os.path.samefile(copy, disk.storage.trial_path("00000") / "checkpoint_000003" / "model.txt")
    assert not [p for p in copy.parent.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_copy_of_a_checkpoint_deleted_by_hand_is_not_made_and_nothing_is_raised(tmp_path):
    disk = Disk(tmp_path / "exp")
    disk.storage.write_config("00000", {})
    stored(disk, "00000", 3, "weights")
    assert disk.storage.has_checkpoint("00000", "checkpoint_000003")
    shutil.rmtree(disk.storage.trial_path("00000") / "checkpoint_000003")
    assert not disk.storage.has_checkpoint("00000", "checkpoint_000003")
    assert disk.storage.clone_checkpoint("00000", "checkpoint_000003", "00001", "clone_4/checkpoint_000003") is False
    assert not disk.storage.has_checkpoint("00001", "clone_4/checkpoint_000003")
    assert not (disk.storage.trial_path("00001") / "clone_4").exists()  # no empty clone folder either


def test_history_rows_carry_the_config_in_effect_and_what_they_cloned(tmp_path):
    run_pbt_story(tmp_path / "exp")
    results = load(tmp_path / "exp")
    history = results.history("00002")
    assert list(history["iteration"]) == [1, 2, 3, 4, 5]
    assert list(history["config/k"]) == [2, 2, 20, 20, 30]
    assert list(history["cloned_from"].fillna("-")) == ["-", "-", "00000", "00000", "00002"]
    assert list(history["cloned_iteration"].fillna(-1)) == [-1, -1, 2, 2, 4]
    assert results["00002"].config == {"k": 30}  # trial.json holds the config in effect


def test_a_damaged_config_json_leaves_the_history_readable_with_the_configs_its_markers_set(tmp_path):
    run_pbt_story(tmp_path / "exp")
    (tmp_path / "exp" / "trials" / "00002" / "config.json").write_text("{not json")
    history = load(tmp_path / "exp").history("00002")
    assert list(history["iteration"]) == [1, 2, 3, 4, 5]
    assert list(history["config/k"].fillna(-1)) == [-1, -1, 20, 20, 30]  # the first config is unknown


def test_the_schedule_follows_the_model_back_through_its_donors(tmp_path):
    run_pbt_story(tmp_path / "exp")
    results = load(tmp_path / "exp")
    # 00002's model: 00000's first two reports (k = 0), then k = 20 from 2, k = 30 from 4.
    schedule = results.schedule("00002")
    assert schedule.to_dict("records") == [
        {"resource": 0.0, "iteration": 0, "trial_id": "00000", "config/k": 0},
        {"resource": 2.0, "iteration": 2, "trial_id": "00002", "config/k": 20},
        {"resource": 4.0, "iteration": 4, "trial_id": "00002", "config/k": 30},
    ]
    # 00000 later rewound below the report 00002 cloned: its own schedule is 00001's, then k = 10.
    assert [(r["trial_id"], r["config/k"]) for r in results.schedule("00000").to_dict("records")] == [
        ("00001", 1), ("00000", 10)]
    assert PBTReplay(tmp_path / "exp", "00002").schedule == [[0.0, {"k": 0}], [2.0, {"k": 20}], [4.0, {"k": 30}]]
    # The Results of the experiment stand for its folder (they once raised a bare TypeError).
    replay = PBTReplay(load(tmp_path / "exp"), "00002")
    assert replay.schedule == PBTReplay(tmp_path / "exp", "00002").schedule
    assert replay.experiment_path == str(tmp_path / "exp")


def test_a_resume_restores_a_clones_config_copy_and_fed_resource(tmp_path):
    life, disk = run_pbt_story(tmp_path / "exp")
    trials = _restore_trials(disk.storage, Objectives.of("loss", "min"))
    clone = trials["00000"]
    assert (clone.config, clone.exploits, clone.checkpoint, clone.checkpoint_iteration) == (
        {"k": 10}, 1, "clone_2/checkpoint_000001", 1)
    assert clone.fed_resource == 2 and clone.iteration == 2
    again = trials["00002"]  # cloned itself at 4: restarts from its own checkpoint there, k = 30
    assert (again.config, again.checkpoint, again.exploits) == ({"k": 30}, "checkpoint_000004", 2)


def test_a_resume_removes_a_copy_no_marker_names_unless_an_exploit_is_still_pending(tmp_path):
    life, disk = run_pbt_story(tmp_path / "exp")
    storage = disk.storage
    # Copies made for exploits that a crash kept from launching: one still pending in the
    # saved state, one not.
    storage.clone_checkpoint("00002", "checkpoint_000004", "00001", "clone_2/checkpoint_000004")
    storage.clone_checkpoint("00002", "checkpoint_000004", "00001", "clone_3/checkpoint_000004")
    trials = _restore_trials(storage, Objectives.of("loss", "min"))
    tidy(storage, trials, {"00001": {"folder": "clone_3/checkpoint_000004"}})
    assert storage.checkpoint_folders("00001") == ["checkpoint_000001", "clone_3/checkpoint_000004"]


def test_an_unknown_trial_to_replay_is_named(tmp_path):
    run_pbt_story(tmp_path / "exp")
    with pytest.raises(Exception, match="no trial '00009'"):
        PBTReplay(tmp_path / "exp", "00009")


def test_the_report_and_the_dashboard_draw_the_population_with_an_edge_per_exploit(tmp_path):
    pytest.importorskip("plotly")
    import json

    from raytuner.dashboard._figures import build
    from tests.raytuner.test_report import figure_specs

    run_pbt_story(tmp_path / "exp")
    html = load(tmp_path / "exp").report().read_text()
    spec = figure_specs(html)["population"]
    curves = [t for t in spec["data"] if t["name"].startswith("trial ")]
    assert [t["name"] for t in curves] == ["trial 00000", "trial 00001", "trial 00002"]
    (edges,) = [t for t in spec["data"] if t["name"] == "exploit"]
    # 00002 cloned 00000 at 2 and itself at 4; 00000 cloned 00001 at 1: from each donor's
    # report to the clone's first one after it (None separates the segments).
    assert edges["x"] == [1, 2, None, 2, 3, None, 4, 5, None]
    assert edges["y"] == [0.1, 0.05, None, 0.4, 0.2, None, 0.2, 0.1, None]
    assert "trial 00002 cloned trial 00000 at report 2" in edges["hovertext"]
    figures = json.loads(build(str(tmp_path), "exp"))["figures"]
    assert "population" in [f["key"] for f in figures]
