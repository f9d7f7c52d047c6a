"""The HTML report of an experiment: :meth:`raytuner.Results.report` and ``raytuner report``.

One self-contained file (plotly.js inline, no network) with the optimisation history,
parallel coordinates, learning curves with the scheduler's rungs, a PBT population with
its exploits, slice plots, a contour of the two most important parameters, parameter
importance and the trials table; with several objectives first the Pareto front, each
objective's history and the hypervolume over time. Needs plotly (``pip install
'raytuner[plot]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from raytuner.errors import ConfigError, invalid

if TYPE_CHECKING:
    from raytuner._report._data import Results

__all__ = ["output_path", "write_report"]

_TITLES = {
    "history": "Optimisation history",
    "parallel": "Parallel coordinates",
    "learning_curves": "Learning curves",
    "population": "Population",
    "slices": "Slice plots",
    "contour": "Contour",
    "importances": "Parameter importance",
    "durations": "Trial durations",
    # With several objectives (raytuner._report._pareto_figures), drawn first.
    "front": "Pareto front",
    "objective_histories": "Objectives over the trials",
    "hypervolume": "Hypervolume over time",
}


def builders(data: Any) -> tuple[Callable[[Any], Any], ...]:
    """The figure builders for ``data`` (a :class:`_data.ReportData`), in page order: the
    Pareto figures first when the experiment has several objectives."""
    from raytuner._report import _figures, _pareto_figures

    if data.results.objectives.multi:
        return _pareto_figures.BUILDERS + _figures.BUILDERS
    return _figures.BUILDERS


_HTML = (".html", ".htm")


def output_path(results: Results, path: str | os.PathLike[str]) -> Path:
    """The file the report goes to (a folder: its ``report.html``), refused with a
    ConfigError where writing it would damage something: in the experiment's folder, any
    name but an .html/.htm page directly in it (``experiment.json``, ``tuner.pkl``, a file
    it may write later, anything in ``trials/`` or its other folders); elsewhere, an
    existing file that is not an HTML page (a report replaces the file it is written to)."""
    from raytuner._storage.files import own_file

    target = Path(path).expanduser()
    if target.is_dir():
        target = target / "report.html"
    resolved = target.resolve()
    html = target.suffix.lower() in _HTML and resolved.suffix.lower() in _HTML
    what = own_file(results.path, target, pages=_HTML)
    if what is not None:
        experiment = Path(results.path).expanduser().resolve()
        raise invalid("report", "path", str(path),
                      f"an .html page directly in the experiment's folder, or a path outside it: this is {what}, "
                      "which the report would replace",
                      f"Pass e.g. {str(experiment / 'report.html')!r} (the default) or a path outside the experiment "
                      "ending in .html.")
    if (resolved.exists() or target.is_symlink()) and not html:
        raise invalid("report", "path", str(path),
                      "a new file or an .html/.htm page: this is an existing file, which the report would replace",
                      "Pass a path ending in .html, or move that file away first.")
    return target


def write_report(results: Results, path: str | os.PathLike[str], *, metric: str | None = None,
                 mode: str | None = None) -> Path:
    """Write the report of ``results`` to ``path`` (an .html file) and return its path.

    Raises:
        ExperimentError: the experiment has no trials, or none reported a finite ``metric``.
        ConfigError: plotly is not installed, or ``mode`` is not "min"/"max".
    """
    try:
        import plotly  # noqa: F401
    except ImportError:
        msg = "The HTML report needs plotly, which is not installed. Install it: pip install 'raytuner[plot]'."
        raise ConfigError(msg) from None
    if mode not in (None, "min", "max"):
        raise invalid("report", "mode", mode, "'min', 'max' or None", "Pass mode='min' or 'max', or None for the experiment's.")
    target = output_path(results, path)
    from raytuner._report import _data, _figures, _page

    data = _data.collect(results, metric, mode)
    figures: list = []
    for build in builders(data):
        made = build(data)
        if made is not None:  # None: the figure does not apply to this experiment
            figures.append(made if isinstance(made, _figures.Figure) else (_TITLES[build.__name__], made))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + rename, like the storage, but with the umask's permissions (mkstemp's
    # 0600 would keep a report meant for sharing unreadable to others).
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(_page.render(data, figures), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
