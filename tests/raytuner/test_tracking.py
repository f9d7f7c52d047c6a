"""TensorBoard and MLflow callbacks driven through the Callback hooks (no Ray), and the
scheduler line of the progress view."""

from __future__ import annotations

import functools
import io
import json
import warnings
import math
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from raytuner._driver.progress import Progress
from raytuner._results import Results, TrialResult
from raytuner._trial import Trial, TrialStatus


def drive(callback, root: Path, *, status_of=("COMPLETED", "STOPPED", "FAILED"), metric="loss", mode="min") -> Results:
    """Three trials through the hooks, as the controller calls them; trial 1 pauses once."""
    path = root / "exp"
    path.mkdir(parents=True)
    meta = {"name": "exp", "metric": metric, "mode": mode, "status": "COMPLETED", "start_time": time.time()}
    callback.on_experiment_start(path, meta)
    ends = []
    for i, status in enumerate(status_of):
        trial = Trial(f"{i:05d}", {"lr": 0.1 * (i + 1), "opt": ["adam", "sgd"][i % 2], "net": {"depth": i}, "bn": i == 1})
        callback.on_trial_start(trial.trial_id, trial.config)
        for it in range(1, 4):
            metrics = {"loss": 1.0 / it + i, "acc": it / 10}
            trial.observe(it, it, metrics, metrics["loss"], it * 0.1)
            callback.on_trial_result(trial.trial_id, {**metrics, "iteration": it, "time_total_s": it * 0.1,
                                                      "timestamp": time.time()})
            if i == 1 and it == 1:  # a pause and a resume
                trial.status = TrialStatus.PAUSED
                callback.on_trial_end(TrialResult.from_trial(trial, path / "trials" / trial.trial_id))
                callback.on_trial_start(trial.trial_id, trial.config)
        trial.status = TrialStatus(status)
        trial.error = "Traceback: boom" if status == "FAILED" else None
        ends.append(TrialResult.from_trial(trial, path / "trials" / trial.trial_id))
        callback.on_trial_end(ends[-1])
    results = Results(path, ends, metric, mode, meta)
    callback.on_experiment_end(results)
    return results


# -- TensorBoard ---------------------------------------------------------------------------
def read_events(path: Path) -> list:
    """Every event of a TFRecord events file, checking both CRCs of each record."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked_crc32c(body)
        events.append(event_pb2.Event.FromString(body))
        at += 16 + length
    return events


def test_tensorboard_writes_scalars_and_hparams_without_tensorflow(tmp_path):
    pytest.importorskip("tensorboard")
    code = f"""
import sys, time
sys.path[:0] = {sys.path!r}
from tests_tracking_driver import drive
from raytuner.tracking import TensorBoardCallback
drive(TensorBoardCallback(), __import__('pathlib').Path({str(tmp_path)!r}))
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
"""
    driver = tmp_path / "tests_tracking_driver.py"
    driver.write_text(Path(__file__).read_text())  # the same drive(), importable in a child
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    from tensorboard.plugins.hparams import metadata

    logdir = tmp_path / "exp" / "tensorboard"
    assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == ["00000", "00001", "00002"]
    run1 = [e for f in sorted((logdir / "00001").glob("events.out.tfevents.*")) for e in read_events(f)]
    assert len(list((logdir / "00001").glob("events.out.tfevents.*"))) == 2  # reopened after the pause
    scalars = [(e.step, v.tag, round(v.simple_value, 4)) for e in run1 for v in e.summary.value if v.HasField("simple_value")]
    assert [s for s in scalars if s[1] == "loss"] == [(1, "loss", 2.0), (2, "loss", 1.5), (3, "loss", 1.3333)]
    tags = [v.tag for e in run1 for v in e.summary.value if not v.HasField("simple_value")]
    assert tags == ["_hparams_/session_start_info", "_hparams_/session_end_info"]  # one session despite the pause
    start = next(v for e in run1 for v in e.summary.value if v.tag == "_hparams_/session_start_info")
    info = metadata.parse_session_start_info_plugin_data(start.metadata.plugin_data.content)
    assert info.hparams["lr"].number_value == pytest.approx(0.2)
    assert info.hparams["opt"].string_value == "sgd" and info.hparams["net/depth"].number_value == 1
    assert info.hparams["bn"].bool_value is True
    ends = {}
    for trial_id in ("00000", "00002"):
        events = [e for f in (logdir / trial_id).glob("events.*") for e in read_events(f)]
        end = next(v for e in events for v in e.summary.value if v.tag == "_hparams_/session_end_info")
        ends[trial_id] = metadata.parse_session_end_info_plugin_data(end.metadata.plugin_data.content).status
    from tensorboard.plugins.hparams import api_pb2

    assert ends == {"00000": api_pb2.STATUS_SUCCESS, "00002": api_pb2.STATUS_FAILURE}
    experiment_events = [e for f in logdir.glob("events.*") for e in read_events(f)]
    value = next(v for e in experiment_events for v in e.summary.value if v.tag == "_hparams_/experiment")
    experiment = metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    assert [m.name.tag for m in experiment.metric_infos] == ["loss", "acc"]
    kinds = {h.name: h.type for h in experiment.hparam_infos}
    assert kinds == {"lr": api_pb2.DATA_TYPE_FLOAT64, "opt": api_pb2.DATA_TYPE_STRING,
                     "net/depth": api_pb2.DATA_TYPE_FLOAT64, "bn": api_pb2.DATA_TYPE_BOOL}


@pytest.mark.parametrize("crc", ["google-crc32c", "tensorboard's"])
def test_tensorboard_records_match_tensorboards_own_writer(crc, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.summary.writer.record_writer import RecordWriter

    from raytuner.tracking import tensorboard as tb

    if crc == "google-crc32c":
        pytest.importorskip("google_crc32c")
    else:
        monkeypatch.setitem(sys.modules, "google_crc32c", None)  # import fails: the fallback
    tb._masked_crc32c.cache_clear()
    try:
        for data in (b"", b"x", bytes(range(256)) * 3):
            expected = io.BytesIO()
            RecordWriter(expected).write(data)
            assert tb._record(data) == expected.getvalue()
    finally:
        tb._masked_crc32c.cache_clear()


def test_tensorboard_server_shows_the_sweep_in_hparams(tmp_path):
    """The real TensorBoard backend (without TensorFlow, so it starts in about a second)."""
    pytest.importorskip("tensorboard")
    from raytuner.tracking import TensorBoardCallback

    drive(TensorBoardCallback(), tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # An importable tensorboard.compat.notf tells TensorBoard to use its TensorFlow stub.
    boot = ("import sys, types; sys.modules['tensorboard.compat.notf'] = types.ModuleType('notf'); "
            "from tensorboard.main import run_main; sys.argv[0] = 'tensorboard'; run_main()")
    server = subprocess.Popen([sys.executable, "-c", boot, "--logdir", str(tmp_path / "exp" / "tensorboard"),
                               "--port", str(port), "--host", "127.0.0.1", "--load_fast=false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def post(route: str, body: dict) -> dict:
        request = urllib.request.Request(url + route, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
        return json.loads(urllib.request.urlopen(request, timeout=20).read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/data/runs", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.2)
        experiment = post("/data/plugin/hparams/experiment", {"experimentName": ""})
        assert {h["name"] for h in experiment["hparamInfos"]} == {"lr", "opt", "net/depth", "bn"}
        groups = post("/data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 100, "colParams": [],
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
        rows = {g["name"]: g for g in groups["sessionGroups"]}
        assert set(rows) == {"00000", "00001", "00002"}
        loss = {name: next(m["value"] for m in g["metricValues"] if m["name"]["tag"] == "loss") for name, g in rows.items()}
        assert loss == pytest.approx({"00000": 1 / 3, "00001": 1 + 1 / 3, "00002": 2 + 1 / 3})
        assert rows["00002"]["sessions"][0]["status"] == "STATUS_FAILURE"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_run_adds_tensorboard_by_default_only_once():
    pytest.importorskip("tensorboard")
    from raytuner._driver.run import default_callbacks
    from raytuner.tracking import TensorBoardCallback

    assert [type(c).__name__ for c in default_callbacks([], tensorboard=True)] == ["TensorBoardCallback"]
    assert default_callbacks([], tensorboard=False) == []
    mine = TensorBoardCallback("/tmp/elsewhere")
    assert default_callbacks([mine], tensorboard=True) == [mine]


# -- MLflow --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """One SQLite store for the module: creating its schema takes seconds."""
    pytest.importorskip("mlflow")
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_mlflow_logs_the_best_value_the_trial_was_chosen_for_under_best_scope_all(tmp_path, mlflow_uri):
    """Under best_scope="all" the best trial is the one with the best report (0.98), and
    best_acc is that report, not the trial's last (0.1)."""
    from mlflow.tracking import MlflowClient

    from raytuner.tracking import MLflowCallback

    path = tmp_path / "exp"
    path.mkdir()
    meta = {"name": "exp", "metric": "acc", "mode": "max", "status": "COMPLETED", "best_scope": "all",
            "start_time": time.time()}
    callback = MLflowCallback(tracking_uri=mlflow_uri, experiment_name="scope_all", flush_every_s=60)
    callback.on_experiment_start(path, meta)
    ends = []
    for trial_id, accs in [("00000", [0.5, 0.6, 0.7]), ("00001", [0.98, 0.1, 0.1])]:
        trial = Trial(trial_id, {"kind": trial_id})
        callback.on_trial_start(trial_id, trial.config)
        for it, acc in enumerate(accs, 1):
            trial.observe(it, it, {"acc": acc}, -acc, it * 0.1)
            callback.on_trial_result(trial_id, {"acc": acc, "iteration": it, "time_total_s": it * 0.1,
                                                "timestamp": time.time()})
        trial.status = TrialStatus.COMPLETED
        ends.append(TrialResult.from_trial(trial, path / "trials" / trial_id))
        callback.on_trial_end(ends[-1])
    callback.on_experiment_end(Results(path, ends, "acc", "max", meta))
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("scope_all")
    parent = next(r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "exp")
    assert parent.data.tags["raytuner.best_trial_id"] == "00001"
    assert parent.data.metrics["best_acc"] == pytest.approx(0.98)


def test_mlflow_logs_nested_runs_with_params_metrics_and_status(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from raytuner.tracking import MLflowCallback

    uri = mlflow_uri
    callback = MLflowCallback(tracking_uri=uri, experiment_name="nested", tags={"team": "vision"}, flush_every_s=60)
    drive(callback, tmp_path)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("nested")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"exp", "exp/00000", "exp/00001", "exp/00002"}
    parent = runs["exp"]
    assert parent.info.status == "FINISHED" and parent.data.params["metric"] == "loss"
    assert parent.data.tags["raytuner.best_trial_id"] == "00000" and parent.data.metrics["best_loss"] == pytest.approx(1 / 3)
    for trial_id, status, run_status in [("00000", "COMPLETED", "FINISHED"), ("00001", "STOPPED", "FINISHED"),
                                         ("00002", "FAILED", "FAILED")]:
        run = runs[f"exp/{trial_id}"]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["raytuner.status"] == status and run.info.status == run_status
        assert run.data.tags["team"] == "vision"
    trial1 = runs["exp/00001"]
    assert trial1.data.params == {"lr": "0.2", "opt": "sgd", "net/depth": "1", "bn": "True"}
    history = client.get_metric_history(trial1.info.run_id, "loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(1, 2.0), (2, 1.5), (3, 1.3333)]  # batched, all kept
    assert "boom" in runs["exp/00002"].data.tags["raytuner.error"]


def test_mlflow_resumed_experiment_reuses_its_runs(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from raytuner.tracking import MLflowCallback

    uri = mlflow_uri
    drive(MLflowCallback(tracking_uri=uri, experiment_name="resumed"), tmp_path)
    again = MLflowCallback(tracking_uri=uri, experiment_name="resumed")
    again.on_experiment_start(tmp_path / "exp", {"name": "exp", "num_trials": 8, "max_concurrent": 2,
                                                 "time_budget_s": 3600.0})
    client = MlflowClient(tracking_uri=uri)
    first = client.search_runs([again._experiment_id])
    assert again.parent_run_id in {r.info.run_id for r in first} and set(again.run_ids) == {"00000", "00001", "00002"}
    # The limits this resume set are the parent run's tags (its params are the first run's, fixed).
    tags = client.get_run(again.parent_run_id).data.tags
    assert (tags["raytuner.num_trials"], tags["raytuner.max_concurrent"], tags["raytuner.time_budget_s"]) == (
        "8", "2", "3600.0")


def test_mlflow_goes_on_in_the_same_runs_after_the_experiment_is_renamed(tmp_path, mlflow_uri, capsys):
    from mlflow.tracking import MlflowClient

    from raytuner import cli
    from raytuner.tracking import MLflowCallback

    drive(MLflowCallback(tracking_uri=mlflow_uri), tmp_path)  # the MLflow experiment is named after it: "exp"
    (tmp_path / "exp" / "experiment.json").write_text('{"name": "exp", "status": "COMPLETED"}')
    assert cli.main(["rename", str(tmp_path / "exp"), "new"]) == 0
    capsys.readouterr()
    meta = json.loads((tmp_path / "new" / "experiment.json").read_text())
    assert meta["former_paths"] == [str(tmp_path / "exp")]
    client = MlflowClient(tracking_uri=mlflow_uri)
    first = client.get_experiment_by_name("exp")
    parent = next(r for r in client.search_runs([first.experiment_id]) if "mlflow.parentRunId" not in r.data.tags)
    again = MLflowCallback(tracking_uri=mlflow_uri)
    again.on_experiment_start(tmp_path / "new", meta)
    # Its earlier runs, not a second MLflow experiment "new" with a second parent run.
    assert (again._experiment_id, again.parent_run_id) == (first.experiment_id, parent.info.run_id)
    assert set(again.run_ids) == {"00000", "00001", "00002"} and client.get_experiment_by_name("new") is None
    runs = client.search_runs([first.experiment_id], filter_string=f"tags.`raytuner.path` = '{tmp_path / 'new'}'")
    assert len(runs) == 4  # found by the new path from now on


def test_mlflow_shows_one_trajectory_after_a_restart_from_an_earlier_checkpoint(tmp_path, mlflow_uri):
    """A trial that restarts from an earlier checkpoint (a retry; a resume after a crash, in
    a new driver) reports steps its run holds: the run is replaced by one with the points
    before the restart, so neither the chart nor the run's latest value shows the lost ones."""
    from mlflow.tracking import MlflowClient

    from raytuner.tracking import MLflowCallback

    client = MlflowClient(tracking_uri=mlflow_uri)
    path = tmp_path / "exp"
    path.mkdir()
    callback = MLflowCallback(tracking_uri=mlflow_uri, experiment_name="restarts", flush_every_s=60)
    callback.on_experiment_start(path, {"name": "exp", "metric": "loss", "mode": "min"})
    callback.on_trial_start("00000", {"lr": 0.1})
    callback.on_trial_start("00001", {"lr": 0.2})

    def report(trial_id, attempt, steps, base):
        for step in steps:
            callback.on_trial_result(trial_id, {"loss": base + 1.0 / step, "acc": step / 10, "iteration": step,
                                                "attempt": attempt, "timestamp": time.time()})

    report("00000", 1, [1, 2, 3, 4], 10.0)
    report("00001", 1, [1, 2], 20.0)
    first = callback.run_ids["00000"]
    report("00000", 2, [3, 4, 5], 30.0)  # retried from its checkpoint at step 2
    callback.on_trial_end(TrialResult.from_trial(Trial("00000", {"lr": 0.1}, status=TrialStatus.FAILED),
                                                 path / "trials" / "00000"))

    def shown(trial_id):
        (run,) = client.search_runs([callback._experiment_id], f"tags.`raytuner.trial_id` = '{trial_id}'")
        return run, {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                     for key in ("loss", "acc")}

    run, history = shown("00000")
    assert history["loss"] == [(1, 11.0), (2, 10.5), (3, 30 + 1 / 3), (4, 30.25), (5, 30.2)]
    assert history["acc"] == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]
    assert run.data.metrics["loss"] == 30.2 and run.data.params == {"lr": "0.1"}
    assert run.info.run_name == "exp/00000" and run.data.tags["raytuner.replaces"] == first
    assert run.data.tags["mlflow.parentRunId"] == callback.parent_run_id and run.info.status == "FAILED"
    assert client.get_run(first).info.lifecycle_stage == "deleted"
    assert callback.run_ids["00000"] == run.info.run_id
    callback.on_trial_end(TrialResult.from_trial(Trial("00001", {"lr": 0.2}, status=TrialStatus.PAUSED),
                                                 path / "trials" / "00001"))
    assert shown("00001")[1]["loss"] == [(1, 21.0), (2, 20.5)]  # the other trial untouched

    again = MLflowCallback(tracking_uri=mlflow_uri, experiment_name="restarts", flush_every_s=0)  # a resume
    again.on_experiment_start(path, {"name": "exp", "metric": "loss", "mode": "min"})
    callback = again
    again.on_trial_start("00001", {"lr": 0.2})
    report("00001", 2, [2, 3], 40.0)  # from its checkpoint at step 1
    report("00000", 3, [6], 50.0)  # went on from its last step: nothing lost, the run kept
    assert shown("00001")[1]["loss"] == [(1, 21.0), (2, 40.5), (3, 40 + 1 / 3)]
    assert shown("00000")[0].info.run_id == run.info.run_id


def records_of_a_killed_driver(tmp_path: Path):
    """An experiment folder for records a killed driver left: (path, storage, meta)."""
    from raytuner._storage.experiment import ExperimentStorage

    path = tmp_path / "exp"
    storage = ExperimentStorage(path, writable=True)
    storage.create()
    return path, storage, {"name": "exp", "metric": "loss", "mode": "min"}


def stored_row(step: int, loss: float, attempt: int = 1) -> dict:
    """A report as the driver stores it and hands it to the callbacks."""
    return {"loss": loss, "iteration": step, "time_total_s": float(step), "attempt": attempt, "timestamp": 1e9 + step}


def stored_trial(storage, trial_id: str, status: str, rows: list, handed: list = (), *, callback=None,
                 each=None) -> None:
    """A trial of config {"lr": 0.1} whose records hold ``status`` and, after its first
    attempt's marker, ``rows`` (report rows and later markers); with ``callback``, started
    there and handed the reports ``handed`` (then ``each(trial_id)``, after each)."""
    from raytuner._storage.history import attempt_marker

    storage.write_config(trial_id, {"lr": 0.1})
    storage.write_trial(trial_id, Trial(trial_id, {"lr": 0.1}, status=TrialStatus(status)).to_record())
    storage.append_results(trial_id, [attempt_marker(1, 0, None, "start", 1e9), *rows])
    if callback is not None:
        callback.on_trial_start(trial_id, {"lr": 0.1})
        for line in handed:
            callback.on_trial_result(trial_id, line)
            if each is not None:
                each(trial_id)


def test_mlflow_settles_the_runs_a_killed_driver_left_open_against_the_records(tmp_path, mlflow_uri):
    """A driver killed mid-run leaves runs RUNNING: without its batches' last points, with
    points the records do not keep (a lost attempt's; one sent before the write the kill
    cut), or with its trial's end never sent. A resume's callback settles each run against
    the records before any trial starts, and a restarted trial then logs on from there."""
    from mlflow.tracking import MlflowClient

    from raytuner._storage.history import attempt_marker
    from raytuner.tracking import MLflowCallback

    client = MlflowClient(tracking_uri=mlflow_uri)
    path, storage, meta = records_of_a_killed_driver(tmp_path)
    killed = MLflowCallback(tracking_uri=mlflow_uri, experiment_name="settled", flush_every_s=3600)
    killed.on_experiment_start(path, meta)
    row = stored_row
    trial = functools.partial(stored_trial, storage, callback=killed, each=killed._flush)  # each batch sent

    # Its last three reports were in a batch when the driver died, after its end was written.
    trial("00000", "COMPLETED", [row(1, 1.0), row(2, 0.9), row(3, 0.8), row(4, 0.7)], [row(1, 1.0)])
    # Retried from its checkpoint at 1 after its worker died: the records supersede 2 and 3.
    trial("00001", "PENDING", [row(1, 2.0), row(2, 1.9), row(3, 1.8),
                               attempt_marker(2, 1, "checkpoint_000001", "retry", 1e9), row(2, 1.5, 2)],
          [row(1, 2.0), row(2, 1.9), row(3, 1.8)])
    # Paused by the scheduler (diverged: NaN is a point like any other); the pause never reached MLflow.
    trial("00002", "PAUSED", [row(1, 3.0), row(2, math.nan)], [row(1, 3.0), row(2, math.nan)])
    # MLflow was sent step 2, whose row the kill cut before it was written.
    trial("00003", "RUNNING", [row(1, 4.0)], [row(1, 4.0), row(2, 3.9)])
    # Paused (MLflow heard it), then stopped by the scheduler: the stop never reached MLflow.
    trial("00004", "STOPPED", [row(1, 5.0)], [row(1, 5.0)])
    killed.on_trial_end(TrialResult.from_trial(Trial("00004", {"lr": 0.1}, status=TrialStatus.PAUSED),
                                               path / "trials" / "00004"))
    assert client.get_run(killed.run_ids["00004"]).info.status == "SCHEDULED"
    first_ids = dict(killed.run_ids)

    resumed = MLflowCallback(tracking_uri=mlflow_uri, experiment_name="settled", flush_every_s=3600)
    resumed.on_experiment_start(path, meta)

    def shown(trial_id):
        run = client.get_run(resumed.run_ids[trial_id])
        return run, sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss"))

    run, points = shown("00000")
    assert points == [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7)] and run.info.run_id == first_ids["00000"]
    assert run.info.status == "FINISHED" and run.data.tags["raytuner.status"] == "COMPLETED"
    run, points = shown("00001")
    assert points == [(1, 2.0), (2, 1.5)] and run.data.tags["raytuner.replaces"] == first_ids["00001"]
    assert run.info.status == "RUNNING" and client.get_run(first_ids["00001"]).info.lifecycle_stage == "deleted"
    run, points = shown("00002")
    assert points[0] == (1, 3.0) and math.isnan(points[1][1]) and len(points) == 2
    assert run.info.run_id == first_ids["00002"] and run.info.status == "SCHEDULED"
    run, points = shown("00003")
    assert points == [(1, 4.0)] and run.data.tags["raytuner.replaces"] == first_ids["00003"]
    run, points = shown("00004")
    assert points == [(1, 5.0)] and run.info.status == "FINISHED" and run.data.tags["raytuner.status"] == "STOPPED"
    # The retried trial logs on from its checkpoint: no second replacement.
    resumed.on_trial_start("00001", {"lr": 0.1})
    resumed.on_trial_result("00001", row(3, 1.4, 3))
    resumed._flush("00001")
    run, points = shown("00001")
    assert points == [(1, 2.0), (2, 1.5), (3, 1.4)] and run.data.tags["raytuner.replaces"] == first_ids["00001"]


# -- progress ------------------------------------------------------------------------------
def test_progress_shows_the_schedulers_line_when_it_has_one():
    trials = {"00000": Trial("00000", {"x": 1}, status=TrialStatus.RUNNING)}
    stream = io.StringIO()
    calls = iter(["rung 1: 3 trials\n(cutoff 0.4)", None, RuntimeError("boom")])

    def describe():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    progress = Progress(trials, name="exp", metric="loss", mode="min", total=4, verbose=1, stream=stream,
                        line_every_s=0.0, describe=describe)
    progress.update(force=True)
    progress.update(force=True)
    progress.update(force=True)
    lines = stream.getvalue().splitlines()
    assert "| rung 1: 3 trials (cutoff 0.4) |" in lines[0]
    assert "rung" not in lines[1]
    assert "scheduler info unavailable (RuntimeError)" in lines[2]  # a broken describe never ends the run
    silent = Progress(trials, name="exp", metric="loss", mode="min", total=4, verbose=1, stream=io.StringIO(),
                      line_every_s=0.0)
    silent.update(force=True)
    assert silent.extra is None


def test_tensorboard_shows_one_trajectory_after_a_restart(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from raytuner.tracking import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.on_experiment_start(tmp_path, {"metric": "loss"})
    callback.on_trial_start("00000", {"lr": 0.1})
    for step in range(1, 6):  # attempt 1 reaches step 5, then its worker dies
        callback.on_trial_result("00000", {"loss": 10.0 + step, "iteration": step, "attempt": 1})
    resumed = TensorBoardCallback()  # a resumed driver: a new callback, a new event file
    resumed.on_experiment_start(tmp_path, {"metric": "loss"})
    resumed.on_trial_start("00000", {"lr": 0.1})
    for step in range(3, 7):  # attempt 2 restarts from its checkpoint at step 2
        resumed.on_trial_result("00000", {"loss": 20.0 + step, "iteration": step, "attempt": 2})
    run = EventAccumulator(str(tmp_path / "tensorboard" / "00000"))
    run.Reload()
    assert [(e.step, e.value) for e in run.Scalars("loss")] == [
        (1, 11.0), (2, 12.0), (3, 23.0), (4, 24.0), (5, 25.0), (6, 26.0)]


def shown_run(folder: Path) -> tuple[dict[int, float], bool, bool]:
    """What TensorBoard shows of a trial's run: its loss by step (a session start at step s
    drops the points written before it at steps >= s), and whether the run has its HParams
    session start and end; read with read_events, which checks every CRC."""
    points, started, ended = {}, False, False
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in read_events(path):
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                points = {step: v for step, v in points.items() if step < event.step}
            for value in event.summary.value:
                started |= value.tag == "_hparams_/session_start_info"
                ended |= value.tag == "_hparams_/session_end_info"
                if value.tag == "loss":
                    points[event.step] = value.simple_value
    return points, started, ended


def test_tensorboard_settles_the_runs_a_killed_driver_left_against_the_records(tmp_path, monkeypatch):
    """A driver killed between a report's storage write and its hand-off to the callbacks left
    TensorBoard without that point, without a trial's session end, or still showing a lost
    attempt's points (the restart's first report never handed over). A resume's callback
    makes each run show what the records keep, and leaves a run that does alone."""
    from raytuner._storage.history import attempt_marker
    from raytuner.tracking import TensorBoardCallback, tensorboard


    # Event files are numbered in the process: 00001's first is the 9th, its settling file the
    # 12th, in the same second; they must still be read in that order (not "12" before "9").
    monkeypatch.setattr(tensorboard, "_counter", 7)
    path, storage, meta = records_of_a_killed_driver(tmp_path)
    killed = TensorBoardCallback()
    killed.on_experiment_start(path, meta)
    row = stored_row
    trial = functools.partial(stored_trial, storage, callback=killed)

    trial("00000", "COMPLETED", [row(1, 1.0), row(2, 0.75), row(3, 0.5)], [row(1, 1.0), row(2, 0.75)])
    trial("00001", "PENDING", [row(1, 2.0), row(2, 1.75), row(3, 1.5),
                               attempt_marker(2, 1, "checkpoint_000001", "retry", 1e9), row(2, 1.25, 2)],
          [row(1, 2.0), row(2, 1.75), row(3, 1.5)])
    trial("00002", "PAUSED", [row(1, 3.0), row(2, 2.75)], [row(1, 3.0), row(2, 2.75)])
    killed.on_experiment_end(Results(path, [], "loss", "min", meta))  # closes the files; writes no session end
    # Killed after the trial's folder and its event file, before its session start.
    stored_trial(storage, "00003", "RUNNING", [row(1, 4.0)])
    (path / "tensorboard" / "00003").mkdir()
    untouched = sorted((path / "tensorboard" / "00002").iterdir())

    resumed = TensorBoardCallback()
    resumed.on_experiment_start(path, {**meta, "resumed": 1})
    runs = path / "tensorboard"
    assert shown_run(runs / "00000") == ({1: 1.0, 2: 0.75, 3: 0.5}, True, True)
    assert shown_run(runs / "00001") == ({1: 2.0, 2: 1.25}, True, False)
    assert shown_run(runs / "00002") == ({1: 3.0, 2: 2.75}, True, False)
    assert sorted((runs / "00002").iterdir()) == untouched  # nothing to settle: no file written
    assert shown_run(runs / "00003") == ({1: 4.0}, True, False)
    # The retried trial restarts from its checkpoint at 1 again: the live restart drops 2 as before.
    resumed.on_trial_start("00001", {"lr": 0.1})
    resumed.on_trial_result("00001", row(2, 1.0, 3))
    resumed.on_trial_end(TrialResult.from_trial(Trial("00001", {"lr": 0.1}, status=TrialStatus.COMPLETED),
                                                path / "trials" / "00001"))
    assert shown_run(runs / "00001") == ({1: 2.0, 2: 1.0}, True, True)


def test_hparams_summaries_match_tensorboards_own_and_skip_its_heavy_import():
    """The HParams metadata is built from the protos, byte for byte what tensorboard's
    ``plugins.hparams.metadata`` makes, without importing that module (its TensorFlow stub
    and boto3 cost a sweep's first trial up to 0.7 s)."""
    code = """
import sys
from tensorboard.plugins.hparams import plugin_data_pb2
from raytuner.tracking.tensorboard import _hparams_summary
data = plugin_data_pb2.HParamsPluginData(session_start_info=plugin_data_pb2.SessionStartInfo(start_time_secs=1.5))
data.session_start_info.hparams["lr"].number_value = 0.1
ours = _hparams_summary("_hparams_/session_start_info", data).SerializeToString()
assert "tensorboard.plugins.hparams.metadata" not in sys.modules
assert "boto3" not in sys.modules
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import metadata
theirs = summary_pb2.Summary()
theirs.value.add(tag="_hparams_/session_start_info", metadata=metadata.create_summary_metadata(data),
                 tensor=metadata.NULL_TENSOR)
assert ours == theirs.SerializeToString(), (ours, theirs.SerializeToString())
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_mlflow_refuses_a_folder_when_built_where_mlflow_refuses_its_file_store(tmp_path, monkeypatch):
    """mlflow 3's file store raises unless MLFLOW_ALLOW_FILE_STORE is set, and only at
    experiment start (logging then off for the whole sweep): the callback is refused at once."""
    pytest.importorskip("mlflow")
    from mlflow import environment_variables

    from raytuner.errors import ConfigError
    from raytuner.tracking import MLflowCallback

    if not hasattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE"):
        pytest.skip("this mlflow takes any folder")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    folder = str(tmp_path / "mlruns")
    for uri in (folder, f"file://{folder}"):
        with pytest.raises(ConfigError, match=r"`tracking_uri` is '.*mlruns'.*sqlite:///mlflow.db.*MLFLOW_ALLOW_FILE_STORE=true"):
            MLflowCallback(tracking_uri=uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", folder)  # MLflow's default, from the environment
    with pytest.raises(ConfigError, match="`tracking_uri` is \"None \\(MLflow's default here"):
        MLflowCallback()
    assert MLflowCallback(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").tracking_uri.startswith("sqlite:")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    MLflowCallback(tracking_uri=folder).on_experiment_start(tmp_path / "exp", {"name": "exp"})  # the opt-out works
    assert (tmp_path / "mlruns").is_dir()


def test_a_run_records_its_callbacks_and_a_resume_rebuilds_mlflow_or_names_the_missing_one(tmp_path, monkeypatch, capsys):
    """`raytuner resume` passes no callbacks: the MLflowCallback the run logged to is rebuilt
    from experiment.json (a password in its URI masked, and then named instead), and any
    other tracker of raytuner's the resume lacks is named in a warning; the user's own
    callbacks are not (a progress watcher is no tracker)."""
    pytest.importorskip("mlflow")
    import raytuner as rt
    from raytuner.tracking import MLflowCallback, TensorBoardCallback
    from raytuner.tracking._recorded import recalled, recorded

    class Mine(rt.Callback):
        pass

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    records = json.loads(json.dumps(recorded([MLflowCallback(tracking_uri=uri, experiment_name="e", tags={"t": 1},
                                                             flush_every_s=2), Mine(), TensorBoardCallback()])))
    assert records[0] == {"class": "raytuner.tracking.mlflow.MLflowCallback", "tracking_uri": uri, "experiment_name": "e",
                          "tags": {"t": "1"}, "flush_every_s": 2.0, "rebuild": True}
    assert records[1]["class"].endswith("Mine")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Mine is the user's: no warning
        callbacks = recalled(records, [], tensorboard=True, speak=True)
    with pytest.warns(UserWarning, match=r"logged to .*TensorBoardCallback, which this resume was not given.*"
                                         r"callbacks=\[TensorBoardCallback\(...\)\]"):
        recalled(records[2:], [], tensorboard=False, speak=False)
    (rebuilt,) = callbacks
    assert (type(rebuilt), rebuilt.tracking_uri, rebuilt.experiment_name, rebuilt.tags, rebuilt.flush_every_s) == (
        MLflowCallback, uri, "e", {"t": "1"}, 2.0)
    assert "logging to MLflow as the earlier run did" in capsys.readouterr().out
    mine = MLflowCallback(tracking_uri=uri)
    assert recalled(records[:1], [mine], tensorboard=False, speak=True) == [mine]  # the one given wins

    secret = MLflowCallback(tracking_uri="postgresql://me:hunter2@db/mlflow").record()
    assert secret["tracking_uri"] == "postgresql://me:***@db/mlflow" and secret["rebuild"] is False
    with pytest.warns(UserWarning, match=r"MLflowCallback.*callbacks=\[MLflowCallback\(tracking_uri=...\)\]"):
        assert recalled([secret], [], tensorboard=True, speak=False) == []

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    folder = {**records[0], "tracking_uri": str(tmp_path / "mlruns")}  # recorded where the env allowed it
    with pytest.warns(UserWarning, match="cannot be rebuilt.*MLFLOW_ALLOW_FILE_STORE=true"):
        assert recalled([folder], [], tensorboard=True, speak=False) == []


@pytest.mark.parametrize("records", ["mlflow", [1, None, "x"], {"class": "a"},
                                     [{"class": "raytuner.tracking.mlflow.MLflowCallback", "rebuild": True}],
                                     [{"class": "raytuner.tracking.mlflow.MLflowCallback", "rebuild": True,
                                       "tracking_uri": 3, "flush_every_s": "soon"}]])
def test_a_hand_edited_callbacks_record_never_stops_a_resume(records):
    pytest.importorskip("mlflow")
    from raytuner.tracking._recorded import recalled

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert recalled(records, [], tensorboard=True, speak=False) == []


def hparams_status(run: Path) -> str:
    """The session status TensorBoard's HParams plugin reads for a run (its loader keeps the
    first metadata of each tag)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    return api_pb2.Status.Name(metadata.parse_session_end_info_plugin_data(content).status)


def test_a_failed_trial_re_run_to_its_end_shows_its_new_status_in_hparams(tmp_path):
    pytest.importorskip("tensorboard")
    from raytuner.tracking import TensorBoardCallback
    from raytuner.tracking._tensorboard_runs import read_run

    path = tmp_path / "exp"
    path.mkdir()
    meta = {"name": "exp", "metric": "loss", "mode": "min", "status": "RUNNING", "start_time": time.time()}
    callback = TensorBoardCallback()
    callback.on_experiment_start(path, meta)
    trial = Trial("00000", {"lr": 0.1})
    callback.on_trial_start("00000", trial.config)
    callback.on_trial_result("00000", {"loss": 1.0, "iteration": 1, "attempt": 1})
    trial.status = TrialStatus.FAILED
    callback.on_trial_end(TrialResult.from_trial(trial, path / "trials" / "00000"))
    run = path / "tensorboard" / "00000"
    assert hparams_status(run) == "STATUS_FAILURE"
    # Re-run from the dashboard (retry_trial): it completes.
    callback.on_trial_start("00000", trial.config)
    callback.on_trial_result("00000", {"loss": 0.5, "iteration": 2, "attempt": 1})
    trial.status = TrialStatus.COMPLETED
    callback.on_trial_end(TrialResult.from_trial(trial, path / "trials" / "00000"))
    assert hparams_status(run) == "STATUS_SUCCESS"
    shown = read_run(run)
    assert shown.points == {1: {"loss": 1.0}, 2: {"loss": 0.5}} and shown.started and shown.ended
    tags = [v.tag for f in sorted(run.glob("events.out.tfevents.*")) for e in read_events(f) for v in e.summary.value]
    assert tags.count("_hparams_/session_end_info") == 1 and tags.count("_hparams_/session_start_info") == 1
    assert not list(run.glob(".*"))  # no temporary file left


def test_a_resume_puts_right_a_runs_session_end_that_another_status_left(tmp_path):
    """A driver killed after a FAILED trial's re-run completed, before its callbacks heard of
    it: the run shows FAILED, the records COMPLETED; the resume shows COMPLETED."""
    pytest.importorskip("tensorboard")
    from raytuner.tracking import TensorBoardCallback

    path, storage, meta = records_of_a_killed_driver(tmp_path)
    killed = TensorBoardCallback()
    killed.on_experiment_start(path, meta)
    stored_trial(storage, "00000", "FAILED", [stored_row(1, 1.0)], [stored_row(1, 1.0)], callback=killed)
    killed.on_trial_end(TrialResult.from_trial(Trial("00000", {"lr": 0.1}, status=TrialStatus.FAILED),
                                               path / "trials" / "00000"))
    storage.write_trial("00000", Trial("00000", {"lr": 0.1}, status=TrialStatus.COMPLETED).to_record())
    stored_trial(storage, "00001", "COMPLETED", [stored_row(1, 2.0)], [stored_row(1, 2.0)], callback=killed)
    killed.on_trial_end(TrialResult.from_trial(Trial("00001", {"lr": 0.1}, status=TrialStatus.COMPLETED),
                                               path / "trials" / "00001"))
    killed.on_experiment_end(Results(path, [], "loss", "min", meta))
    runs = path / "tensorboard"
    untouched = sorted((runs / "00001").iterdir())
    assert hparams_status(runs / "00000") == "STATUS_FAILURE"
    TensorBoardCallback().on_experiment_start(path, {**meta, "resumed": 1})
    assert hparams_status(runs / "00000") == "STATUS_SUCCESS" and hparams_status(runs / "00001") == "STATUS_SUCCESS"
    assert shown_run(runs / "00000") == ({1: 1.0}, True, True)
    assert sorted((runs / "00001").iterdir()) == untouched  # its end was right: nothing written
