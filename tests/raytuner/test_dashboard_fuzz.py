"""The dashboard's API under random and hostile requests (hypothesis): every route, every
method, odd paths, queries, headers and bodies (JSON of any shape, 400-digit integers,
NaN, deep nesting, large strings, bytes that are not UTF-8).

Invariants: no answer is a 500; an error under /api/ is JSON that says what is wrong; and
nothing from outside the root is ever served, though the root holds links that lead out.
The server-sent event stream is left out: it is endless by design.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from dashboard_setup import LOOPBACK, csrf_of  # noqa: E402

from starlette.testclient import TestClient  # noqa: E402

from raytuner._storage.experiment import ExperimentStorage  # noqa: E402
from raytuner._storage.lock import DriverLock  # noqa: E402
from raytuner.dashboard._app import close, create_app  # noqa: E402

SECRET = "OUTSIDE-THE-ROOT-7f3a"
NAMES = ["done", "live", "linked", "nope", "..", ".", "%2e%2e", "..%2F..", "done%00", "live/../done", ""]
TRIALS = ["00000", "00001", "00002", "00009", "99999", "..", "%2e%2e", "0" * 65, "a/b", ""]
ROUTES = ["/", "/e/{name}", "/e/{name}/t/{trial}", "/api/experiments", "/api/e/{name}", "/api/e/{name}/trials",
          "/api/e/{name}/figures", "/api/e/{name}/control", "/api/e/{name}/t/{trial}", "/api/e/{name}/t/{trial}/log",
          "/static/{file}", "/favicon.ico", "/api/e/{name}/t/{trial}/{extra}", "/{extra}"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from test_report import EVIL, write_experiment

    base = tmp_path_factory.mktemp("fuzz")
    root, outside = base / "results", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    write_experiment(outside, "elsewhere", n=3)
    ExperimentStorage(outside / "elsewhere").append_log("00000", SECRET)
    write_experiment(root, "done", n=6, evil=True)
    live = write_experiment(root, "live", n=4, status="RUNNING")
    (root / "linked").symlink_to(outside / "elsewhere")
    (live / "trials/00009").symlink_to(outside / "elsewhere/trials/00000")
    (live / "trials/00001/log.txt").symlink_to(outside / "secret.txt")
    (live / "trials/00002/error.txt").symlink_to(outside / "secret.txt")
    ExperimentStorage(live).append_log("00000", f"hello {EVIL}\n")
    application = create_app(root, loopback_only=True)
    with DriverLock(live).acquire():
        yield application
    close(application)


def _segment(choices: list[str]) -> st.SearchStrategy[str]:
    free = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30).map(lambda t: quote(t, safe=""))
    return st.sampled_from(choices) | free


_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=40) | st.sampled_from([10**400, -(10**400), 1e308, "00001", "set_limits"])
            | st.integers(30_000, 70_000).map(lambda n: "x" * n))
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["command", "args", "max_concurrent", "num_trials", "time_budget_s", "trial_id", "x"])
    | st.text(max_size=10), inner, max_size=4), max_leaves=10)
_NUMBERS = (st.integers(-5, 20_000) | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
            | st.sampled_from([10**400, 1e308, 10_000, 10_000_000, 315_576_000, True]))
_ARGS = st.fixed_dictionaries({}, optional={
    "max_concurrent": _NUMBERS, "num_trials": _NUMBERS, "time_budget_s": _NUMBERS,
    "trial_id": st.sampled_from(["00000", "00001", "00003", "00009", "99999"]) | _SCALARS}) | _JSON
_WELL_FORMED = st.one_of(
    st.just({"command": "end_experiment"}),
    st.builds(lambda n: {"command": "set_limits", "args": {"max_concurrent": n}}, _NUMBERS),
    st.builds(lambda n: {"command": "set_limits", "args": {"num_trials": n}}, _NUMBERS),
    st.builds(lambda n: {"command": "set_limits", "args": {"time_budget_s": n}}, _NUMBERS),
    st.builds(lambda c, t: {"command": c, "args": {"trial_id": t}}, st.sampled_from(["stop_trial", "retry_trial"]),
              st.sampled_from(["00000", "00001", "00003", "00009", "99999", "../00001"]) | _SCALARS),
)
_COMMANDS = _WELL_FORMED | st.fixed_dictionaries({"command": st.sampled_from(["set_limits", "stop_trial", "retry_trial",
                                                               "end_experiment"]) | _SCALARS},
                                  optional={"args": _ARGS})


@st.composite
def _body(draw) -> bytes:
    kind = draw(st.sampled_from(["command", "command", "command", "json", "nested", "bytes"]))
    if kind == "nested":
        depth = draw(st.integers(1, 40_000))
        return b"[" * depth + b"]" * depth
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    value = draw(_COMMANDS if kind == "command" else _JSON)
    return json.dumps(value, allow_nan=True).encode()


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


GET_ROUTES = [r for r in ROUTES if r != "/api/e/{name}/control"]


@st.composite
def _request(draw) -> dict:
    """Six in ten aimed at a real experiment and trial, with the page's CSRF token and plain
    headers (so that hostile bodies and queries reach the code behind the checks); the rest
    anything at all."""
    if draw(st.integers(0, 9)) < 6:
        method = draw(st.sampled_from(["GET", "POST"]))
        route = "/api/e/{name}/control" if method == "POST" else draw(st.sampled_from(GET_ROUTES))
        names, trials = st.sampled_from(["done", "live"]), st.sampled_from(["00000", "00001", "00002", "00003"])
        csrf, headers = "page", {}
    else:
        method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]))
        route = draw(st.sampled_from(ROUTES))
        names, trials = _segment(NAMES), _segment(TRIALS)
        csrf = draw(st.sampled_from(["page", "wrong", None]))
        headers = draw(st.dictionaries(
            st.sampled_from(["Host", "Cookie", "Authorization", "Content-Type", "Accept", "Range", "Origin"]),
            st.sampled_from(["[::1]:80", "localhost", "127.0.0.1:1", "evil.example", "[::1", "raytuner_token_80=x",
                             "Bearer x"]) | _HEADER_TEXT, max_size=3))
    path = route.format(name=draw(names), trial=draw(trials), extra=draw(_segment(["log", "x"])),
                        file=draw(_segment(["dashboard.js", "plotly.min.js", "../_app.py", "x"])))
    query = draw(st.dictionaries(st.sampled_from(["offset", "limit", "sort", "order", "status", "token"])
                                 | st.text(max_size=8),
                                 st.sampled_from(["tail", "-1", "0", "1" * 500, "desc", "value", "config.lr",
                                                  "DAMAGED", "RUNNING"]) | st.text(max_size=30), max_size=4))
    body = draw(_body()) if method in ("POST", "PUT", "PATCH") else None
    return {"method": method, "path": path, "query": query, "headers": headers, "csrf": csrf, "body": body}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=_request())
def test_no_request_gets_a_500_or_anything_from_outside_the_root(app, request):
    c = TestClient(app, base_url=LOOPBACK)
    headers = dict(request["headers"])
    if request["csrf"] == "page":
        headers["X-CSRF-Token"] = csrf_of(c.get("/").text)
    elif request["csrf"] == "wrong":
        headers["X-CSRF-Token"] = "wrong"
    response = c.request(request["method"], request["path"], params=request["query"], headers=headers,
                         content=request["body"])
    event(f"{request['method'] if request['method'] in ('GET', 'POST') else 'other'} {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert SECRET not in response.text
    if response.status_code >= 400 and response.url.path.startswith("/api/") and request["method"] != "HEAD":
        assert response.headers["content-type"] == "application/json", response.text[:200]
        assert response.json()["error"]
