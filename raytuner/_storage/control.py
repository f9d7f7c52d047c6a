"""Control commands and their history, as files in the experiment's folder.

::

    <experiment>/
        control/<time_ns>-<id>.json   a command waiting for the driver (atomic: written
                                      as .<name>.tmp, then renamed; the driver deletes it)
        history.jsonl                 one line per command the driver took up: when, from
                                      where, what, and whether it was applied and why

Files, not a socket: whoever can write the experiment's folder can steer it (the CLI, a
dashboard on the head node), and nothing listens on a port. Writers check what they can
(the experiment runs, the trial exists) and refuse with a message; the driver's lifecycle
decides the rest and its answer lands in the history.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from raytuner._formats import dumps
from raytuner._storage.experiment import ExperimentStorage, atomic_write_json, read_jsonl
from raytuner.errors import RayTunerError

CONTROL_DIR = "control"
HISTORY_FILE = "history.jsonl"

#: The commands, each with the arguments it takes.
COMMANDS: dict[str, tuple[str, ...]] = {
    "stop_trial": ("trial_id",),
    "retry_trial": ("trial_id",),
    "set_limits": ("max_concurrent", "num_trials", "time_budget_s"),
    "end_experiment": (),
}


class ControlRefused(RayTunerError):
    """A command that cannot be sent: the message says why and what to do."""


@dataclass(frozen=True)
class ControlCommand:
    """One command as it travels: ``args`` hold only the names in :data:`COMMANDS`."""

    id: str
    command: str
    args: dict[str, Any]
    origin: str
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "args": self.args, "origin": self.origin, "time": self.time}


def _positive(name: str, value: Any, *, integer: bool) -> int | float:
    """A positive number from the CLI, a form or a file, or a ControlRefused that says why."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0) or (integer and not number.is_integer()):
        kind = "a whole number" if integer else "a number of seconds"
        raise ControlRefused(f"{name}={value!r} is not valid: give {kind} greater than 0.")
    return int(number) if integer else number


def validate(command: str, args: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments checked and typed; ControlRefused names what is wrong."""
    if command not in COMMANDS:
        raise ControlRefused(f"Unknown control command {command!r}; use one of {', '.join(COMMANDS)}.")
    unknown = set(args) - set(COMMANDS[command])
    if unknown:
        raise ControlRefused(f"{command} takes {', '.join(COMMANDS[command]) or 'no arguments'}, not "
                             f"{', '.join(sorted(unknown))}.")
    clean: dict[str, Any] = {}
    if command in ("stop_trial", "retry_trial"):
        trial_id = args.get("trial_id")
        if not isinstance(trial_id, str) or not trial_id.isalnum():
            raise ControlRefused(f"trial_id={trial_id!r} is not a trial id; give one such as '00003'.")
        clean["trial_id"] = trial_id
    elif command == "set_limits":
        for name, integer in (("max_concurrent", True), ("num_trials", True), ("time_budget_s", False)):
            if args.get(name) not in (None, ""):
                clean[name] = _positive(name, args[name], integer=integer)
        if not clean:
            raise ControlRefused("set_limits needs at least one of max_concurrent, num_trials, time_budget_s.")
    return clean


class ControlStore:
    """The control folder and history of one experiment, for writers and for the driver."""

    def __init__(self, storage: ExperimentStorage):
        self.storage = storage
        self.inbox = storage.path / CONTROL_DIR
        self.history_path = storage.path / HISTORY_FILE

    # -- writers: the CLI and the dashboard ------------------------------------------------
    def submit(self, command: str, args: dict[str, Any] | None = None, *, origin: str) -> ControlCommand:
        """Queue a command for the experiment's driver; refused (ControlRefused) when the
        experiment is not running, the trial does not exist, or an argument is wrong."""
        clean = validate(command, dict(args or {}))
        meta = self.storage.read_experiment()
        status = meta.get("status")
        if status != "RUNNING":
            raise ControlRefused(
                f"Experiment {self.storage.name!r} is {status or 'not running'}, so no driver is there to apply "
                f"{command}. Commands steer a running experiment; continue this one with `raytuner resume "
                f"{self.storage.path}` first.")
        trial_id = clean.get("trial_id")
        if trial_id is not None and not (self.storage.trial_path(trial_id) / "config.json").is_file():
            raise ControlRefused(f"Experiment {self.storage.name!r} has no trial {trial_id!r}; "
                                 "`raytuner show` lists its trials.")
        cmd = ControlCommand(secrets.token_hex(4), command, clean, origin, time.time())
        self.inbox.mkdir(exist_ok=True)
        # time_ns first: the driver applies commands in the order they were written.
        atomic_write_json(self.inbox / f"{time.time_ns():020d}-{cmd.id}.json", cmd.to_json(), indent=None)
        return cmd

    def outcome(self, command_id: str) -> dict[str, Any] | None:
        """The history entry of a command, once the driver has taken it up."""
        for entry in self.history():
            if entry.get("id") == command_id:
                return entry
        return None

    def history(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.history_path))

    # -- the driver ------------------------------------------------------------------------
    def take(self) -> Iterator[ControlCommand | tuple[str, str]]:
        """Commands waiting in the folder, oldest first, each removed as it is taken; a file
        that is not a command comes as (file name, why) so that the refusal is recorded."""
        try:
            names = sorted(name for name in os.listdir(self.inbox) if name.endswith(".json")
                           and not name.startswith("."))
        except FileNotFoundError:
            return
        for name in names:
            path = self.inbox / name
            try:
                raw = json.loads(path.read_text())
                cmd = ControlCommand(str(raw["id"]), raw["command"], validate(raw["command"], raw.get("args") or {}),
                                     str(raw.get("origin", "?")), float(raw.get("time", time.time())))
            except FileNotFoundError:
                continue
            except (ValueError, KeyError, TypeError, ControlRefused) as exc:
                cmd = (name, f"not a valid command file: {exc}")
            path.unlink(missing_ok=True)
            yield cmd

    def record(self, entry: dict[str, Any]) -> None:
        """Append one line to the history (the driver is its only writer)."""
        with open(self.history_path, "a") as handle:
            handle.write(dumps(entry) + "\n")


def control_store(path: str | os.PathLike[str] | ExperimentStorage) -> ControlStore:
    return ControlStore(path if isinstance(path, ExperimentStorage) else ExperimentStorage(Path(path)))
