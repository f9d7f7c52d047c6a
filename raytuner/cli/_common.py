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
    """An experiment folder from a path or a name under ``root``; a URI as it is.

    Raises:
        CLIError: ``exp`` names no folder, neither as a path nor under ``root``: the message
            names both places (the one under ``root`` first for a bare name).
    """
    from raytuner._storage import remote

    if remote.is_uri(exp):
        return exp
    if remote.is_uri(root) and "/" not in exp:
        return remote.join(root, exp)
    path = Path(exp).expanduser()
    if remote.is_uri(root):  # a path: no local folder under a bucket's root
        return path
    under_root = Path(root).expanduser() / exp
    for place in (path, under_root):
        if (place / "experiment.json").is_file():
            return place
    if path == under_root or path.exists():  # one place, or a folder the reader's message describes
        return path
    if under_root.exists():
        return under_root
    raise _nowhere(exp, root, path, under_root)


def _nowhere(exp: str, root: str, path: Path, under_root: Path) -> CLIError:
    """The error for ``exp`` found neither as a path nor under ``root``, naming both."""
    import difflib

    as_path = f"{path.absolute()} (EXP from the current folder)"
    as_name = f"{under_root.absolute()} (EXP under --root {root})"
    first, second = (as_path, as_name) if "/" in exp else (as_name, as_path)
    root_path = Path(root).expanduser()
    try:
        names = [p.name for p in root_path.iterdir() if (p / "experiment.json").is_file()]
    except OSError:
        names = []
    close = difflib.get_close_matches(exp, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return CLIError(f"No experiment at {first}, nor at {second}: neither folder exists. Pass an experiment's folder, "
                    f"or the name of one under --root (`raytuner ls {root}` lists them).{hint}", EXIT_NOT_FOUND)


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
