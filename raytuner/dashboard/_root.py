"""The experiments under the dashboard's ROOT, each read through its :class:`ExperimentView`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from raytuner._storage.experiment import EXPERIMENT_FILE
from raytuner._storage.files import check_name
from raytuner.dashboard._files import Confined
from raytuner.dashboard._store import ExperimentView, NotFound
from raytuner.errors import ConfigError


class Root:
    """The experiments under ROOT; views are made once per experiment and kept."""

    def __init__(self, root: str | Path):
        self.files = Confined(root)
        self.path = self.files.root
        self._views: dict[str, ExperimentView] = {}
        self._lock = threading.Lock()

    def _is_experiment(self, name: str) -> bool:
        try:
            check_name(name)
        except ConfigError:
            return False
        return self.files.is_file(self.path / name / EXPERIMENT_FILE)

    def names(self) -> list[str]:
        return sorted(e.name for e in self.files.folders(self.path) if self._is_experiment(e.name))

    def experiment(self, name: str) -> ExperimentView:
        """The view of experiment ``name``: a real folder in ROOT with an experiment.json."""
        if not isinstance(name, str) or not self._is_experiment(name):
            raise NotFound(f"No experiment {str(name)[:80]!r} in {self.path}.")
        with self._lock:
            view = self._views.get(name)
            if view is None:
                view = self._views[name] = ExperimentView(self.path / name, self.files)
        return view

    def listing(self) -> list[dict[str, Any]]:
        """What ``raytuner ls`` shows, for each experiment."""
        out = []
        for name in self.names():
            try:
                summary = self.experiment(name).summary()
            except NotFound:
                continue  # removed since the listing
            out.append({k: summary[k] for k in ("name", "status", "metric", "mode", "counts", "trials", "best",
                                                 "front", "start_time", "elapsed_s", "damaged")})
        out.sort(key=lambda e: e["start_time"] if isinstance(e["start_time"], (int, float)) else 0, reverse=True)
        return out
