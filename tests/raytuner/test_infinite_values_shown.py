"""A metric reported as inf, -inf or NaN is shown as such by ``raytuner show`` (``-`` is for
one never reported), and ``raytuner export --json`` keeps infinities apart from null, as
the CSV keeps ``inf`` (no Ray)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from raytuner import cli
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus

LOSSES = {"00000": 0.5, "00001": math.inf, "00002": -math.inf, "00003": math.nan, "00004": None}


def _experiment(root: Path) -> Path:
    storage = ExperimentStorage(root / "values")
    storage.create()
    storage.write_experiment({"name": "values", "metric": "loss", "mode": "min", "status": "COMPLETED",
                              "searcher": "GridSearcher", "scheduler": "FIFOScheduler()", "start_time": 1.7e9})
    for trial_id, loss in LOSSES.items():
        metrics = {"ok": 1.0} if loss is None else {"loss": loss, "ok": 1.0}
        trial = Trial(trial_id, {"k": trial_id})
        trial.observe(1, 1, metrics, loss if loss is not None and math.isfinite(loss) else None, 0.1)
        trial.status = TrialStatus.COMPLETED
        storage.write_config(trial_id, trial.config)
        storage.append_results(trial_id, [{"iteration": 1, "time_total_s": 0.1, **metrics}])
        storage.write_trial(trial_id, trial.to_record())
    return storage.path


def _run(capsys, *argv: str) -> str:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_show_prints_inf_and_nan_and_a_dash_only_for_a_value_never_reported(tmp_path, capsys):
    out = _run(capsys, "show", "--wide", str(_experiment(tmp_path)))
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("0000")}
    header = next(line.split() for line in out.splitlines() if line.startswith("trial"))
    loss = header.index("loss")
    assert {trial_id: row[loss] for trial_id, row in rows.items()} == {
        "00000": "0.5", "00001": "inf", "00002": "-inf", "00003": "nan", "00004": "-"}, out


def test_export_json_writes_infinities_as_named_strings_and_csv_as_inf(tmp_path, capsys):
    path = _experiment(tmp_path)
    records = json.loads(_run(capsys, "export", "--json", str(path)))
    assert {r["trial_id"]: r["loss"] for r in records} == {
        "00000": 0.5, "00001": "Infinity", "00002": "-Infinity", "00003": None, "00004": None}
    assert all(r["ok"] == 1.0 for r in records)  # a column without an infinity stays numbers
    history = json.loads(_run(capsys, "export", "--json", "--history", str(path)))
    assert {r["trial_id"]: r["loss"] for r in history} == {
        "00000": 0.5, "00001": "Infinity", "00002": "-Infinity", "00003": None, "00004": None}
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "export", "--csv", str(path)))))
    assert {r["trial_id"]: r["loss"] for r in rows} == {
        "00000": "0.5", "00001": "inf", "00002": "-inf", "00003": "", "00004": ""}
    assert float("Infinity") == math.inf and float("-Infinity") == -math.inf  # what a reader turns them into


def test_export_json_keeps_every_float_whole(tmp_path, capsys):
    storage = ExperimentStorage(tmp_path / "tiny")
    storage.create()
    storage.write_experiment({"name": "tiny", "metric": "loss", "mode": "min", "status": "COMPLETED",
                              "searcher": "RandomSearcher", "scheduler": "FIFOScheduler()", "start_time": 1.7e9})
    lr, loss = 1.7613316680736487e-12, 0.1 + 0.2  # pandas' writer made these 0.0 and 0.3
    trial = Trial("00000", {"lr": lr, "units": 32, "opt": "adam"})
    trial.observe(1, 1, {"loss": loss}, loss, 0.1)
    trial.status = TrialStatus.COMPLETED
    storage.write_config("00000", trial.config)
    storage.append_results("00000", [{"iteration": 1, "time_total_s": 0.1, "loss": loss}])
    storage.write_trial("00000", trial.to_record())
    (record,) = json.loads(_run(capsys, "export", "--json", str(storage.path)))
    assert record["config/lr"] == lr and record["loss"] == loss
    assert record["config/units"] == 32 and type(record["config/units"]) is int and record["config/opt"] == "adam"
    (row,) = json.loads(_run(capsys, "export", "--json", "--history", str(storage.path)))
    assert row["loss"] == loss and row["iteration"] == 1
