"""The experiment page's figures: the HTML report's own builders (raytuner._report), as
plotly JSON that the page draws in place with ``Plotly.react``.

Building them reads every trial's results, so a build is cached until the experiment's
files change, and is not redone more often than every few times its own cost (at least
:data:`MIN_INTERVAL_S`): on a large sweep the figures lag a little; the summary and the
table never do.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from raytuner.dashboard._store import ExperimentView
from raytuner.errors import ExperimentError

MIN_INTERVAL_S = 1.5


@dataclass
class _Built:
    signature: tuple
    at: float
    cost: float
    payload: str


class FigureCache:
    def __init__(self) -> None:
        self._built: dict[str, _Built] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, view: ExperimentView) -> str:
        """The figures as a JSON document: ``{"figures": [...], "message": ...}``."""
        with self._guard:
            lock = self._locks.setdefault(view.name, threading.Lock())
        with lock:  # one build per experiment at a time; the others wait and share it
            signature = view.signature()
            built = self._built.get(view.name)
            now = time.monotonic()
            if built is not None and (built.signature == signature
                                      or now - built.at < max(MIN_INTERVAL_S, 3 * built.cost)):
                return built.payload
            payload = build(view)
            self._built[view.name] = _Built(signature, time.monotonic(), time.monotonic() - now, payload)
            return payload


def build(view: ExperimentView) -> str:
    import raytuner
    from raytuner._report import _TITLES, _data, _figures

    try:
        data = _data.collect(raytuner.load(view.storage.path))
    except ExperimentError as exc:
        return json.dumps({"figures": [], "message": str(exc)})
    parts = []
    for builder in _figures.BUILDERS:
        made = builder(data)
        if isinstance(made, _figures.Figure):
            head = json.dumps({"key": made.key, "title": made.title, "caption": made.caption})
            # plotly's own encoder (numpy arrays, dates), spliced in as it is.
            parts.append(head[:-1] + ', "spec": ' + made.figure.to_json() + "}")
        else:
            parts.append(json.dumps({"key": builder.__name__, "title": _TITLES[builder.__name__], "skipped": made}))
    return '{"figures": [' + ", ".join(parts) + '], "message": null}'
