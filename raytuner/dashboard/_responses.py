"""The dashboard's two kinds of answer: JSON for the API, HTML for pages (errors too).

JSON has no NaN or infinity, which a trial may well report (a diverged loss): they go out
as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, which the page shows as they
are, instead of failing the whole response.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from raytuner.dashboard import _pages

_TITLES = {400: "Bad request", 401: "Access token needed", 403: "Forbidden", 404: "Not found", 405: "Not allowed",
           409: "Conflict", 413: "Too large"}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(content: Any) -> str:
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # a NaN or an infinity somewhere: rare, so walked only then
        return json.dumps(_finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def error(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error as JSON under ``/api/``, as a page elsewhere."""
    if path.startswith("/api/"):
        return JSON({"error": message}, status_code=status, headers=headers)
    title = _TITLES.get(status, "Error")
    return HTMLResponse(_pages.message_page(title, message), status_code=status, headers=headers)
