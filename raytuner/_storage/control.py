"""Control commands and their history, as files in the experiment's folder.

::

    <experiment>/
        control/<time_ns>-<id>.json   a command waiting for the driver (atomic: written
                                      as .<name>.tmp, then renamed; the driver deletes it
                                      once its outcome is in the history)
        control/rejected/<name>       a file the driver would not apply (bad, or for another
                                      run), set aside so that no later run meets it again
        history.jsonl                 one line per file the driver took up: when, from
                                      where, what, and whether it was applied and why

Files, not a socket: whoever can write the experiment's folder can steer it (the CLI, a
dashboard on the head node), and nothing listens on a port. Writers check what they can (a
live driver runs the experiment, the trial exists) and refuse with a message; the driver's
lifecycle decides the rest and its answer lands in the history.

**Bound to a run.** Each command carries the ``run_id`` of the live driver it was written
for (from the driver's lock record: :meth:`ExperimentStorage.live_driver`). The driver
applies only its own run's commands: one written while no driver was alive, or for an
earlier run, is refused and recorded, never applied at a later resume.

**A reader that cannot be poisoned.** Anyone who can write the folder can put anything in
it, so the driver's reader (:meth:`ControlStore.take`) trusts nothing: only regular files
(``lstat``: no links, FIFOs, folders), at most :data:`MAX_FILE_BYTES`, opened with
``O_NONBLOCK | O_NOFOLLOW`` (it never blocks), values checked by
:func:`raytuner._control_values.clean_command`. A file that fails is moved to ``rejected/``
(removed, where it cannot be moved) with its reason in the history; an error in one file
refuses that file, never the driver.

``history.jsonl`` is append-only: the driver's first append cuts a torn tail
(:func:`raytuner._storage.history.repair_tail`), and each append is fsynced (commands are
rare, and what was applied must survive a machine crash).

**Across a crash.** A command's file stays in ``control/`` until its outcome is in the
history (:meth:`ControlStore.done`; a refused one's, :meth:`ControlStore.set_aside`), so a
driver killed in between leaves it for the next run, which refuses it (written for an
earlier run) and records that: no command is taken and lost without a line. A file whose
outcome the history already holds (killed after the line, before the file went: the line
names the file and the command's id) is removed, or set aside if its line refused it,
without a second line; a new command under the name of a recorded one is taken up as any.
The driver writes a command's line before its effects (:mod:`raytuner._driver.control`), and
a resume makes the effects of the commands the last run recorded as applied hold again
(:func:`raytuner._driver.control.replay`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raytuner._control_values import COMMANDS, Command, clean_command, number_text, shown
from raytuner._display import cli_command
from raytuner._formats import dumps
from raytuner._storage import faults
from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.files import atomic_write_json
from raytuner._storage.history import json_lines, repair_tail
from raytuner.errors import ConfigError, RayTunerError

logger = logging.getLogger("raytuner")

CONTROL_DIR = "control"
REJECTED_DIR = "rejected"
HISTORY_FILE = "history.jsonl"
#: A command is a few hundred bytes: a file larger than this is not one, and is not read.
MAX_FILE_BYTES = 64 * 1024
#: Files taken up per look at the folder: a flood of files waits for later looks instead of
#: holding the driver's loop.
MAX_PER_POLL = 100
#: The command-line option of each limit, the same for ``raytuner control`` and ``raytuner resume``.
LIMIT_OPTIONS = {"max_concurrent": "--max-concurrent", "num_trials": "--num-trials", "time_budget_s": "--time-budget"}
_FIELDS = ("id", "command", "args", "origin", "time", "run_id")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO (named pipe)",
          stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


class ControlRefused(RayTunerError):
    """A command that cannot be sent now: the message says why and what to do."""


@dataclass(frozen=True)
class ControlCommand:
    """One command as it travels; ``args`` are checked by ``clean_command``."""

    id: str
    command: str
    args: dict[str, Any]
    origin: str
    time: float
    run_id: str | None
    file: str | None = field(default=None, compare=False)  # its name in control/, for the driver

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "args": self.args, "origin": self.origin, "time": self.time,
                "run_id": self.run_id}


@dataclass(frozen=True)
class Rejected:
    """A file of the control folder the driver refused before applying anything; what could
    be read of it (its id, command, origin) names it in the history."""

    file: str
    reason: str
    id: str | None = None
    command: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    origin: str = "?"
    sent: float | None = None
    set_aside: str | None = None  # where the file goes ("control/rejected/<name>"); None: removed

    def entry(self) -> dict[str, Any]:
        """Its line in the history (written before the file goes: :meth:`ControlStore.set_aside`)."""
        where = f"moved to {self.set_aside}" if self.set_aside else "removed"
        return {"time": time.time(), "id": self.id, "origin": self.origin, "command": self.command or self.file,
                "args": self.args, "accepted": False, "message": f"{self.reason} (the file {self.file} is {where})",
                "sent": self.sent, "file": self.file}


class _Bad(Exception):
    """A control file that is not a command this run may apply (``Rejected`` says why)."""

    def __init__(self, reason: str, **seen: Any):
        super().__init__(reason)
        self.reason, self.seen = reason, seen


class ControlStore:
    """The control folder and history of one experiment, for writers and for the driver."""

    def __init__(self, storage: ExperimentStorage):
        self.storage = storage
        self.inbox = storage.path / CONTROL_DIR
        self.history_path = storage.path / HISTORY_FILE
        # Files this reader took up, each as it was (see _stamp): never twice, even one that
        # cannot be removed; a new file of the same name is another file.
        self._taken: dict[str, tuple[int, ...] | None] = {}
        self._recorded: dict[str, tuple[bool, str | None]] | None = None  # outcomes the history holds: see take
        self._repaired = False  # the history's tail was checked before this writer's first append
        self._unreadable = False  # said once that the folder cannot be listed

    # -- writers: the CLI and the dashboard ------------------------------------------------
    def submit(self, command: str, args: dict[str, Any] | None = None, *, origin: str) -> ControlCommand:
        """Queue a command for the experiment's live driver, bound to its run.

        Raises ConfigError for a value out of bounds (naming it and the fix), and
        ControlRefused when no live driver runs the experiment (naming the resume option
        that does the same, where there is one) or the trial does not exist.
        """
        cmd, run_id = self.check(command, args)
        sent = ControlCommand(secrets.token_hex(4), cmd.command, cmd.args, origin, time.time(), run_id)
        self.inbox.mkdir(exist_ok=True)
        # time_ns first: the driver applies commands in the order they were written.
        atomic_write_json(self.inbox / f"{time.time_ns():020d}-{sent.id}.json", sent.to_json(), indent=None)
        return sent

    def check(self, command: str, args: dict[str, Any] | None = None) -> tuple[Command, str | None]:
        """What :meth:`submit` checks before it writes anything, raising as it does: the
        command, cleaned, and the run of the live driver it is for. A caller sending several
        commands checks them all first, so that one refused sends none."""
        cmd = clean_command(command, args)
        meta = self.storage.read_experiment()
        live = self.storage.live_driver()
        if live is None:
            raise ControlRefused(self._no_driver(meta.get("status"), cmd))
        trial_id = cmd.args.get("trial_id")
        if trial_id is not None and not (self.storage.trial_path(trial_id) / "config.json").is_file():
            raise ControlRefused(f"Experiment {self.storage.name!r} has no trial {trial_id!r}; "
                                 f"`{cli_command('show', self.storage.path)}` lists its trials.")
        return cmd, live.run_id or meta.get("run_id")

    def _no_driver(self, status: Any, cmd: Command) -> str:
        state = ("its driver is gone (it stopped without saying so: a crash, a kill, a lost machine)"
                 if status == "RUNNING" else f"it is {status if isinstance(status, str) else 'not running'}")
        head = (f"Experiment {self.storage.name!r} has no live driver to apply {cmd.command}: {state}. "
                "A command is applied by the run it was written for, never by a later one.")
        if cmd.command == "set_limits":
            options = [f"{LIMIT_OPTIONS[name]} {number_text(value)}" for name, value in cmd.args.items()]
            return (f"{head} To run on with {'this limit' if len(options) == 1 else 'these limits'}: "
                    f"`{cli_command('resume', self.storage.path)} {' '.join(options)}`.")
        if cmd.command == "end_experiment":
            return f"{head} There is nothing to end."
        if cmd.command == "retry_trial":
            return (f"{head} To run its failed trials again from their checkpoints: "
                    f"`{cli_command('resume', self.storage.path)} --retry-failed`.")
        return (f"{head} Continue it with `{cli_command('resume', self.storage.path)}`, then send {cmd.command} "
                "while it runs.")

    def outcome(self, command_id: str) -> dict[str, Any] | None:
        """The history entry of a command, once the driver has taken it up."""
        for entry in self.history():
            if entry.get("id") == command_id:
                return entry
        return None

    def history(self) -> list[dict[str, Any]]:
        """Every line of the history; a torn tail or a damaged line is skipped (warned)."""
        try:
            data = self.history_path.read_bytes()
        except FileNotFoundError:
            return []
        return json_lines(data, self.history_path, past_damage=True)[0]

    # -- the driver ------------------------------------------------------------------------
    def take(self, run_id: str | None, limit: int = MAX_PER_POLL) -> list[ControlCommand | Rejected]:
        """Up to ``limit`` files waiting in the folder, oldest first, each taken out of it:
        commands for run ``run_id`` to apply, and files refused (set aside, with why)."""
        try:
            if not stat.S_ISDIR(os.lstat(self.inbox).st_mode):
                return []  # a link or a file where the folder should be: read nothing through it
            names = sorted(name for name in os.listdir(self.inbox) if name.endswith(".json")
                           and not name.startswith(".") and (name not in self._taken or self._renewed(name)))
        except FileNotFoundError:
            return []
        except OSError as exc:  # unreadable (permissions, a failing disk): no command, and the driver goes on
            if not self._unreadable:
                self._unreadable = True
                logger.warning("Control commands cannot be read from %s (%s); none is applied until it can be.",
                               self.inbox, exc)
            return []
        if self._recorded is None:
            self._recorded = _outcomes(self.history())
        taken: list[ControlCommand | Rejected] = []
        for name in names[:limit]:
            self._taken[name] = self._stamp(name)
            try:
                item: ControlCommand | Rejected = self._read(name, run_id)
            except FileNotFoundError:
                continue  # gone since the listing
            except _Bad as bad:
                item = Rejected(name, bad.reason, **bad.seen)
            except Exception as exc:  # noqa: BLE001 - whatever one file does, it refuses that file only
                item = Rejected(name, f"it could not be read ({type(exc).__name__}: {shown(str(exc), 200)})")
            recorded = self._recorded.get(name)
            if recorded is not None and recorded[1] == item.id:
                # Its driver was killed after its line, before the file went: the line, not a
                # refusal of an earlier run's command, says what became of it. (A new command
                # in a file of a recorded one's name has another id, and is taken up as any.)
                if recorded[0]:
                    self.set_aside(name, self._aside(name))
                else:
                    _remove(self.inbox / name)
                continue
            if isinstance(item, Rejected):
                item = dataclasses.replace(item, set_aside=self._aside(name))  # moved once its line is written
            else:
                item = dataclasses.replace(item, file=name)  # removed once its outcome is recorded
            taken.append(item)
        return taken

    def _stamp(self, name: str) -> tuple[int, ...] | None:
        """What tells a file of the folder from another of the same name (None: it is gone)."""
        try:
            st = os.lstat(self.inbox / name)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size

    def _renewed(self, name: str) -> bool:
        """Whether a file of a name this reader took up is a new file (written since)."""
        stamp = self._stamp(name)
        return stamp is not None and stamp != self._taken[name]

    def done(self, cmd: ControlCommand) -> None:
        """Remove a command's file, once its outcome is in the history."""
        if cmd.file is not None:
            path = self.inbox / cmd.file
            try:
                dying = faults.at_write(path)
            except OSError as exc:  # the crash harness's full disk
                raise self.storage.storage_error(exc, path) from None
            if dying:
                faults.die()  # the crash harness: the line written, the file not removed
            _remove(path)

    def _read(self, name: str, run_id: str | None) -> ControlCommand:
        path = self.inbox / name
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _Bad(f"it is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}; a command is a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the lstat
                raise _Bad("it is not a regular file; a command is a regular file")
            chunks, size = [], 0
            while size <= MAX_FILE_BYTES and (chunk := os.read(fd, MAX_FILE_BYTES + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        if size > MAX_FILE_BYTES:
            raise _Bad(f"it holds more than {MAX_FILE_BYTES // 1024} KiB; a command is a few hundred bytes")
        try:
            raw = json.loads(b"".join(chunks).decode("utf-8"))
        except UnicodeDecodeError:
            raise _Bad("it is not UTF-8 text") from None
        except RecursionError:
            raise _Bad("it is not valid JSON (nested too deeply)") from None
        except ValueError as exc:
            raise _Bad(f"it is not valid JSON ({shown(str(exc), 120)})") from None
        return _command(raw, run_id, self.storage.path)

    def _aside(self, name: str) -> str | None:
        """Where a refused file is to go: ``control/rejected/<name>`` (another name there if
        that one is taken); None where it cannot go there, and is to be removed."""
        folder = self.inbox / REJECTED_DIR
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return None  # not a folder of ours: a rename there could move the file anywhere
        except FileNotFoundError:
            pass
        except OSError:
            return None
        target = name if not os.path.lexists(folder / name) else f"{name}.{time.time_ns()}"
        return f"{CONTROL_DIR}/{REJECTED_DIR}/{target}"

    def set_aside(self, name: str, where: str | None) -> None:
        """Move a refused file where :meth:`_aside` said, once its line is in the history (a
        driver killed before leaves it for the next run, which refuses it again, or, after
        the line, sets it aside without a second one); remove it where it cannot go there."""
        source = self.inbox / name
        if where is not None:
            folder = self.inbox / REJECTED_DIR
            try:
                try:
                    os.mkdir(folder)
                except FileExistsError:
                    if not stat.S_ISDIR(os.lstat(folder).st_mode):
                        raise  # not a folder of ours: a rename there could move the file anywhere
                target = folder / where.rsplit("/", 1)[-1]
                if not os.path.lexists(target):
                    os.rename(source, target)
                    return
            except OSError:
                pass
        _remove(source)

    def record(self, *entries: dict[str, Any]) -> None:
        """Append lines to the history (the driver is its only writer), durably."""
        if not entries:
            return
        data = "".join(dumps(entry) + "\n" for entry in entries).encode()
        try:
            if not self._repaired:
                repair_tail(self.history_path)
                self._repaired = True
            with open(self.history_path, "ab") as handle:
                if faults.at_write(self.history_path):
                    handle.write(data[: len(data) // 2])  # the crash harness: a line cut short
                    handle.flush()
                    faults.die()
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:  # a full disk: the run stops as for any write it cannot make
            raise self.storage.storage_error(exc, self.history_path) from None
        if self._recorded is not None:
            self._recorded |= _outcomes(entries)


def _outcomes(entries: Iterable[dict[str, Any]]) -> dict[str, tuple[bool, str | None]]:
    """The command files whose outcome the driver recorded, each with whether its line
    refused it as it was taken up (the file goes to ``rejected/``; else it is removed) and
    the command's id (None: none could be read). A take-up's refusal names the file and no
    run; an outcome the lifecycle decided names the file and the run."""
    found: dict[str, tuple[bool, str | None]] = {}
    for entry in entries:
        if isinstance(entry.get("file"), str):
            command_id = entry.get("id") if isinstance(entry.get("id"), str) else None
            if "run_id" not in entry:
                found[entry["file"]] = (True, command_id)
            elif entry["run_id"]:
                found[entry["file"]] = (False, command_id)
    return found


def _command(raw: Any, run_id: str | None, experiment: Path) -> ControlCommand:
    """A parsed command file as a command of run ``run_id``, or _Bad saying why not."""
    if not isinstance(raw, dict):
        raise _Bad(f"it holds {shown(raw)}, not a command (a JSON object)")
    seen: dict[str, Any] = {}  # what names the file in the history, as far as it can be trusted
    if _is_id(raw.get("id")):
        seen["id"] = raw["id"]
    if _is_origin(raw.get("origin")):
        seen["origin"] = raw["origin"]
    if _is_time(raw.get("time")):
        seen["sent"] = raw["time"]
    if isinstance(raw.get("command"), str) and raw["command"] in COMMANDS:
        seen["command"] = raw["command"]
    unknown = [key for key in raw if key not in _FIELDS]
    if unknown:
        raise _Bad(f"{shown(unknown[0])} is not a field of a command (they are {', '.join(_FIELDS)})", **seen)
    if "id" not in seen:
        raise _Bad(f"its id is {shown(raw.get('id'))}, not up to 64 letters, digits, '_' or '-'", **seen)
    if "origin" not in seen:
        raise _Bad(f"its origin is {shown(raw.get('origin'))}, not a name of at most 64 characters", **seen)
    if "time" in raw and "sent" not in seen:
        raise _Bad(f"its time is {shown(raw['time'])}, not seconds since the epoch", **seen)
    try:
        cmd = clean_command(raw.get("command"), raw.get("args"))
    except ConfigError as exc:
        raise _Bad(str(exc), **seen) from None
    seen["args"] = cmd.args
    written_for = raw.get("run_id")
    if written_for != run_id:
        why = ("it names no run: it was written by hand or by an older raytuner" if written_for is None else
               f"it was written for run {shown(written_for, 40)}, not this run ({run_id}): while no driver "
               "ran the experiment, or for an earlier run")
        raise _Bad(f"{why}. A command is applied only by the run it was written for; send it again if it still "
                   f"holds: `{cli_command('control', experiment, *_flags(cmd))}`", **seen)
    return ControlCommand(raw["id"], cmd.command, cmd.args, raw["origin"], float(seen.get("sent", time.time())),
                          written_for)


def _flags(cmd: Command) -> list[str]:
    """``raytuner control`` options that send ``cmd`` again."""
    if cmd.command == "set_limits":
        return [part for name, value in cmd.args.items() for part in (LIMIT_OPTIONS[name], number_text(value))]
    if cmd.command == "end_experiment":
        return ["--end"]
    return [f"--{cmd.command.replace('_', '-')}", cmd.args["trial_id"]]


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_ID.fullmatch(value))


def _is_origin(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable()


def _is_time(value: Any) -> bool:
    # Compared, never converted: int and float compare exactly, so a 400-digit integer is
    # just too large (float() of it would raise OverflowError).
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e11


def _remove(path: Path) -> None:
    """Take a file (or a folder named like a command) out of the control folder."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass  # never taken again by this reader (ControlStore._taken); the next run refuses it


def control_store(path: str | os.PathLike[str] | ExperimentStorage) -> ControlStore:
    return ControlStore(path if isinstance(path, ExperimentStorage) else ExperimentStorage(Path(path)))

