"""Values as people read them, in the CLI's tables and the HTML report: one spelling for
both, so a value reads the same wherever it is shown; and the commands they can type."""

from __future__ import annotations

import datetime
import math
import os
import re
import shlex
import shutil
import sys
from typing import Any, Mapping


#: What a terminal would act on rather than show: C0 and C1 control characters and DEL (ESC
#: starts the sequences that retitle, clear or recolour it; CR and BS overwrite a line; a
#: newline splits a table row), the line and paragraph separators, and the bidirectional
#: overrides that make text display in another order than it reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def terminal_text(text: Any, *, newlines: bool = False) -> str:
    """``text`` safe to print to a terminal: every control character shown as its Python
    escape (``\\x1b``, ``\\n``, ``\\r``, ``\\t``, ``\\u202e``), so that a string from a
    trial (an exception message, a config value, a metric or parameter name) can neither
    drive the terminal nor split a line; anything else, ordinary unicode included, as it is.
    ``newlines``: keep line breaks (a message of several lines), escaping the rest.

    >>> terminal_text("a\\x1b[2Jb\\nc é")
    'a\\\\x1b[2Jb\\\\nc é'
    """
    text = text if isinstance(text, str) else str(text)
    return (_CONTROL_KEEP_NEWLINES if newlines else _CONTROL).sub(_visible, text)


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


def config_text(config: Mapping[str, Any], name: str, digits: int = 5) -> str:
    """A config's value of ``name`` as :func:`value_text` writes it, but a value of None as
    ``None``: ``-`` is for a parameter the config does not have (a conditional space)."""
    return "None" if name in config and config[name] is None else value_text(config.get(name), digits)


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


def _recorded(trainable: Any) -> tuple[str, str]:
    """The module and qualified name of a trainable as experiment.json records it
    (``module:qualname``); empty strings for a record that is not one."""
    module, _, qualname = (trainable if isinstance(trainable, str) else "").partition(":")
    return module, qualname


def resume_call(location: str | os.PathLike[str], trainable: Any = None) -> str:
    """The Python call that continues an experiment, the trainable passed by its name
    (``trainable``: ``module:qualname`` as experiment.json records it), which works wherever
    it was defined, a notebook included."""
    name = _recorded(trainable)[1].rsplit(".", 1)[-1]
    return f"raytuner.Tuner.resume({os.fspath(location)!r}, trainable={name if name.isidentifier() else 'train'})"


def cli_can_resume(trainable: Any, trainable_file: Any) -> bool:
    """Whether ``raytuner resume`` can import the recorded trainable (``module:qualname``):
    not one defined in a notebook or at the Python prompt (``__main__`` without a script),
    nor one defined inside a function."""
    module, qualname = _recorded(trainable)
    return bool(qualname) and "<" not in qualname and (module != "__main__" or bool(trainable_file))


def resume_hint(location: str | os.PathLike[str], trainable: Any, trainable_file: Any) -> str:
    """How to continue an experiment, as the user can paste it: ``raytuner resume`` where it
    can import the trainable (:func:`cli_can_resume`), else the Python call (:func:`resume_call`)."""
    if cli_can_resume(trainable, trainable_file):
        return cli_command("resume", location)
    module, qualname = _recorded(trainable)
    where = ("in a notebook or at the Python prompt" if module == "__main__" and "<" not in qualname
             else "where no command can import it")
    return f"{resume_call(location, trainable)} (in Python: its trainable was defined {where})"
