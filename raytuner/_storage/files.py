"""The file primitives every experiment file is written and read with.

A whole file (``experiment.json``, ``trial.json``, ``config.json``, state, control commands)
is written to a temporary file and renamed into place, so a crash leaves the old content or
the new, never a part. An append-only file (``results.jsonl``, ``error.txt``, ``log.txt``)
takes each batch in one ``write``. Both call the crash harness's hook
(:mod:`raytuner._storage.faults`) at the point where a crash would do the most damage.
Experiment names become folder names, so :func:`check_name` keeps them to one safe path
component.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from raytuner._formats import json_default
from raytuner._storage import faults
from raytuner.errors import ConfigError, ExperimentError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")


def check_name(name: str, argument: str = "name") -> str:
    """Experiment names become folder names: keep them to one safe path component."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        msg = (
            f"`{argument}={name!r}` is not a valid experiment name. Use letters, digits and "
            "'._+=-' only (no '/' or '..'), starting with a letter or digit, e.g. 'mnist_asha'."
        )
        raise ConfigError(msg)
    return name


def own_file(experiment: str | os.PathLike[str], path: str | os.PathLike[str], pages: tuple[str, ...] = ()) -> str | None:
    """What ``path`` is among the experiment's own files, which a reader's output (``raytuner
    report``, ``raytuner export``) must never replace, else None: anything in its folder
    (``experiment.json``, ``tuner.pkl``, a file it may write later, anything in ``trials/``
    or its other folders, links resolved) but a file directly in it whose name ends in one of
    ``pages`` (the report's ``.html``)."""
    target = Path(path).expanduser()
    resolved, folder = target.resolve(), Path(experiment).expanduser().resolve()
    if not resolved.is_relative_to(folder):
        return None
    if resolved.parent == folder and target.suffix.lower() in pages and resolved.suffix.lower() in pages:
        return None
    return "a file in its trials/ folder" if resolved.is_relative_to(folder / "trials") else "one of its own files"


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file, then a rename.

    The temporary name is fixed (``.<name>.tmp``): each file has one writer, the
    controller, and this is on its per-trial path, where ``mkstemp`` costs more.
    ``durable``: flush the temporary file to disk before the rename, so that a machine
    crash leaves the old file or the new one, never an empty one (for rare writes only).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if faults.at_write(path):
            faults.die()  # the crash harness: the new content is written, not yet in place
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 1, durable: bool = False) -> None:
    """``indent=None`` for files written per trial: it lets ``json`` use its C encoder."""
    atomic_write_bytes(path, (json.dumps(obj, default=json_default, indent=indent, allow_nan=True) + "\n").encode(),
                       durable=durable)


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another device, or a file system without hard links
        shutil.copy2(source, target)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON ({exc}); the file is damaged. Nothing was changed."
        raise ExperimentError(msg) from exc


def append(path: Path, data: bytes) -> None:
    """Append ``data`` to an append-only file (results, errors, log) in one write."""
    with open(path, "ab") as handle:
        if faults.at_write(path):
            handle.write(data[: len(data) // 2])  # the crash harness: a line cut short, as a crash leaves it
            handle.flush()
            faults.die()
        handle.write(data)
