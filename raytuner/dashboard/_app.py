"""The dashboard as a Starlette application: routes as a list, plain functions as
endpoints, access as small middlewares (:mod:`raytuner.dashboard._guard`).

Pages (``/``, ``/e/{name}``, ``/e/{name}/t/{trial}``) are skeletons; the JSON API under
``/api`` beside them is what the page script reads, and ``/api/e/{name}/events`` is a
server-sent event stream that says when the experiment's files changed (checked every
:data:`EVENT_POLL_S`, so a report shows within a second or so).

Bad input is a 400 (404 for what does not exist, 403 for what is refused, 409 for a
command the experiment cannot take now, 413 for a body too large) with a JSON error for
the API and a page for the rest, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from raytuner._control_values import clean_command, shown
from raytuner._storage.control import ControlRefused, control_store
from raytuner.dashboard import _pages
from raytuner.dashboard._figures import FigureCache
from raytuner.dashboard._files import Refused
from raytuner.dashboard._guard import BodyLimit, HostCheck, SecurityHeaders, TokenCheck, WriteCheck
from raytuner.dashboard._records import DAMAGED, TRIAL_STATUSES
from raytuner.dashboard._responses import JSON, dumps, error
from raytuner.dashboard._root import Root
from raytuner.dashboard._store import NotFound
from raytuner.errors import ConfigError, ExperimentError

EVENT_POLL_S = 0.5
KEEPALIVE_S = 15.0
LOG_CHUNK = 1 << 20
LOG_TAIL = 256 << 10
PAGE_LIMIT_MAX = 500
STATIC = Path(__file__).with_name("static")
#: What the trial table can be filtered by: the trial statuses, and DAMAGED.
STATUS_FILTERS = (*TRIAL_STATUSES, DAMAGED)


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
        raise HTTPException(400, f"{name}={shown(raw)} is not a whole number.") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name}={shown(value)} is out of range: give {low} to {high}.")
    return value


# -- pages ---------------------------------------------------------------------------------
def list_page(request: Request) -> HTMLResponse:
    s = _state(request)
    return HTMLResponse(_pages.list_page(str(s.root.path), csrf=s.csrf, read_only=s.read_only))


def experiment_page(request: Request) -> HTMLResponse:
    s = _state(request)
    view = _view(request)
    return HTMLResponse(_pages.experiment_page(view.name, STATUS_FILTERS, csrf=s.csrf, read_only=s.read_only))


def trial_page(request: Request) -> HTMLResponse:
    s = _state(request)
    view = _view(request)
    trial_id = request.path_params["trial"]
    view.trial_path(trial_id)
    return HTMLResponse(_pages.trial_page(view.name, trial_id, csrf=s.csrf, read_only=s.read_only))


# -- the JSON API --------------------------------------------------------------------------
def api_experiments(request: Request) -> JSON:
    root = _state(request).root
    return JSON({"root": str(root.path), "experiments": root.listing()})


def api_experiment(request: Request) -> JSON:
    return JSON(_view(request).summary())


def api_trials(request: Request) -> JSON:
    view = _view(request)
    q = request.query_params
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        raise HTTPException(400, f"order={shown(order)}: use asc or desc.")
    status = q.get("status") or None
    if status is not None and status not in STATUS_FILTERS:
        raise HTTPException(400, f"status={shown(status)} is not a trial status; use {', '.join(STATUS_FILTERS)}.")
    try:
        page = view.table(offset=_int(request, "offset", 0, 0, 10**9), limit=_int(request, "limit", 50, 1, PAGE_LIMIT_MAX),
                          sort=q.get("sort", "trial_id"), order=order, status=status)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return JSON(page)


def api_figures(request: Request) -> Response:
    view = _view(request)
    return Response(_state(request).figures.get(view), media_type="application/json")


def api_trial(request: Request) -> JSON:
    return JSON(_view(request).trial(request.path_params["trial"]))


def api_log(request: Request) -> JSON:
    view = _view(request)
    path = view.log_path(request.path_params["trial"])
    tail = request.query_params.get("offset") == "tail"
    offset = 0 if tail else _int(request, "offset", 0, 0, 10**12)
    found = view.files.read(path, offset, LOG_CHUNK, tail=LOG_TAIL if tail else None)
    if found is None:
        return JSON({"offset": 0, "size": 0, "text": "", "truncated_before": False})
    return JSON({"offset": found.start + len(found.data), "size": found.size,
                 "text": found.data.decode("utf-8", "replace"), "truncated_before": tail and found.start > 0})


_COMMAND_SHAPE = 'Send a JSON object: {"command": NAME, "args": {...}}, e.g. {"command": "end_experiment"}.'


async def api_control(request: Request) -> JSON:
    """Queue a control command: ``{"command": "set_limits", "args": {"max_concurrent": 4}}``."""
    view = _view(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: brackets nested thousands deep
        raise HTTPException(400, f"The body is not valid JSON. {_COMMAND_SHAPE}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, f"The body is {shown(body)}, not an object. {_COMMAND_SHAPE}")
    extra = [key for key in body if key not in ("command", "args")]
    if extra:
        raise HTTPException(400, f"{shown(extra[0])} is not a field of a command. {_COMMAND_SHAPE}")
    try:
        cmd = clean_command(body.get("command"), body.get("args"))
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None
    cache = await run_in_threadpool(view.refresh, True)
    why = view.steering(cache)
    if why is not None:
        raise HTTPException(409, f"Experiment {view.name!r} takes no {cmd.command} now. {why}")
    if "trial_id" in cmd.args:
        view.trial_path(cmd.args["trial_id"])  # NotFound: 404, naming the trial
    if not view.control_folder_ok():
        raise Refused(f"{view.name}/control is not a folder inside the root; the dashboard writes no command there.")
    try:
        queued = await run_in_threadpool(control_store(view.storage).submit, cmd.command, cmd.args, origin="dashboard")
    except (ControlRefused, ExperimentError) as exc:
        raise HTTPException(409, str(exc)) from None
    return JSON({"id": queued.id, "command": queued.command, "args": queued.args, "queued": True}, status_code=202)


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
                yield f"event: update\ndata: {dumps(summary)}\n\n"
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
        raise HTTPException(404, f"No static file {shown(name)}.")
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


def favicon(request: Request) -> Response:
    return Response(status_code=204)  # browsers ask for one; a 404 would be logged as an error


# -- errors --------------------------------------------------------------------------------
async def _not_found(request: Request, exc: Exception) -> Response:
    return error(request.url.path, 404, str(exc))


async def _refused(request: Request, exc: Exception) -> Response:
    return error(request.url.path, 403, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else f"No page at {request.url.path[:200]}."
    if exc.status_code == 405:
        detail = f"{request.method[:20]} is not allowed at {request.url.path[:200]}."
    return error(request.url.path, exc.status_code, detail, headers=exc.headers)


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


def create_app(root: str | Path, *, read_only: bool = False, token: str | None = None,
               loopback_only: bool = False) -> Starlette:
    """The ASGI application for the experiments under ``root``.

    Args:
        root: The storage root (its experiments are its direct subfolders).
        read_only: Refuse every control action.
        token: When set, every request must carry it (``?token=`` once, then a cookie;
            or ``Authorization: Bearer``).
        loopback_only: Accept only Host headers naming this machine (localhost or a
            loopback address), as a loopback dashboard is reached.
    """
    csrf = secrets.token_urlsafe(24)
    middleware = [Middleware(SecurityHeaders)]
    if loopback_only:
        middleware.append(Middleware(HostCheck))
    if token is not None:
        middleware.append(Middleware(TokenCheck, token=token))
    middleware += [Middleware(BodyLimit), Middleware(WriteCheck, csrf=csrf, read_only=read_only)]
    app = Starlette(routes=ROUTES, middleware=middleware,
                    exception_handlers={NotFound: _not_found, Refused: _refused, HTTPException: _http_error})
    app.state.root = Root(root)
    app.state.figures = FigureCache()
    app.state.csrf = csrf
    app.state.read_only = read_only
    return app


def warm_up(app: Starlette) -> None:
    """Read every experiment once, so that the first page shows from the views' caches."""
    app.state.root.listing()


def close(app: Starlette) -> None:
    """Stop the figure builder's process."""
    app.state.figures.close()
