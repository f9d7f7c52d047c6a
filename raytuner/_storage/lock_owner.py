"""Who holds an experiment, as its driver's lock record says, and whether that driver is
alive: :class:`LockOwner`, read from a lock file (:func:`read_owner`) or a bucket's record
(:func:`bucket_owner_live`). :mod:`raytuner._storage.lock` takes and keeps the lock.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A holder on another host whose heartbeat is older than this is taken for dead.
STALE_AFTER_S = 60.0
#: A process started this long after the record that names its pid is another process.
_START_SLACK_S = 2.0


@dataclass(frozen=True)
class LockOwner:
    """Who holds an experiment, as written in its lock file."""

    pid: int
    host: str
    started: float  # when the holder took the lock (epoch seconds)
    heartbeat: float  # the holder's last sign of life (epoch seconds)
    token: str  # tells two holders with the same pid and host apart
    #: The run this driver is (experiment.json's ``run_id``): control commands are written
    #: for it. Empty in a record of an older raytuner.
    run_id: str = ""
    #: The holder's machine's boot id (Linux), which tells two machines of one host name
    #: apart, and a machine from itself before a reboot. Empty where unknown.
    boot: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockOwner:
        return cls(int(data["pid"]), str(data["host"]), float(data["started"]), float(data["heartbeat"]),
                   str(data.get("token", "")), str(data.get("run_id", "")), str(data.get("boot", "")))

    def describe(self) -> str:
        since = datetime.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {self.pid} on host {self.host!r}, running since {since}"

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return True
        return now - self.heartbeat > STALE_AFTER_S


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False  # a damaged record's; and kill(0) or kill(-1) would ask about groups
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, but alive
        return True
    return True


_BOOT_ID: str | None = None


def _boot_id() -> str:
    """This machine's boot id, or "" where there is none to read."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            _BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def on_this_machine(owner: LockOwner) -> bool:
    """Whether the record's holder ran on this machine, since its last boot."""
    return owner.host == socket.gethostname() and (not owner.boot or not _boot_id() or owner.boot == _boot_id())


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None where that cannot be told."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def bucket_owner_live(owner: LockOwner, now: float | None = None) -> bool:
    """Whether the driver a bucket's record names is alive: its heartbeat is younger than
    ``STALE_AFTER_S`` and, on this machine, its pid names a process that started before it
    took the lock (a recycled pid does not fool this). A damaged record is dead."""
    now = time.time() if now is None else now
    if now - owner.heartbeat > STALE_AFTER_S:
        return False
    if on_this_machine(owner):
        if not _pid_alive(owner.pid):
            return False
        started = _process_start(owner.pid)
        if started is not None and started > owner.started + _START_SLACK_S:
            return False
    return True


def _read_plain(path: Path) -> LockOwner | None:
    """:func:`read_owner` of a record that only mirrors a bucket's (a reader's copy), read
    only if it is a plain file: a FIFO or a link planted there holds no driver."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parse(data)


def _parse(data: bytes | str) -> LockOwner:
    try:
        return LockOwner.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError):
        return LockOwner(-1, "?", 0.0, 0.0, "")



def read_owner(path: Path) -> LockOwner | None:
    """The holder recorded in a lock file, or None if there is none. A damaged record (only a
    broken disk or a hand edit makes one: the file is always written whole) holds no live
    driver: it reads as an owner that is stale by its heartbeat."""
    try:
        return LockOwner.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return LockOwner(-1, "?", 0.0, 0.0, "")


def _dumps(owner: LockOwner) -> str:
    return json.dumps({"pid": owner.pid, "host": owner.host, "started": owner.started,
                       "heartbeat": owner.heartbeat, "token": owner.token, "run_id": owner.run_id,
                       "boot": owner.boot}) + "\n"
