"""What every figure of the report shares: the :class:`Figure` record, the escaping of user
strings for plotly (which renders a subset of HTML in labels) and the common layout."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from raytuner._display import label

LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=30, b=50), height=420)


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    figure: Any  # plotly.graph_objects.Figure


def esc(text: Any) -> str:
    return html.escape(label(text), quote=False)
