"""Whether a warm worker still runs the code on disk.

A worker kept warm after an experiment (``keep_workers_s``) keeps every module it imported.
One whose file changed since (a helper module edited beside a notebook and reloaded there,
a package reinstalled) would run its old code in the next experiment, mixed with fresh
workers running the new code, and nothing in the records would say so. Ray Tune starts new
actors for each ``fit``; Optuna and KerasTuner run in the user's process, where a reload
takes effect. So before a new experiment takes a warm worker, the worker is asked whether a
module it holds changed on disk since it started (:func:`changed_modules`); if one did, the
worker is replaced by a fresh one.
"""

from __future__ import annotations

import os
import sys


def changed_modules(since: float) -> list[str]:
    """The imported modules whose file was modified after ``since`` (a ``time.time()``).

    Conservative: a module imported after its file changed (and so up to date) counts too,
    which costs one worker start, never stale code. Modules without a file on disk (built
    in, frozen, from a zip, or deleted since) are not counted.
    """
    changed: list[str] = []
    seen: set[str] = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or path in seen:
            continue
        seen.add(path)
        try:
            if os.stat(path).st_mtime > since:
                changed.append(name)
        except OSError:
            continue
    return changed
