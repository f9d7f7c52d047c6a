"""Values as people read them, in the CLI's tables and the HTML report: one spelling for
both, so a value reads the same wherever it is shown; and the commands they can type."""

from __future__ import annotations

import datetime
import math
import os
import shlex
import shutil
import sys
from typing import Any


def label(value: Any) -> str:
    """A value as a name: a string as it is, anything else as Python writes it."""
    return value if isinstance(value, str) else repr(value)


def value_text(value: Any, digits: int = 5) -> str:
    """A float to ``digits`` significant digits (nan and inf as they are), ``-`` for None,
    anything else as its :func:`label`."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return label(value)


def time_text(stamp: Any) -> str:
    """A time as local ``YYYY-MM-DD HH:MM``, from seconds since the epoch or an ISO string
    (the experiment's ``start_time`` or ``created``); ``-`` for None."""
    if isinstance(stamp, (int, float)):
        try:
            return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")
        except (ValueError, OverflowError, OSError):  # NaN, or past the year 9999: a hand-edited record
            return "?"
    return str(stamp or "-").replace("T", " ")[:16]


def cli_command(*args: str | os.PathLike[str]) -> str:
    """A ``raytuner`` command line the user can paste: ``raytuner ARGS`` when the console
    script is on PATH, else ``python -m raytuner.cli ARGS`` with the running interpreter (a
    virtual environment that is not activated leaves ``raytuner`` off PATH)."""
    words = [shlex.quote(os.fspath(arg)) for arg in args]
    prefix = "raytuner" if shutil.which("raytuner") else f"{shlex.quote(sys.executable)} -m raytuner.cli"
    return " ".join([prefix, *words])
