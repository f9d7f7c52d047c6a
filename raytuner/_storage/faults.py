"""A testing hook: fail this process's N-th write of an experiment's files.

``RAYTUNER_FAULT_AFTER_WRITES=N[:kill|:enospc|:enospc1][:PART]``, read once per process, counts the
writes that :class:`~raytuner._storage.experiment.ExperimentStorage` makes (an append to a
trial's results, error or log file, a whole-file write, a checkpoint put in place or
deleted, a PBT clone's copy of its donor's checkpoint):

- ``kill`` (the default): the N-th write SIGKILLs the process in its middle, as a crash
  would: an append writes half its bytes, a whole-file write leaves its temporary file
  unrenamed, a checkpoint its temporary folder, a clone's copy in a bucket half its files;
- ``enospc``: the N-th write and every later one fail with ``ENOSPC``, as on a disk that
  filled up and stays full;
- ``enospc1``: the N-th write alone fails with ``ENOSPC``, as on a disk that was full for a
  moment (another process's file, deleted since): the writes after it succeed.

With ``PART``, only writes whose path contains it count: ``1:kill:/clone_`` dies in the
first clone's copy, wherever the writes before it fall.

It exists for the crash harness (tests/integration/test_crash_harness.py), which kills a
driver at every point of its write path and checks what resume makes of it. Never set it
otherwise. Unset (as always outside those tests), each write costs one comparison.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "RAYTUNER_FAULT_AFTER_WRITES"
ACTIONS = ("kill", "enospc", "enospc1")


class _Plan:
    def __init__(self, text: str | None):
        self.writes = 0
        self.at: int | None = None
        self.action = "kill"
        self.part = ""
        if text:
            count, _, rest = text.partition(":")
            action, _, self.part = rest.partition(":")
            action = action or "kill"
            if not count.isdigit() or int(count) < 1 or action not in ACTIONS:
                raise ValueError(f"{ENV}={text!r}: expected N[:kill|:enospc|:enospc1][:PART] with N >= 1")
            self.at, self.action = int(count), action


_plan = _Plan(os.environ.get(ENV))


def writes() -> int:
    """How many storage writes this process has made (counted only while the hook is set,
    and only those it counts)."""
    return _plan.writes


def reset(text: str | None) -> None:
    """Arm (or, with None, disarm) the hook in this process, as the variable would."""
    global _plan
    _plan = _Plan(text)


def at_write(path: os.PathLike[str] | str) -> bool:
    """Count one write of ``path``. True when this write is the one to die in the middle of
    (the caller writes part of it, then calls :func:`die`); raises ``OSError(ENOSPC)`` when
    this write is to find the disk full."""
    plan = _plan
    if plan.at is None or plan.part not in os.fspath(path):
        return False
    plan.writes += 1
    if plan.writes < plan.at:
        return False
    if plan.action == "enospc" or (plan.action == "enospc1" and plan.writes == plan.at):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
    return plan.action == "kill" and plan.writes == plan.at


def die() -> None:
    """SIGKILL this process: no handler, no flush, no ``finally``."""
    os.kill(os.getpid(), signal.SIGKILL)
