"""What every command of the ``raytuner`` CLI shares: exit codes, the error a user can fix,
finding an experiment by path or name, and printing to the terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_EMPTY, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class CLIError(Exception):
    """A failure the user can fix; printed as one message, without a traceback."""

    def __init__(self, message: str, code: int = EXIT_EMPTY):
        super().__init__(message)
        self.code = code


def rich_console(stderr: bool = False, wide: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output goes to files and grep, not a screen: don't fold it at 80 columns.
    tty = hasattr(stream, "isatty") and stream.isatty()
    width = None if (tty or "COLUMNS" in os.environ) and not wide else 100_000 if wide else 200
    return Console(file=stream, highlight=False, soft_wrap=False, width=width)


def print_table(console, columns, *, wide: bool, title: str | None = None) -> list[str]:
    """Fit ``columns`` to the terminal (all of them with ``--wide``) and print; returns the
    headers of columns left out."""
    from raytuner.cli import _tables

    shown, hidden = _tables.fit(columns, None if wide else console.width)
    console.print(_tables.render(shown, title), crop=False)
    return hidden


def locate(exp: str, root: str) -> Path | str:
    """An experiment folder from a path or a name under ``root``; a URI as it is."""
    from raytuner._storage import remote

    if remote.is_uri(exp):
        return exp
    if remote.is_uri(root) and "/" not in exp:
        return remote.join(root, exp)
    path = Path(exp).expanduser()
    if not (path / "experiment.json").is_file():
        under_root = Path(root).expanduser() / exp
        if (under_root / "experiment.json").is_file():
            return under_root
    return path


def load(exp: str, root: str):
    import raytuner
    from raytuner.errors import ConfigError, ExperimentError

    try:
        return raytuner.load(locate(exp, root))
    except (ExperimentError, ConfigError) as exc:  # ConfigError: a URI with no file system or credentials
        raise CLIError(str(exc), EXIT_NOT_FOUND) from None


def escape(text: Any, *, newlines: bool = False) -> str:
    """``text`` for ``console.print``: rich's markup escaped, and control characters shown
    as escapes (:func:`raytuner._display.terminal_text`; ``newlines`` keeps line breaks)."""
    from rich.markup import escape

    from raytuner._display import terminal_text

    return escape(terminal_text(text, newlines=newlines))
