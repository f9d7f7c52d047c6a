import math

import pytest

from raytuner._results import Results, TrialResult, load
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner.errors import ExperimentError


def _trial(tid, config, values, status=TrialStatus.COMPLETED, sign=1.0):
    trial = Trial(tid, config, status=status)
    for i, value in enumerate(values, 1):
        trial.observe(i, i, {"loss": value, "acc": -value}, sign * value, 0.1 * i)
    return trial


def _results(tmp_path, trials, mode="min"):
    return Results(tmp_path, [TrialResult.from_trial(t, tmp_path / t.trial_id) for t in trials], "loss", mode)


def test_best_uses_the_last_value_and_skips_nan_and_inf(tmp_path):
    trials = [
        _trial("00000", {"x": 0}, [0.5, 0.4]),
        _trial("00001", {"x": 1}, [0.1, math.nan]),
        _trial("00002", {"x": 2}, [0.9, -math.inf]),
        _trial("00003", {"x": 3}, [0.3, 0.35]),
    ]
    results = _results(tmp_path, trials)
    assert results.best.trial_id == "00003"
    assert results.get_best(scope="all").trial_id == "00001"  # its 0.1 before the NaN
    assert results.get_best(metric="acc", mode="max").trial_id == "00003"


def test_best_scope_all_uses_each_trials_best_report(tmp_path):
    trials = [_trial("00000", {}, [0.2, 0.9]), _trial("00001", {}, [0.3, 0.3])]
    results = _results(tmp_path, trials)
    assert results.best.trial_id == "00001"
    assert results.get_best(scope="all").trial_id == "00000"


def test_no_finite_value_is_a_clear_error(tmp_path):
    results = _results(tmp_path, [_trial("00000", {}, [math.nan])])
    with pytest.raises(ExperimentError, match="reported a finite 'loss'"):
        results.best


def test_dataframe_has_one_row_per_trial_with_config_columns(tmp_path):
    trials = [
        _trial("00000", {"lr": 0.1, "model": {"units": 32}}, [0.5, 0.4]),
        _trial("00001", {"lr": 0.01, "model": {"units": 64}}, [0.2], status=TrialStatus.STOPPED),
    ]
    df = _results(tmp_path, trials).dataframe()
    assert list(df["trial_id"]) == ["00000", "00001"]
    assert list(df["status"]) == ["COMPLETED", "STOPPED"]
    assert list(df["config/model/units"]) == [32, 64]
    assert list(df["loss"]) == [0.4, 0.2]
    assert list(df["best_loss"]) == [0.4, 0.2]
    assert list(df["iteration"]) == [2, 1]


def test_load_reads_what_storage_holds(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_experiment({"name": "exp", "metric": "loss", "mode": "max"})
    trial = _trial("00000", {"lr": 0.1}, [0.5, 0.7], sign=-1.0)
    storage.write_config("00000", trial.config)
    storage.write_trial("00000", trial.to_record())
    storage.append_results("00000", [{"loss": 0.5, "iteration": 1}, {"loss": 0.7, "iteration": 2}])
    before = {p: p.stat().st_mtime_ns for p in storage.path.rglob("*")}
    results = load(storage.path)
    assert {p: p.stat().st_mtime_ns for p in storage.path.rglob("*")} == before  # read-only
    assert results.mode == "max"
    assert results.best.metrics == {"loss": 0.7, "acc": -0.7}
    assert list(results.history("00000")["loss"]) == [0.5, 0.7]
    with pytest.raises(KeyError, match="No trial"):
        results.history("99999")


def test_no_best_before_any_report_says_the_trials_have_not_reported_yet(tmp_path):
    trials = [_trial("00000", {}, [], status=TrialStatus.RUNNING), _trial("00001", {}, [], status=TrialStatus.RUNNING),
              _trial("00002", {}, [], status=TrialStatus.PENDING)]
    live = Results(tmp_path, [TrialResult.from_trial(t, tmp_path / t.trial_id) for t in trials], "loss", "min",
                   status="RUNNING")
    with pytest.raises(ExperimentError) as error:
        live.best
    assert str(error.value) == (f"No trial of {tmp_path.name!r} reported a finite 'loss': none of its 3 trials has "
                                "reported yet (1 pending, 2 running); ask again once one has.")
    dead = Results(tmp_path, live.trials, "loss", "min", status="INTERRUPTED")
    with pytest.raises(ExperimentError, match=r"\(1 pending, 2 running\); its driver is not running \(INTERRUPTED\): "
                                              r"raytuner\.Tuner\.resume\("):
        dead.best
    ended = Results(tmp_path, [TrialResult.from_trial(_trial("00000", {}, []), tmp_path)], "loss", "min")
    with pytest.raises(ExperimentError, match=r"none of its 1 trial reported anything \(1 completed\)\.$"):
        ended.best


def test_trials_that_reported_without_the_metric_keep_the_advice_on_its_name(tmp_path):
    trials = [_trial("00000", {}, [0.5], status=TrialStatus.RUNNING),
              _trial("00001", {}, [], status=TrialStatus.RUNNING)]
    results = _results(tmp_path, trials)
    with pytest.raises(ExperimentError, match=r"'val_loss': 2 trials; check the metric's name and the trials' reports"):
        results.get_best(metric="val_loss", mode="min")
