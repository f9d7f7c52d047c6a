"""What the dashboard reads from ROOT: real files inside it only (links, FIFOs and folders
that lead outside are neither listed nor served), and the CLI's answers for damaged files,
dead drivers, missing folders and URIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dashboard_setup import client, post, queued, root  # noqa: E402,F401 - root: a fixture

from raytuner._storage.experiment import ExperimentStorage  # noqa: E402
from raytuner.cli import main  # noqa: E402
from raytuner.dashboard import Dashboard, DashboardError  # noqa: E402

SECRET = "TOP-SECRET-0xC0FFEE"


@pytest.fixture
def outside(tmp_path):
    """A folder beside ROOT, with a secret file and a whole experiment in it."""
    from test_report import write_experiment

    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET + "\n")
    path = write_experiment(folder, "elsewhere", n=4)
    storage = ExperimentStorage(path)
    record = json.loads((path / "trials/00000/trial.json").read_text())
    storage.write_trial("00000", {**record, "metrics": {**record["metrics"], "loss": 31337.5}})
    storage.append_log("00000", SECRET + "\n")
    return folder


def assert_secret_nowhere(c):
    """No answer of the API holds the secret."""
    for url in ("/api/experiments", "/api/e/live", "/api/e/live/trials?limit=500", "/api/e/live/figures",
                "/api/e/done/trials?limit=500"):
        text = c.get(url).text
        assert SECRET not in text and "31337.5" not in text and "elsewhere" not in text, url


# -- links and other files that are not plain ------------------------------------------------------
def test_a_log_linked_outside_the_root_is_refused_as_json_never_followed(root, outside):
    log = root / "live/trials/00001/log.txt"
    log.unlink()
    log.symlink_to(outside / "secret.txt")
    c = client(root)
    response = c.get("/api/e/live/t/00001/log", params={"offset": "tail"})
    assert response.status_code == 403
    assert response.json()["error"] == "live/trials/00001/log.txt is a link; the dashboard does not follow links."
    assert SECRET not in response.text
    log.unlink()
    log.symlink_to("/etc/passwd")
    assert c.get("/api/e/live/t/00001/log").status_code == 403
    assert c.get("/e/live/t/00001").status_code == 200  # the page itself still shows
    assert_secret_nowhere(c)


def test_a_link_is_not_followed_even_to_a_file_inside_the_root(root):
    log = root / "live/trials/00003/log.txt"
    log.symlink_to(root / "live/trials/00001/log.txt")
    assert client(root).get("/api/e/live/t/00003/log").status_code == 403


def test_an_experiment_linked_from_outside_is_neither_listed_nor_served(root, outside):
    (root / "linked").symlink_to(outside / "elsewhere")
    c = client(root)
    assert {e["name"] for e in c.get("/api/experiments").json()["experiments"]} == {"done", "live"}
    for url in ("/api/e/linked", "/api/e/linked/trials", "/api/e/linked/figures", "/api/e/linked/t/00000/log"):
        response = c.get(url)
        assert response.status_code == 404 and "No experiment 'linked'" in response.json()["error"]
    page = c.get("/e/linked")
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text
    assert post(c, "linked", {"command": "end_experiment"}).status_code == 404
    assert not (outside / "elsewhere/control").exists()


def test_a_trial_folder_that_is_a_link_is_neither_listed_nor_served(root, outside):
    (root / "live/trials/00009").symlink_to(outside / "elsewhere/trials/00000")
    c = client(root)
    assert c.get("/api/e/live").json()["trials"] == 6
    assert "00009" not in [r["trial_id"] for r in c.get("/api/e/live/trials").json()["rows"]]
    for url in ("/api/e/live/t/00009", "/api/e/live/t/00009/log", "/e/live/t/00009"):
        assert c.get(url).status_code == 404, url
    assert post(c, "live", {"command": "stop_trial", "args": {"trial_id": "00009"}}).status_code == 404
    assert_secret_nowhere(c)


@pytest.mark.parametrize("name", ["trial.json", "config.json", "results.jsonl", "error.txt"])
def test_a_trials_file_linked_outside_is_not_read(root, outside, name):
    path = root / "live/trials/00002" / name
    path.unlink(missing_ok=True)
    path.symlink_to(outside / "elsewhere/trials/00000" / name if name != "error.txt" else outside / "secret.txt")
    c = client(root)
    trial = c.get("/api/e/live/t/00002")
    assert trial.status_code in (200, 404)  # without its own config.json it is no trial
    assert SECRET not in trial.text and "31337.5" not in trial.text
    assert_secret_nowhere(c)


def test_the_control_folder_linked_outside_gets_no_command(root, outside):
    (root / "live/control").symlink_to(outside)
    response = post(client(root), "live", {"command": "end_experiment"})
    assert response.status_code == 403 and "control" in response.json()["error"]
    assert sorted(p.name for p in outside.iterdir()) == ["elsewhere", "secret.txt"]


@pytest.mark.timeout(30)
def test_fifos_are_never_opened_for_reading_so_nothing_blocks(root):
    os.mkfifo(root / "live/trials/00001/log.txt.fifo")
    (root / "live/trials/00001/log.txt").unlink()
    os.rename(root / "live/trials/00001/log.txt.fifo", root / "live/trials/00001/log.txt")
    os.mkfifo(root / "live/history.jsonl")
    os.mkfifo(root / "done/trials/00004/error.txt")
    (root / "done/trials/00005/results.jsonl").unlink()
    os.mkfifo(root / "done/trials/00005/results.jsonl")
    (root / "done/trials/00006/trial.json").unlink()
    os.mkfifo(root / "done/trials/00006/trial.json")
    c = client(root)
    response = c.get("/api/e/live/t/00001/log")
    assert response.status_code == 403 and "not a regular file" in response.json()["error"]
    assert c.get("/api/e/live").status_code == 200
    assert c.get("/api/e/done/t/00004").status_code == 200
    assert c.get("/api/e/done/t/00005").json()["damaged"] == "done/trials/00005/results.jsonl is not a regular file."
    assert c.get("/api/e/done").json()["trials"] == 11  # 00006 has no trial.json to show
    assert c.get("/api/e/done/figures").status_code == 200


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["driver.lock", ".driver.flock"])
@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_fifo_or_a_link_as_the_driver_lock_holds_no_driver_and_blocks_nothing(root, outside, name, kind):
    if kind == "fifo":
        os.mkfifo(root / "done" / name)
    else:
        (root / "done" / name).symlink_to(outside / "secret.txt")
    storage = ExperimentStorage(root / "done")
    storage.write_experiment({**storage.read_experiment(), "status": "RUNNING"})
    assert client(root).get("/api/e/done").json()["status"] == "INTERRUPTED"


# -- damaged files: DAMAGED, with the file and the fault; the rest readable ------------------------
@pytest.mark.parametrize(("content", "fault"), [
    ("{not json", "done/trials/00003/trial.json: not valid JSON (Expecting property name"),
    ('{"trial_id": "00003", "status": 5}', "field 'status' is '5', not one of PENDING, RUNNING"),
    ('{"trial_id": "00003", "status": "COMPLETED", "metrics": "loss=1"}', "field 'metrics' is a str, not a dict"),
    ('{"trial_id": "00003", "status": "COMPLETED", "iteration": "three"}', "field 'iteration' is a str, not a int"),
    ('[1, 2]', "it holds a list, not an object"),
    ("[" * 5000 + "]" * 5000, "not valid JSON (nested too deeply)"),
])
def test_a_damaged_trial_json_is_shown_damaged_and_still_counted(root, content, fault):
    (root / "done/trials/00003/trial.json").write_text(content)
    c = client(root)
    summary = c.get("/api/e/done").json()
    assert summary["trials"] == 12 and summary["counts"]["DAMAGED"] == 1
    assert sum(summary["counts"].values()) == 12 and summary["status"] == "COMPLETED"
    (row,) = c.get("/api/e/done/trials", params={"status": "DAMAGED"}).json()["rows"]
    assert row["trial_id"] == "00003" and fault in row["note"] and "done/trials/00003/trial.json" in row["note"]
    assert c.get("/api/e/done/trials", params={"limit": 500}).json()["total"] == 12
    trial = c.get("/api/e/done/t/00003").json()
    assert trial["record"]["status"] == "DAMAGED" and fault in trial["damaged"]
    assert c.get("/api/e/done/t/00004").json()["record"]["status"] in ("COMPLETED", "STOPPED")
    listed = {e["name"]: e for e in c.get("/api/experiments").json()["experiments"]}
    assert listed["done"]["counts"]["DAMAGED"] == 1 and listed["live"]["status"] == "RUNNING"
    assert c.get("/e/done/t/00003").status_code == 200
    if content.startswith("{not"):  # the figures are built in a process of their own: once is enough
        figures = c.get("/api/e/done/figures").json()
        assert figures["message"].startswith("1 damaged trial is left out: done/trials/00003/trial.json")
        assert len(figures["figures"]) == 7


def test_a_damaged_config_or_results_file_marks_only_that_trial(root):
    (root / "done/trials/00001/config.json").write_text('["not", "a", "config"]')
    results = root / "done/trials/00002/results.jsonl"
    rows = results.read_text().splitlines()
    results.write_text("\n".join([rows[0], "{garbage", *rows[1:]]) + "\n")
    c = client(root)
    # A config.json read once is kept (it never changes): a fresh dashboard reads the damage.
    assert c.get("/api/e/done/trials", params={"status": "DAMAGED"}).json()["rows"][0]["trial_id"] == "00001"
    trial = c.get("/api/e/done/t/00002").json()
    assert trial["damaged"].startswith("done/trials/00002/results.jsonl: line 2 is not valid JSON")
    assert len(trial["rows"]) == 1  # the rows before the damage
    figures = c.get("/api/e/done/figures").json()
    assert figures["message"].startswith("2 damaged trials are left out") and len(figures["figures"]) == 7


@pytest.mark.parametrize(("content", "fault"), [
    ("{oops", "done/experiment.json: not valid JSON"),
    ('{"name": "done", "status": ["RUNNING"]}', "field 'status' is a list, not a str"),
    ('{"name": "done", "mode": "sideways"}', "field 'mode' is 'sideways', not 'min' or 'max'"),
    ('{"status": "RUNNING"}', "it has no 'name'"),
])
def test_a_damaged_experiment_json_marks_that_experiment_only(root, content, fault):
    (root / "done/experiment.json").write_text(content)
    c = client(root)
    listed = {e["name"]: e for e in c.get("/api/experiments").json()["experiments"]}
    assert listed["done"]["status"] == "DAMAGED" and fault in listed["done"]["damaged"]
    assert listed["live"]["status"] == "RUNNING" and listed["live"]["trials"] == 6
    summary = c.get("/api/e/done").json()
    assert summary["status"] == "DAMAGED" and "damaged" in summary["not_steerable"]
    assert c.get("/e/done").status_code == 200
    assert fault in c.get("/api/e/done/figures").json()["message"]
    response = post(c, "done", {"command": "end_experiment"})
    assert response.status_code == 409 and fault in response.json()["error"]


def test_nan_and_infinite_values_go_out_as_text_not_a_500(root):
    storage = ExperimentStorage(root / "done")
    record, _, _ = storage.read_trial("00000")
    storage.write_trial("00000", {**record, "metrics": {"loss": float("nan"), "acc": float("-inf")},
                                  "best_value": float("inf")})
    c = client(root)
    trial = c.get("/api/e/done/t/00000")
    assert trial.status_code == 200 and trial.json()["record"]["metrics"] == {"loss": "NaN", "acc": "-Infinity"}
    assert c.get("/api/e/done/trials", params={"sort": "value"}).status_code == 200


# -- dead drivers -------------------------------------------------------------------------------
def test_a_sigkilled_drivers_experiment_is_interrupted_as_raytuner_ls_says(root, capsys):
    path = root / "done"
    meta = ExperimentStorage(path).read_experiment()
    ExperimentStorage(path).write_experiment({**meta, "status": "RUNNING"})
    code = ("import os, signal, sys; from raytuner._storage.lock import DriverLock; "
            "DriverLock(sys.argv[1]).acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code, str(path)])
    assert done.returncode == -signal.SIGKILL and (path / "driver.lock").is_file()
    c = client(root)
    summary = c.get("/api/e/done").json()
    assert summary["status"] == "INTERRUPTED"
    assert "Its driver is gone" in summary["not_steerable"] and f"raytuner resume {path}" in summary["not_steerable"]
    assert {e["name"]: e["status"] for e in c.get("/api/experiments").json()["experiments"]} == {
        "done": "INTERRUPTED", "live": "RUNNING"}
    assert main(["ls", str(root)]) == 0
    assert "INTERRUPTED" in capsys.readouterr().out  # the same answer as the CLI's
    response = post(c, "done", {"command": "set_limits", "args": {"max_concurrent": 2}})
    assert response.status_code == 409 and "Its driver is gone" in response.json()["error"]
    assert not (path / "control").exists()
    rows = c.get("/api/e/done/trials", params={"limit": 500}).json()["rows"]
    assert not any(r["can_stop"] or r["can_retry"] for r in rows)


def test_an_experiment_whose_trainable_was_defined_in_a_notebook_is_continued_in_python(root):
    """No command can import a trainable defined in a notebook (``__main__`` without a
    script): the page names the Python call that passes it."""
    path = root / "done"
    meta = ExperimentStorage(path).read_experiment()
    ExperimentStorage(path).write_experiment({**meta, "status": "INTERRUPTED", "trainable": "__main__:fit_mlp",
                                              "trainable_file": None})
    summary = client(root).get("/api/e/done").json()
    assert f"`raytuner.Tuner.resume({str(path)!r}, trainable=fit_mlp)` in Python continues it" in summary["not_steerable"]
    assert "raytuner resume" not in summary["not_steerable"]


def test_an_experiment_its_driver_recorded_as_interrupted_is_not_called_a_crash(root):
    # Ctrl-C or SIGTERM: the driver wound up and wrote INTERRUPTED itself.
    path = root / "done"
    ExperimentStorage(path).write_experiment({**ExperimentStorage(path).read_experiment(), "status": "INTERRUPTED"})
    summary = client(root).get("/api/e/done").json()
    assert summary["status"] == "INTERRUPTED"
    assert summary["not_steerable"].startswith("It is interrupted: no driver runs it, so there is nothing to steer.")


def test_a_live_experiment_can_be_steered_and_its_rows_say_which_trials_can_stop(root):
    storage = ExperimentStorage(root / "live")
    record, _, _ = storage.read_trial("00000")
    storage.write_trial("00000", {**record, "status": "RUNNING"})
    storage.write_trial("00001", {**record, "trial_id": "00001", "status": "FAILED"})
    c = client(root)
    assert c.get("/api/e/live").json()["not_steerable"] is None
    rows = {r["trial_id"]: r for r in c.get("/api/e/live/trials").json()["rows"]}
    assert (rows["00000"]["can_stop"], rows["00000"]["can_retry"]) == (True, False)
    assert (rows["00001"]["can_stop"], rows["00001"]["can_retry"]) == (False, True)
    assert (rows["00002"]["can_stop"], rows["00002"]["can_retry"]) == (False, False)
    assert post(c, "live", {"command": "stop_trial", "args": {"trial_id": "00000"}}).status_code == 202
    assert [cmd.args for cmd in queued(root / "live")] == [{"trial_id": "00000"}]


# -- missing folders and URIs ----------------------------------------------------------------------
def test_a_root_that_does_not_exist_is_an_error_at_start_as_in_raytuner_ls(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(DashboardError, match=rf"^No folder {missing}: there are no experiments there"):
        Dashboard(missing, port=0)
    assert main(["dashboard", str(missing), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"No folder {missing}" in err and "Traceback" not in err
    assert main(["ls", str(missing)]) == 3 and f"No folder {missing}" in capsys.readouterr().err


def test_a_bucket_uri_is_refused_saying_where_to_read_it(capsys):
    with pytest.raises(DashboardError, match=r"reads a local folder, not s3://bucket/prefix.*raytuner ls s3://"):
        Dashboard("s3://bucket/prefix", port=0)
    assert main(["dashboard", "s3://bucket/prefix", "--port", "0"]) == 2
    assert "raytuner report s3://bucket/prefix/NAME" in capsys.readouterr().err


def test_without_the_dashboard_extra_the_error_names_the_install(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if `pip install raytuner` alone
    with pytest.raises(DashboardError, match=r"needs its extra \(uvicorn is not installed\): "
                                             r"pip install 'raytuner\[dashboard\]'"):
        Dashboard(root, port=0)
