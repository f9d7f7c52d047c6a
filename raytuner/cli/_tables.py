"""Tables that fit a terminal: the CLI's ``ls`` and ``show``.

What a user reads or copies is never broken: a name that must be shortened loses its
middle (``keras_dig…0320``), a number is given to 5 significant digits, a header is never
split, and a column that does not fit is left out and named below the table (``--wide``
shows everything). Words in free text (a trial count, an error line) may wrap between
words, never inside one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from raytuner._display import terminal_text

ELLIPSIS = "…"
#: Rendered width of a row is the sum of the column widths plus this per gap
#: (box.SIMPLE_HEAD without edges: a space of padding, a separator, a space of padding).
GAP = 3


def number(value: Any, digits: int = 5) -> str:
    """A value for a table cell: floats to ``digits`` significant digits, None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, shortened in the middle if it must be."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def call_lines(prefix: str, call: str, width: int | None) -> list[str]:
    """``prefix + call`` (``call`` as ``Name(a=1, b='x')``, a component's repr) in lines of
    at most ``width``, broken only between arguments; later lines are indented under the
    first argument (by 4 when that is past half the width). An argument is never split,
    even one longer than the width.

    >>> call_lines("scheduler ", "ASHA(max_resource=27, reduction_factor=3)", 34)
    ['scheduler ASHA(max_resource=27,', '               reduction_factor=3)']
    """
    opening = call.find("(")
    if width is None or len(prefix) + len(call) <= width or opening < 0 or not call.endswith(")"):
        return [prefix + call]
    head = prefix + call[: opening + 1]
    indent = " " * (len(head) if len(head) <= width // 2 else 4)
    args = _top_level_args(call[opening + 1 : -1])
    lines, current = [], head
    for number, arg in enumerate(args):
        piece = arg + ("," if number < len(args) - 1 else ")")
        fresh = current == indent
        if not fresh and len(current) + (current != head) + len(piece) > width:
            lines.append(current)
            current = indent + piece
        else:
            current += ("" if fresh or current == head else " ") + piece
    return [*lines, current]


def _top_level_args(text: str) -> list[str]:
    """``a=1, b=[2, 3], c='x, y'`` as ``["a=1", "b=[2, 3]", "c='x, y'"]``."""
    args, depth, quote, start = [], 0, "", 0
    for at, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[at - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[start:at].strip())
            start = at + 1
    return [*args, text[start:].strip()] if text.strip() else args


@dataclass
class Column:
    header: str
    cells: list[str] = field(default_factory=list)
    kind: str = "name"  # "name": never wrapped (shortened in the middle); "number": never wrapped,
    # right-aligned; "text": may wrap between words
    optional: bool = False  # left out (and named below the table) when the table is too wide
    priority: int = 1  # optional columns of lower priority go first, then from the right
    max_width: int | None = None  # names longer than this are shortened in the middle
    full_header: str | None = None  # the header before any shortening, to name a left-out column

    def width(self) -> int:
        return max([len(self.header)] + [len(c) for c in self.cells])

    def min_width(self) -> int:
        """The narrowest this column can be without breaking a word."""
        if self.kind == "text":
            words = [len(w) for c in self.cells for w in c.split()]
            return max([len(self.header)] + words)
        return self.width()


def fit(columns: Sequence[Column], width: int | None) -> tuple[list[Column], list[str]]:
    """Choose and shorten columns so the table fits ``width`` (None: as wide as it needs).

    Returns the columns to show and the headers of those left out.
    """
    shown = list(columns)
    for column in shown:  # measured as shown: a control character takes the room of its escape
        column.header = terminal_text(column.header)
        column.cells = [terminal_text(cell) for cell in column.cells]
        column.full_header = None if column.full_header is None else terminal_text(column.full_header)
    if width is None:
        return shown, []
    for column in shown:
        if column.max_width is not None and column.kind == "name":
            _shorten(column, column.max_width)

    def needed(natural: bool = False) -> int:
        return sum(c.width() if natural else c.min_width() for c in shown) + GAP * (len(shown) - 1)

    # In this order: very long names give way (down to 28 characters); optional columns
    # are left out, from the right; free text wraps between words; names are cut further
    # (never below 8) only if the table still does not fit.
    _shorten_names(shown, needed(natural=True) - width, floor=28)
    hidden: list[str] = []
    while needed(natural=True) > width and any(c.optional for c in shown):
        last = min((c.priority, -i) for i, c in enumerate(shown) if c.optional)[1] * -1
        dropped = shown.pop(last)
        hidden.insert(0, dropped.full_header or dropped.header)
    _shorten_names(shown, needed() - width, floor=8)
    return shown, hidden


def _shorten_names(columns: Sequence[Column], over: int, floor: int) -> None:
    for column in sorted((c for c in columns if c.kind == "name"), key=lambda c: -c.width()):
        if over <= 0:
            return
        room = column.width() - max(floor, len(column.header))
        if room <= 0:
            continue
        cut = min(room, over)
        _shorten(column, column.width() - cut)
        over -= cut


def _shorten(column: Column, width: int) -> None:
    column.cells = [middle(c, width) for c in column.cells]
    column.header = middle(column.header, max(width, 8))


def render(columns: Sequence[Column], title: str | None = None):
    """A rich Table of ``columns`` (already fitted)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    title = None if title is None else escape(terminal_text(title))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left")
    for column in columns:
        wrap = column.kind == "text"
        table.add_column(escape(column.header), no_wrap=not wrap, min_width=column.min_width(),
                         justify="right" if column.kind == "number" else "left",
                         overflow="fold" if wrap else "ellipsis")
    for row in zip(*(c.cells for c in columns)) if columns else ():
        table.add_row(*(escape(cell) for cell in row))
    return table
