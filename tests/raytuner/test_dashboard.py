"""The dashboard over HTTP: every endpoint, bad input, traversal, injection, access.

Experiments are written straight into the storage layout (no Ray); most requests go
through Starlette's TestClient to the real application, and the server-sent events,
the port in use and the non-loopback token through a real server on a free loopback
port.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dashboard_setup import EVIL, client, csrf_of, post, queued, root  # noqa: E402,F401 - root: a fixture

import httpx2 as httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from raytuner._storage.experiment import ExperimentStorage  # noqa: E402
from raytuner.cli import main  # noqa: E402
from raytuner.dashboard import Dashboard, DashboardError, start  # noqa: E402
from raytuner.dashboard._app import create_app  # noqa: E402


# -- pages and the JSON API ---------------------------------------------------------------------
def test_the_list_shows_what_raytuner_ls_shows(root):
    c = client(root)
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    data = c.get("/api/experiments").json()
    by_name = {e["name"]: e for e in data["experiments"]}
    assert set(by_name) == {"done", "live"}
    done = by_name["done"]
    assert (done["status"], done["trials"], done["counts"]) == ("COMPLETED", 12, {"COMPLETED": 4, "STOPPED": 8})
    assert done["best"]["value"] == pytest.approx(min(
        json.loads((root / f"done/trials/{i:05d}/trial.json").read_text())["metrics"]["loss"] for i in range(12)))
    assert done["elapsed_s"] == pytest.approx(100, abs=1)


def test_the_elapsed_time_is_the_run_time_and_counts_on_while_a_driver_runs(root):
    c = client(root)
    done = ExperimentStorage(root / "done")
    done.write_experiment({**done.read_experiment(), "start_time": time.time() - 86_400, "run_time_s": 42.5,
                           "run_time_at": time.time() - 3_600})
    assert c.get("/api/e/done").json()["elapsed_s"] == 42.5  # not the day between its runs, nor the hour since
    live = ExperimentStorage(root / "live")  # its driver (the fixture) wrote 10 s of run time 5 s ago
    live.write_experiment({**live.read_experiment(), "run_time_s": 10.0, "run_time_at": time.time() - 5})
    assert 15 <= c.get("/api/e/live").json()["elapsed_s"] < 75


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: None])
def test_a_root_with_no_experiments_says_so(tmp_path, make):
    empty = tmp_path / "empty"
    make(empty)
    c = client(empty)
    assert c.get("/api/experiments").json()["experiments"] == []
    page = c.get("/").text
    assert "No experiments in <code>" in page and str(empty) in page


def test_the_experiment_summary_has_status_counts_best_limits_and_rungs(root):
    c = client(root)
    assert c.get("/e/live").status_code == 200
    s = c.get("/api/e/done").json()
    assert (s["status"], s["metric"], s["searcher"]) == ("COMPLETED", "loss", "RandomSearcher")
    assert s["rungs"] == [1, 3] and s["scheduler"].startswith("ASHAScheduler")
    assert s["counts"] == {"COMPLETED": 4, "STOPPED": 8} and s["history"] == []


def test_the_trial_table_pages_sorts_and_filters_on_the_server(root):
    c = client(root)
    first = c.get("/api/e/done/trials", params={"limit": 5}).json()
    assert (first["total"], [r["trial_id"] for r in first["rows"]]) == (12, [f"{i:05d}" for i in range(5)])
    second = c.get("/api/e/done/trials", params={"limit": 5, "offset": 10}).json()
    assert [r["trial_id"] for r in second["rows"]] == ["00010", "00011"]
    ranked = c.get("/api/e/done/trials", params={"sort": "value", "order": "desc", "limit": 100}).json()["rows"]
    values = [r["value"] for r in ranked]
    assert values == sorted(values, reverse=True)
    by_lr = c.get("/api/e/done/trials", params={"sort": "config.lr", "limit": 100}).json()["rows"]
    assert [r["config"]["lr"] for r in by_lr] == sorted(r["config"]["lr"] for r in by_lr)
    completed = c.get("/api/e/done/trials", params={"status": "COMPLETED"}).json()
    assert completed["total"] == 4 and {r["status"] for r in completed["rows"]} == {"COMPLETED"}


@pytest.mark.parametrize("query", [
    {"limit": "0"}, {"limit": "501"}, {"offset": "-1"}, {"limit": "many"}, {"order": "sideways"},
    {"sort": "__class__"}, {"status": "ALIVE"},
])
def test_malformed_table_queries_get_a_400_with_the_reason(root, query):
    response = client(root).get("/api/e/done/trials", params=query)
    assert response.status_code == 400
    (name, value), = query.items()
    assert name in response.json()["error"] and value in response.json()["error"]


def test_a_script_that_starts_the_dashboard_unguarded_runs_once(root, tmp_path):
    """A script without ``if __name__ == "__main__":`` that starts the dashboard and asks
    for figures: their builder is a process of its own, which must not run the script again
    (a multiprocessing "spawn" child imports the main script: it started a second dashboard,
    and would start a second sweep)."""
    import subprocess
    import sys

    marks = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(f"""
import json, urllib.request
import raytuner.dashboard
with open({str(marks)!r}, "a") as f:
    f.write("ran\\n")
dash = raytuner.dashboard.start({str(root)!r})
with urllib.request.urlopen(dash.url.rstrip("/") + "/api/e/done/figures", timeout=120) as answer:
    figures = json.loads(answer.read())["figures"]
print(len(figures))
dash.stop()
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 0  # figures were built
    assert marks.read_text() == "ran\n"


def test_the_figures_are_the_reports_own(root):
    from raytuner._report import _figures

    data = client(root).get("/api/e/done/figures").json()
    keys = [f["key"] for f in data["figures"]]
    assert len(keys) == len(_figures.BUILDERS) - 1  # the population figure is for PBT experiments only
    assert keys == ["history", "parallel", "learning_curves", "slices", "contour", "importance", "durations"]
    assert all(f["spec"]["data"] for f in data["figures"] if "spec" in f)
    # Labels are escaped for plotly, which renders HTML in them; parallel coordinates' tick
    # labels are the one place plotly writes as plain text, so they hold the raw value.
    for figure in data["figures"]:
        for trace in figure.get("spec", {}).get("data", []):
            for dim in trace.get("dimensions", []):
                dim.pop("ticktext", None)
    assert EVIL not in json.dumps(data)


def test_the_trial_api_has_config_history_checkpoints_error_and_log(root):
    c = client(root)
    assert c.get("/e/done/t/00001").status_code == 200
    t = c.get("/api/e/live/t/00001").json()
    assert t["record"]["status"] == "STOPPED" and len(t["rows"]) == 3 and t["config"]["lr"] > 0
    assert t["checkpoints"] == []
    assert c.get("/api/e/live/t/00002").json()["error"].endswith(f"ValueError: {EVIL}\n")
    log = c.get("/api/e/live/t/00001/log", params={"offset": "tail"}).json()
    assert log["text"] == f"epoch 1 {EVIL}\n" and log["offset"] == log["size"]
    assert c.get("/api/e/live/t/00001/log", params={"offset": log["offset"]}).json()["text"] == ""


def test_the_static_files_come_from_installed_packages(root):
    c = client(root)
    plotly_js = c.get("/static/plotly.min.js")
    assert plotly_js.status_code == 200 and b"plotly" in plotly_js.content[:2000].lower()
    assert c.get("/static/dashboard.js").status_code == 200
    assert c.get("/static/../pyproject.toml").status_code == 404
    assert c.get("/static/_app.py").status_code == 404


# -- bad input, traversal, injection ---------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/e/nope", "/api/e/nope", "/e/done/t/99999", "/api/e/done/t/99999", "/api/e/done/t/99999/log",
    "/e/%2e%2e", "/api/e/..%2F..%2Fetc/trials", "/api/e/%2Fetc", "/e/done/t/..%2F..%2Fexperiment.json",
    "/api/e/done/t/00001%2F..%2F..%2Flive/log", "/api/e/done%00/trials", "/e/done/t/%2E%2E",
    "/e/.hidden", "/nowhere",
])
def test_unknown_or_traversing_urls_are_404s_that_name_nothing_outside_root(root, path):
    response = client(root).get(path)
    assert response.status_code == 404
    if path.startswith("/api/"):
        assert "error" in response.json()
    else:
        assert "<h1>Not found</h1>" in response.text


def test_user_data_never_reaches_a_page_unescaped(root, tmp_path):
    storage = ExperimentStorage(root / "done")
    meta = storage.read_experiment()
    storage.write_experiment({**meta, "metric": EVIL, "searcher": EVIL, "scheduler": EVIL})
    c = client(root)
    for url in ("/", "/e/done", "/e/done/t/00001", "/e/nope", "/e/done/t/99999"):
        assert EVIL not in c.get(url).text
    # The API carries user data as JSON (the page sets it as text), never as HTML.
    response = c.get("/api/e/done")
    assert response.headers["content-type"] == "application/json" and response.json()["metric"] == EVIL
    csp = response.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-eval';" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert response.headers["x-content-type-options"] == "nosniff"


# -- control -------------------------------------------------------------------------------------
def test_control_posts_need_the_csrf_token_and_queue_a_command(root):
    c = client(root)
    token = csrf_of(c.get("/e/live").text)
    body = {"command": "set_limits", "args": {"max_concurrent": 3}}
    assert c.post("/api/e/live/control", json=body).status_code == 403
    assert c.post("/api/e/live/control", json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    response = c.post("/api/e/live/control", json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 202
    (command,) = queued(root / "live")
    assert (command.id, command.command, command.args, command.origin, command.run_id) == (
        response.json()["id"], "set_limits", {"max_concurrent": 3}, "dashboard",
        ExperimentStorage(root / "live").live_driver().run_id)  # written for the live run: applied


@pytest.mark.parametrize(("exp", "body", "status", "says"), [
    ("live", "not json", 400, "The body is not valid JSON"),
    ("live", [1, 2], 400, "The body is a list of 2 items, not an object"),
    ("live", {"command": "format_disk"}, 400, "`command` is 'format_disk', but must be one of stop_trial"),
    ("live", {"command": "end_experiment", "force": True}, 400, "'force' is not a field of a command"),
    ("live", {"command": "set_limits", "args": {"max_concurrent": -2}}, 400, "`max_concurrent` is -2"),
    ("live", {"command": "set_limits", "args": {"num_trials": "lots"}}, 400, "`num_trials` is 'lots'"),
    ("live", {"command": "set_limits", "args": {}}, 400, "needs at least one"),
    ("live", {"command": "stop_trial", "args": {"trial_id": "../x"}}, 400, "`trial_id` is '../x'"),
    ("live", {"command": "stop_trial", "args": {"trial_id": "99999"}}, 404, "No trial '99999'"),
    ("done", {"command": "end_experiment"}, 409, "It is completed: no driver runs it"),
    ("nope", {"command": "end_experiment"}, 404, "No experiment 'nope'"),
])
def test_malformed_or_impossible_commands_are_refused_saying_why(root, exp, body, status, says):
    response = post(client(root), exp, body)
    assert response.status_code == status
    assert says in response.json()["error"]
    assert not queued(root / "live")


def test_read_only_refuses_control_and_hides_its_buttons(root):
    c = client(root, read_only=True)
    page = c.get("/e/live").text
    assert 'id="limits"' not in page and '<meta name="rt-read-only" content="1">' in page
    response = c.post("/api/e/live/control", json={"command": "end_experiment"},
                      headers={"X-CSRF-Token": csrf_of(page)})
    assert response.status_code == 403 and "read-only" in response.json()["error"]


# -- access ----------------------------------------------------------------------------------------
def test_a_token_is_checked_on_every_request(root):
    secret = "s3cret-s3cret-s3cret"
    c = TestClient(create_app(root, token=secret), base_url="http://10.1.2.3:9265")
    for url in ("/", "/api/experiments", "/static/dashboard.js", "/api/e/live/events"):
        assert c.get(url).status_code == 401
    assert c.get("/", params={"token": "wrong"}).status_code == 401
    assert c.get("/api/experiments", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    first = c.get("/", params={"token": secret})
    assert first.status_code == 200
    assert first.headers["set-cookie"] == f"raytuner_token_9265={secret}; Path=/; HttpOnly; SameSite=Strict"
    assert c.get("/api/experiments").status_code == 200  # the cookie carries it from then on
    assert "set-cookie" not in c.get("/", params={"token": ""}).headers  # an empty one leaves the cookie be
    assert c.get("/api/experiments").status_code == 200


def test_a_loopback_dashboard_answers_only_to_its_own_host_names(root):
    c = client(root)
    assert c.get("/", headers={"Host": "evil.example:9265"}).status_code == 403
    assert c.get("/", headers={"Host": "localhost:9265"}).status_code == 200


# -- a real server ---------------------------------------------------------------------------------
def _events(response):
    """(event, data) pairs from a server-sent event stream."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def test_a_report_reaches_the_page_as_a_server_sent_event_within_two_seconds(root):
    storage = ExperimentStorage(root / "live")
    record = json.loads((storage.trial_path("00000") / "trial.json").read_text())
    storage.write_trial("00000", {**record, "status": "RUNNING"})
    with start(root) as dash, httpx.Client(base_url=f"http://127.0.0.1:{dash.port}", timeout=10) as http:
        with http.stream("GET", "/api/e/live/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
            event, first = next(events)
            assert event == "update" and first["counts"]["RUNNING"] == 1
            written = time.monotonic()
            storage.append_results("00000", [{"loss": -5.0, "iteration": 99, "time_total_s": 1.0, "timestamp": 0}])
            event, second = next(events)
            assert time.monotonic() - written < 2.0
            assert second["best"] == {"trial_id": "00000", "value": -5.0}
        page = http.get("/api/e/live/trials", params={"status": "RUNNING"}).json()
        assert page["rows"][0]["iteration"] == 99  # a running trial's latest report, from results.jsonl


def test_a_port_in_use_is_a_clear_error_naming_the_port(root):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DashboardError, match=rf"Port {port} on 127.0.0.1 is already in use.*--port 0"):
            Dashboard(root, port=port)
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["dashboard", str(root), "--port", str(port)])
        assert code == 2 and f"Port {port}" in err.getvalue() and "Traceback" not in err.getvalue()


def test_a_non_loopback_dashboard_generates_a_token_and_requires_it(root):
    dash = Dashboard(root, host="0.0.0.0", port=0).start()
    try:
        assert dash.token and dash.url.endswith(f"/?token={dash.token}")
        base = f"http://127.0.0.1:{dash.port}"
        assert httpx.get(base + "/api/experiments").status_code == 401
        assert httpx.get(base + "/api/experiments", headers={"Authorization": f"Bearer {dash.token}"}).status_code == 200
    finally:
        dash.stop()


# -- the CLI's logs command ---------------------------------------------------------------------------
def test_raytuner_logs_prints_a_trials_log_and_refuses_unknown_trials(root, capsys):
    assert main(["logs", str(root / "live"), "00001"]) == 0
    assert capsys.readouterr().out == f"epoch 1 {EVIL}\n"
    assert main(["logs", str(root / "live"), "00001", "-f"]) == 0  # RUNNING, but the trial ended: returns
    assert main(["logs", str(root / "live"), "../done"]) == 3
    assert "has no trial '../done'" in capsys.readouterr().err
