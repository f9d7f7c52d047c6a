"""TensorFlow's start-up chatter, kept off the user's console; its warnings and errors are not.

Importing TensorFlow 2.20+ writes, from C++ and straight to file descriptor 2, lines such as::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795836893.181550 31826 port.cc:153] oneDNN custom operations are on. ...

``TF_CPP_MIN_LOG_LEVEL`` no longer hides them (absl logs them before TensorFlow reads it),
and ``TF_ENABLE_ONEDNN_OPTS=0`` would change the numerics. Every worker prints them once
per process, and Ray streams them into the live table. So while ``tensorflow`` is being
imported, descriptor 2 goes to a temporary file; afterwards the file is replayed to the real
stderr less the absl notice and the INFO (``I....``) lines, which TensorFlow's own level
(``TF_CPP_MIN_LOG_LEVEL``, default here 1) would have hidden. WARNING, ERROR and FATAL lines,
and anything else written meanwhile, are replayed as they were.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from typing import Any

_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} ")  # absl's prefix: severity, then MMDD
_LEVELS = "IWEF"


def _min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1"))
    except ValueError:
        return 1


def keep(line: str, min_level: int) -> bool:
    """Whether a line written while TensorFlow loads reaches the console."""
    if line.rstrip("\n") == _ABSL_NOTICE:
        return min_level < 1
    match = _ABSL_LINE.match(line)
    return match is None or _LEVELS.index(match.group(1)) >= min_level


class _QuietImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or isinstance(spec.loader, type):
            return spec
        inner = spec.loader.exec_module  # maybe another hook's wrapper (accelerators.after_import)

        def exec_module(module: Any) -> None:
            with _filtered_stderr():
                inner(module)

        spec.loader.exec_module = exec_module  # this spec's own loader instance only
        return spec


class _filtered_stderr:
    """Descriptor 2 into a temporary file, replayed through :func:`keep` on exit."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)

    def __exit__(self, *exc: object) -> None:
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode(errors="replace")
        self._file.close()
        level = _min_level()
        kept = "".join(line for line in text.splitlines(keepends=True) if keep(line, level))
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()


def arm() -> None:
    """Quiet the next ``import tensorflow`` in this process (nothing if it is imported)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    if os.environ.get("RAYTUNER_TF_STARTUP_LOGS") == "1":  # to see everything, e.g. when debugging TF
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.meta_path.insert(0, _QuietImport())
