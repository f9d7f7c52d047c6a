import json
import math

import pytest

from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.files import atomic_write_json, check_name
from raytuner.errors import ConfigError, ExperimentError


def test_names_cannot_leave_the_storage_root():
    assert check_name("mnist_asha-2") == "mnist_asha-2"
    for bad in ["../escape", "a/b", "..", ".hidden", "", "x" * 300, "a\\b"]:
        with pytest.raises(ConfigError, match="not a valid experiment name"):
            check_name(bad)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_nan_and_inf_round_trip(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.write_config("00000", {"lr": 0.1})
    storage.append_results("00000", [{"loss": math.nan}, {"loss": math.inf}])
    rows = storage.read_results("00000")
    assert math.isnan(rows[0]["loss"]) and rows[1]["loss"] == math.inf


def test_read_experiment_explains_what_is_wrong(tmp_path):
    with pytest.raises(ExperimentError, match="does not exist"):
        ExperimentStorage(tmp_path / "missing").read_experiment()
    (tmp_path / "plain").mkdir()
    with pytest.raises(ExperimentError, match="has no experiment.json"):
        ExperimentStorage(tmp_path / "plain").read_experiment()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "experiment.json").write_text("{cut")
    with pytest.raises(ExperimentError, match="not valid JSON"):
        ExperimentStorage(tmp_path / "bad").read_experiment()
