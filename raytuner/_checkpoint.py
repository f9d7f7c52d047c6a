"""Checkpoints travel as bytes: a directory packed on the worker, unpacked where needed.

Packing happens when the trial reports, so the trainable may overwrite or delete its own
directory right after ``report`` returns, and no shared file system is needed between the
worker's node and the driver's storage.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from raytuner.errors import ReportError


def pack_dir(path: str | os.PathLike[str]) -> bytes:
    """Pack a checkpoint directory into an uncompressed tar archive in memory."""
    root = Path(path)
    if not root.is_dir():
        msg = (
            f"`checkpoint={str(path)!r}` is not a directory. Pass the path of a directory "
            "that holds the checkpoint files (for example one made with tempfile.mkdtemp())."
        )
        raise ReportError(msg)
    buffer = io.BytesIO()
    # Uncompressed: model weights barely compress, and packing is on the training loop.
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name)
    return buffer.getvalue()


def unpack_to(data: bytes, target: str | os.PathLike[str]) -> Path:
    """Unpack an archive made by :func:`pack_dir` into ``target`` (created if missing)."""
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(out, filter="data")
    return out
