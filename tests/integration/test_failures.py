"""Failed trials speak: the first of each distinct error live, a summary at the end, and an
error raised to the caller when every trial failed (issue 15, part 1)."""

from __future__ import annotations

import json

import pytest

import raytuner as rt
from raytuner.errors import TrialsFailedError

pytestmark = pytest.mark.usefixtures("ray_cluster")


def broken(config):
    return config["missing"]  # the user's bug: a key that is not in the space


def half_broken(config):
    if config["x"] > 0.5:
        raise ValueError(f"x={config['x']} is too large for this model")
    rt.report({"loss": config["x"]})


def test_every_trial_failing_is_shown_once_summed_up_and_raised(storage, capsys):
    tuner = rt.Tuner(broken, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=4, storage_path=storage,
                     name="broken", tensorboard=False, seed=0)
    with pytest.raises(TrialsFailedError) as info:
        tuner.fit()
    out = capsys.readouterr().out
    # Live: the first failure of this error, with the user's own frame, once.
    live = [line for line in out.splitlines() if "failed: KeyError: 'missing'" in line and "trial 0000" in line]
    assert len(live) == 1, out
    assert 'test_failures.py:17 in broken: return config["missing"]' in out
    # At the end: a summary that says where the tracebacks are.
    assert "[raytuner] 4 of 4 trials failed:" in out
    assert "KeyError: 'missing'  (4 trials: 00000, 00001, 00002, 00003)" in out
    assert str(storage / "broken" / "trials") in out and "error.txt" in out
    assert f"What a trial printed: {storage / 'broken' / 'trials' / '00000' / 'log.txt'}, or Results.log('00000')." in out
    # Raised to the caller, after everything was saved; the experiment ended FAILED.
    message = str(info.value)
    assert "All 4 trials of 'broken' failed, the first with KeyError: 'missing'" in message
    assert info.value.results.meta["status"] == "FAILED"
    assert json.loads((storage / "broken" / "experiment.json").read_text())["status"] == "FAILED"
    assert rt.load(storage / "broken").meta["status"] == "FAILED"
    assert all("KeyError: 'missing'" in error for error in info.value.results.errors.values())
    with pytest.raises(rt.ExperimentError, match="every trial failed"):
        info.value.results.best


def test_some_trials_failing_return_results_with_a_summary_one_block_per_raising_line(storage, capsys):
    xs = [0.25, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    results = rt.Tuner(half_broken, space={"x": rt.grid(xs)}, metric="loss", storage_path=storage, name="half",
                       tensorboard=False).fit()
    out = capsys.readouterr().out
    assert results.meta["status"] == "COMPLETED"
    assert results.best.config["x"] == 0.25
    assert "[raytuner] 7 of 8 trials failed:" in out
    # Seven messages, one raising line: one problem, told once live and once at the end, with its count.
    assert sum("failed: ValueError: x=0." in line for line in out.splitlines()) == 1, out
    (summary,) = [line for line in out.splitlines() if line.startswith("[raytuner]   ValueError: x=0.")]
    assert summary.endswith("is too large for this model (and 6 other messages)  "
                            "(7 trials: 00001, 00002, 00003, 00004, 00005 and 2 more)"), summary
    assert out.count("in half_broken: raise ValueError") == 2


class BrokenSearcher(rt.RandomSearcher):
    """The searcher's own bug, on its third suggestion."""

    def suggest(self, trial_id):
        if trial_id == "00002":
            raise ZeroDivisionError("the searcher's bug")
        return super().suggest(trial_id)


def test_what_ended_a_failed_run_is_recorded_and_shown(storage, capsys):
    tuner = rt.Tuner(half_broken, space={"x": rt.uniform(0, 0.5)}, metric="loss", num_trials=4, max_concurrent=1,
                     searcher=BrokenSearcher(seed=0), storage_path=storage, name="searcher-bug", tensorboard=False)
    with pytest.raises(ZeroDivisionError):
        tuner.fit()
    meta = json.loads((storage / "searcher-bug" / "experiment.json").read_text())
    assert meta["status"] == "FAILED" and meta["error"].startswith("Traceback")
    assert meta["error"].rstrip().endswith("ZeroDivisionError: the searcher's bug")
    from raytuner import cli  # here: the line numbers above are what the first test checks

    capsys.readouterr()
    assert cli.main(["show", "searcher-bug", "--root", str(storage)]) == 0
    assert "the run failed: ZeroDivisionError: the searcher's bug" in capsys.readouterr().out


class SearcherBrokenAtAnEnd(rt.RandomSearcher):
    """The searcher's own bug, as it hears of the second trial's end."""

    def on_trial_complete(self, trial_id, outcome):
        if trial_id == "00001":
            raise ZeroDivisionError("the searcher's bug at an end")
        super().on_trial_complete(trial_id, outcome)


def three_reports(config):
    for step in range(1, 4):
        rt.report({"loss": config["x"] / step})


def test_a_searcher_that_fails_as_a_trial_ends_loses_nothing_the_trial_reported(storage):
    """Its error ends the run FAILED, and the trial's reports and status are on disk (the
    event's records were dropped with the error, so the trial stayed RUNNING with no rows)."""
    tuner = rt.Tuner(three_reports, space={"x": rt.uniform(0, 1)}, metric="loss", num_trials=3, max_concurrent=1,
                     searcher=SearcherBrokenAtAnEnd(seed=0), storage_path=storage, name="bug-at-end",
                     tensorboard=False)
    with pytest.raises(ZeroDivisionError):
        tuner.fit()
    results = rt.load(storage / "bug-at-end")
    assert results.meta["status"] == "FAILED"
    trial = {t.trial_id: t for t in results.trials}["00001"]
    assert (trial.status, trial.iteration) == (rt.TrialStatus.COMPLETED, 3)
    assert list(results.history("00001").loss) == pytest.approx([trial.config["x"] / step for step in (1, 2, 3)])


class WorkerOfAnotherVersion:
    """A trial worker that fails as it is built, as one of another raytuner version on the
    nodes does (its class lacks what this driver's pickle names)."""

    def __init__(self, *args):
        raise AttributeError("Can't get attribute 'TrialWorker.hurry' on <module 'raytuner._worker.actor'>")

    def node_id(self):
        return "never"


def test_workers_that_fail_as_they_are_built_end_the_run_with_the_cause_not_a_wait_for_ever(storage, monkeypatch):
    import ray

    from raytuner._driver import pool
    from raytuner._worker.actor import WIND_UP

    monkeypatch.setattr(pool, "_remote_cls", ray.remote(concurrency_groups={WIND_UP: 1})(WorkerOfAnotherVersion))
    tuner = rt.Tuner(half_broken, space={"x": rt.uniform(0, 0.5)}, metric="loss", num_trials=2,
                     resources={"cpu": 0.5},  # a pool of its own shape: built from the class above
                     storage_path=storage, name="versions", tensorboard=False, verbose=0)
    with pytest.raises(rt.RayTunerError, match=r"(?s)3 trial workers in a row failed as they were built.* another "
                                               r"version of raytuner than this driver.*TrialWorker.hurry"):
        tuner.fit()
    meta = json.loads((storage / "versions" / "experiment.json").read_text())
    assert meta["status"] == "FAILED" and "another version of raytuner" in meta["error"]
