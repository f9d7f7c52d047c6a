"""The dashboard as a Starlette application: routes as a list, plain functions as
endpoints, one middleware for access (token, host, CSRF, read-only, security headers).

Pages (``/``, ``/e/{name}``, ``/e/{name}/t/{trial}``) are skeletons; the JSON API under
``/api`` beside them is what the page script reads, and ``/api/e/{name}/events`` is a
server-sent event stream that says when the experiment's files changed (checked every
:data:`EVENT_POLL_S`, so a report shows within a second or so).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from raytuner._storage.control import ControlRefused, control_store, validate
from raytuner.dashboard import _pages
from raytuner.dashboard._figures import FigureCache
from raytuner.dashboard._store import NotFound, Root

EVENT_POLL_S = 0.5
KEEPALIVE_S = 15.0
LOG_CHUNK = 1 << 20
LOG_TAIL = 256 << 10
PAGE_LIMIT_MAX = 500
STATIC = Path(__file__).with_name("static")
COOKIE = "raytuner_token"


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


# -- helpers -------------------------------------------------------------------------------
def _state(request: Request) -> Any:
    return request.app.state


def _view(request: Request):
    return _state(request).root.experiment(request.path_params["name"])


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name}={raw!r} is not a whole number.") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name}={value} is out of range: give {low} to {high}.")
    return value


# -- pages ---------------------------------------------------------------------------------
def list_page(request: Request) -> HTMLResponse:
    s = _state(request)
    return HTMLResponse(_pages.list_page(str(s.root.path), csrf=s.csrf, read_only=s.read_only))


def experiment_page(request: Request) -> HTMLResponse:
    s = _state(request)
    view = _view(request)
    return HTMLResponse(_pages.experiment_page(view.name, csrf=s.csrf, read_only=s.read_only))


def trial_page(request: Request) -> HTMLResponse:
    s = _state(request)
    view = _view(request)
    trial_id = request.path_params["trial"]
    view.trial_path(trial_id)
    return HTMLResponse(_pages.trial_page(view.name, trial_id, csrf=s.csrf, read_only=s.read_only))


# -- the JSON API --------------------------------------------------------------------------
def api_experiments(request: Request) -> JSONResponse:
    root = _state(request).root
    return JSONResponse({"root": str(root.path), "experiments": root.listing()})


def api_experiment(request: Request) -> JSONResponse:
    return JSONResponse(_view(request).summary())


def api_trials(request: Request) -> JSONResponse:
    view = _view(request)
    q = request.query_params
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        raise HTTPException(400, f"order={order!r}: use asc or desc.")
    status = q.get("status") or None
    if status is not None and status not in ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "STOPPED", "FAILED"):
        raise HTTPException(400, f"status={status!r} is not a trial status; use PENDING, RUNNING, PAUSED, "
                                 "COMPLETED, STOPPED or FAILED.")
    try:
        page = view.table(offset=_int(request, "offset", 0, 0, 10**9), limit=_int(request, "limit", 50, 1, PAGE_LIMIT_MAX),
                          sort=q.get("sort", "trial_id"), order=order, status=status)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return JSONResponse(page)


def api_figures(request: Request) -> Response:
    view = _view(request)
    return Response(_state(request).figures.get(view), media_type="application/json")


def api_trial(request: Request) -> JSONResponse:
    return JSONResponse(_view(request).trial(request.path_params["trial"]))


def api_log(request: Request) -> JSONResponse:
    view = _view(request)
    trial_id = request.path_params["trial"]
    view.trial_path(trial_id)
    size = view.storage.log_path(trial_id).stat().st_size if view.storage.log_path(trial_id).is_file() else 0
    if request.query_params.get("offset") == "tail":
        offset = max(0, size - LOG_TAIL)
    else:
        offset = _int(request, "offset", 0, 0, 10**12)
    text, end = view.storage.read_log(trial_id, offset, LOG_CHUNK)
    return JSONResponse({"offset": end if text else offset, "size": size, "text": text,
                         "truncated_before": offset > 0 and request.query_params.get("offset") == "tail"})


async def api_control(request: Request) -> JSONResponse:
    """Queue a control command: ``{"command": "set_limits", "args": {"max_concurrent": 4}}``."""
    view = _view(request)
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, 'The body must be JSON: {"command": NAME, "args": {...}}.') from None
    if not isinstance(body, dict) or not isinstance(body.get("args", {}), dict):
        raise HTTPException(400, 'The body must be a JSON object: {"command": NAME, "args": {...}}.')
    command, args = body.get("command"), body.get("args") or {}
    try:
        validate(command, args)
    except ControlRefused as exc:
        raise HTTPException(400, str(exc)) from None
    if "trial_id" in args:
        view.trial_path(args["trial_id"])  # NotFound: 404, naming the trial
    try:
        cmd = await run_in_threadpool(control_store(view.storage).submit, command, args, origin="dashboard")
    except ControlRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return JSONResponse({"id": cmd.id, "command": cmd.command, "args": cmd.args, "queued": True}, status_code=202)


async def api_events(request: Request) -> StreamingResponse:
    view = _view(request)

    async def stream():
        yield "retry: 1000\n\n"
        last, sent = None, time.monotonic()
        while not await request.is_disconnected():
            signature = await run_in_threadpool(view.signature)
            if signature != last:
                last, sent = signature, time.monotonic()
                summary = await run_in_threadpool(view.summary)
                yield f"event: update\ndata: {json.dumps(summary)}\n\n"
            elif time.monotonic() - sent > KEEPALIVE_S:
                sent = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- static files --------------------------------------------------------------------------
def static(request: Request) -> FileResponse:
    name = request.path_params["file"]
    if name == "plotly.min.js":
        path = _plotly_js()
    elif name in ("dashboard.js", "dashboard.css"):
        path = STATIC / name
    else:
        raise HTTPException(404, f"No static file {name!r}.")
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


def favicon(request: Request) -> Response:
    return Response(status_code=204)  # browsers ask for one; a 404 would be logged as an error


# -- errors --------------------------------------------------------------------------------
def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    title = {404: "Not found", 400: "Bad request", 401: "Access token needed", 403: "Forbidden"}.get(status, "Error")
    return HTMLResponse(_pages.message_page(title, message), status_code=status)


async def _not_found(request: Request, exc: NotFound) -> Response:
    return _error(request, 404, str(exc))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    detail = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else f"No page at {request.url.path}."
    return _error(request, exc.status_code, detail)


ROUTES = [
    Route("/", list_page),
    Route("/e/{name}", experiment_page),
    Route("/e/{name}/t/{trial}", trial_page),
    Route("/api/experiments", api_experiments),
    Route("/api/e/{name}", api_experiment),
    Route("/api/e/{name}/trials", api_trials),
    Route("/api/e/{name}/figures", api_figures),
    Route("/api/e/{name}/events", api_events),
    Route("/api/e/{name}/control", api_control, methods=["POST"]),
    Route("/api/e/{name}/t/{trial}", api_trial),
    Route("/api/e/{name}/t/{trial}/log", api_log),
    Route("/static/{file}", static),
    Route("/favicon.ico", favicon),
]


# -- access --------------------------------------------------------------------------------
# 'unsafe-eval': plotly's WebGL traces (parallel coordinates) compile their draw calls with
# `new Function` (regl), and plotly ships no CSP-strict bundle in its Python package.
# Inline scripts stay forbidden, and they are what injected markup would need.
_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class Guard:
    """Every request: the access token (when one is set), the Host header (a page on
    another site cannot reach a loopback dashboard through DNS rebinding), CSRF and
    read-only on POSTs; every response: security headers."""

    def __init__(self, app: Any, *, token: str | None, csrf: str, read_only: bool, hosts: set[str] | None):
        self.app, self.token, self.csrf, self.read_only, self.hosts = app, token, csrf, read_only, hosts

    def warm_up(self) -> None:
        self.app.state.root.listing()

    def close(self) -> None:
        """Stop the figure builder's process."""
        self.app.state.figures.close()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        set_cookie = False
        problem = None
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if self.hosts is not None and host not in self.hosts:
            problem = (403, f"Host {host!r} is not this dashboard's address; open it as http://127.0.0.1:PORT/.")
        elif self.token is not None:
            given = parse_qs(scope.get("query_string", b"").decode()).get("token", [None])[0]
            bearer = request.headers.get("authorization", "")
            offered = given or request.cookies.get(COOKIE) or (bearer[7:] if bearer.startswith("Bearer ") else None)
            if offered is None or not secrets.compare_digest(offered.encode(), self.token.encode()):
                problem = (401, "This dashboard needs its access token: open the address it printed when it "
                                "started (it ends in ?token=...), or pass the token as 'Authorization: Bearer TOKEN'.")
            set_cookie = given is not None and problem is None
        if problem is None and request.method not in ("GET", "HEAD"):
            if self.read_only:
                problem = (403, "This dashboard is read-only (--read-only): control actions are off.")
            elif not secrets.compare_digest(request.headers.get("x-csrf-token", "").encode(), self.csrf.encode()):
                problem = (403, "Missing or wrong CSRF token: send control actions from the dashboard's own page "
                                "(it sets the X-CSRF-Token header).")
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict" if set_cookie else None

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
                if cookie:
                    headers.append((b"set-cookie", cookie.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if problem is not None:
            await _error(request, *problem)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def create_app(root: str | Path, *, read_only: bool = False, token: str | None = None,
               loopback_only: bool = False) -> Any:
    """The ASGI application for the experiments under ``root``.

    Args:
        root: The storage root (its experiments are its direct subfolders).
        read_only: Refuse every control action.
        token: When set, every request must carry it (``?token=`` once, then a cookie;
            or ``Authorization: Bearer``).
        loopback_only: Accept only Host headers naming this machine (127.0.0.1,
            localhost, ::1), as a loopback dashboard is reached.
    """
    csrf = secrets.token_urlsafe(24)
    app = Starlette(routes=ROUTES, exception_handlers={NotFound: _not_found, HTTPException: _http_error})
    app.state.root = Root(root)
    app.state.figures = FigureCache()
    app.state.csrf = csrf
    app.state.read_only = read_only
    hosts = {"127.0.0.1", "localhost", "::1"} if loopback_only else None
    return Guard(app, token=token, csrf=csrf, read_only=read_only, hosts=hosts)
