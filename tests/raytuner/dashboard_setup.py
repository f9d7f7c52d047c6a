"""What the dashboard's tests share: experiments written straight into the storage layout
(no Ray), one of them held by a live driver lock, and a client of the real application."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from raytuner._storage.experiment import ExperimentStorage  # noqa: E402
from raytuner._storage.lock import DriverLock  # noqa: E402
from raytuner.dashboard._app import close, create_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_report import EVIL, write_experiment  # noqa: E402

LOOPBACK = "http://127.0.0.1"
_APPS: list = []  # made by client(): their figure builders are stopped after each test


@pytest.fixture
def root(tmp_path):
    """``done`` (COMPLETED, 12 trials, hostile config values) and ``live`` (RUNNING, with a
    live driver: this process holds its lock)."""
    root = tmp_path / "results"
    root.mkdir()
    write_experiment(root, "done", n=12, evil=True)
    path = write_experiment(root, "live", n=6, status="RUNNING")
    storage = ExperimentStorage(path)
    storage.append_log("00001", f"epoch 1 {EVIL}\n")
    storage.append_error("00002", f"Traceback ...\nValueError: {EVIL}")
    with DriverLock(path).acquire():
        yield root
    while _APPS:
        close(_APPS.pop())


def queued(path: Path) -> list:
    """What the live driver of ``path`` takes from its control folder (each command, or why
    it refused one)."""
    from raytuner._storage.control import control_store

    return control_store(path).take(ExperimentStorage(path).live_driver().run_id)


def client(root, **kw) -> TestClient:
    app = create_app(root, loopback_only=True, **kw)
    _APPS.append(app)
    return TestClient(app, base_url=LOOPBACK)


def csrf_of(page: str) -> str:
    return re.search(r'<meta name="rt-csrf" content="([^"]+)">', page).group(1)


def post(c: TestClient, exp: str, body, **kw):
    """A control POST with the page's CSRF token."""
    token = csrf_of(c.get("/").text)
    kwargs = {"content": body} if isinstance(body, (str, bytes)) else {"json": body}
    return c.post(f"/api/e/{exp}/control", headers={"X-CSRF-Token": token, **kw.pop("headers", {})}, **kwargs, **kw)
