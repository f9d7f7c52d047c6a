"""The live web dashboard: ``raytuner dashboard [ROOT]``, or :func:`start` in a notebook.

It lists the experiments under ROOT, shows each one live (figures, the trial table,
every trial's metrics, checkpoints, error and log) and steers a running one through
control commands (:mod:`raytuner._storage.control`). Needs ``pip install
'raytuner[dashboard]'`` (starlette, uvicorn, plotly, scikit-learn).

Security: it listens on 127.0.0.1 unless told otherwise; any other address needs an
access token (generated and printed, or given), checked on every request; control
actions are POSTs with a CSRF token, and ``read_only`` turns them off.

Example::

    from raytuner.dashboard import start
    dash = start("~/raytuner_results")   # in a notebook: returns at once
    print(dash.url)
    dash.stop()
"""

from __future__ import annotations

from raytuner.dashboard._server import Dashboard, DashboardError, serve, start

__all__ = ["Dashboard", "DashboardError", "serve", "start"]
