"""Values as people read them, in the CLI's tables and the HTML report: one spelling for
both, so a value reads the same wherever it is shown."""

from __future__ import annotations

import datetime
import math
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
