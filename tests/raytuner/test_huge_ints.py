"""An int beyond any float as a metric: refused when reported (the driver and every view
compare values as floats), and a trial.json holding one (a hand edit) is shown DAMAGED
instead of crashing the readers."""

from __future__ import annotations

import json

import pytest

import raytuner as rt
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.session import clean_metrics
from raytuner.errors import ReportError


def test_an_int_beyond_any_float_is_refused_when_reported_naming_the_fix():
    with pytest.raises(ReportError, match=r"metric 'loss' of trial 00001 is an int of 401 digits, beyond any float"):
        clean_metrics({"loss": 10**400}, "00001", "loss")
    assert clean_metrics({"loss": 10**300, "n": -(2**64)}, "00001", "loss") == {"loss": 10**300, "n": -(2**64)}


def test_a_trial_json_holding_one_is_damaged_and_every_view_still_reads(tmp_path, capsys):
    from raytuner import cli

    storage = ExperimentStorage(tmp_path / "huge")
    storage.create()
    storage.write_experiment({"name": "huge", "metric": "loss", "mode": "min", "status": "COMPLETED"})
    for trial_id, loss in (("00000", 0.5), ("00001", 0.25)):
        storage.write_config(trial_id, {"x": trial_id})
        trial = Trial(trial_id, {"x": trial_id})
        trial.observe(1, 1, {"loss": loss}, loss, 0.1)
        trial.status = TrialStatus.COMPLETED
        storage.write_trial(trial_id, trial.to_record())
    path = storage.path / "trials" / "00001" / "trial.json"
    record = json.loads(path.read_text())
    record["metrics"]["loss"] = 10**400
    path.write_text(json.dumps(record))
    results = rt.load(storage.path)
    assert {t.trial_id: t.status for t in results.trials} == {"00000": TrialStatus.COMPLETED,
                                                                "00001": TrialStatus.DAMAGED}
    assert results.best.trial_id == "00000" and len(results.dataframe()) == 2
    for command in (["show", "huge"], ["best", "huge"], ["ls"]):
        assert cli.main([*command, "--root", str(tmp_path)]) == 0, command
    assert "beyond any float" in capsys.readouterr().out
