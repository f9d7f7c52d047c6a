"""CLI commands for live experiments: ``control``, ``logs`` and ``dashboard``.

::

    raytuner control EXP --max-concurrent 4      steer a running experiment
    raytuner logs EXP TRIAL [-f]                  what a trial printed
    raytuner dashboard [ROOT] [--host] [--port]   the live web dashboard

Registered by :func:`raytuner.cli.build_parser` through :func:`add_commands`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

from raytuner._display import cli_command
from raytuner._storage import DEFAULT_ROOT
from raytuner.cli._common import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CLIError, locate

#: How long ``control`` waits for the driver to take a command up before saying "queued".
WAIT_S = 10.0


def _storage(exp: str, root: str, *, reader: bool = False):
    """The experiment's folder; ``reader``: one whose experiment.json is damaged will do
    (what is read, a trial's log, does not depend on it)."""
    from raytuner._storage.experiment import ExperimentStorage
    from raytuner.errors import ExperimentError

    storage = ExperimentStorage(locate(exp, root))
    try:
        storage.read_experiment_record() if reader else storage.read_experiment()
    except ExperimentError as exc:
        raise CLIError(str(exc), EXIT_NOT_FOUND) from None
    return storage


def cmd_control(args: argparse.Namespace) -> int:
    from raytuner._control_values import clean_command
    from raytuner._storage.control import ControlRefused, control_store
    from raytuner.errors import ConfigError

    storage = _storage(args.exp, args.root)
    if storage.uri is not None:  # a reader's copy of a bucket: no driver reads commands there
        raise CLIError(f"{storage.uri} is in cloud storage; control commands go to the driver's local copy. Run "
                       "`raytuner control` on the machine that runs the driver, with the folder it stages in "
                       "(under ~/.cache/raytuner/stage/).", EXIT_USAGE)
    wanted: list[tuple[str, dict[str, Any]]] = []
    limits = {k: v for k, v in (("max_concurrent", args.max_concurrent), ("num_trials", args.num_trials),
                                ("time_budget_s", args.time_budget)) if v is not None}
    if limits:
        wanted.append(("set_limits", limits))
    wanted += [("stop_trial", {"trial_id": t}) for t in args.stop_trial or ()]
    wanted += [("retry_trial", {"trial_id": t}) for t in args.retry_trial or ()]
    if args.end:
        wanted.append(("end_experiment", {}))
    if not wanted:
        raise CLIError("Nothing to do: pass --max-concurrent N, --num-trials N, --time-budget SECONDS, "
                       "--stop-trial ID, --retry-trial ID or --end.", EXIT_USAGE)
    for command, command_args in wanted:  # values out of bounds are usage errors, before anything is sent
        try:
            clean_command(command, command_args)
        except ConfigError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
    store = control_store(storage)
    try:
        for command, command_args in wanted:  # all of them before any is sent: one refused sends none
            store.check(command, command_args)
    except ControlRefused as exc:
        raise CLIError(f"refused: {exc}; nothing was sent") from None
    sent = []
    for command, command_args in wanted:
        try:
            sent.append(store.submit(command, command_args, origin="cli"))
        except ControlRefused as exc:  # the driver ended meanwhile: say what went before
            for cmd in sent:
                print(f"{cmd.command}: queued ({cmd.id}) before the refusal below")
            raise CLIError(f"refused: {exc}") from None
    if args.no_wait:
        for cmd in sent:
            print(f"{cmd.command}: queued ({cmd.id})")
        return EXIT_OK
    deadline = time.monotonic() + WAIT_S
    refused = False
    for cmd in sent:
        # Polling the history file: the driver writes it, we only read.
        while (entry := store.outcome(cmd.id)) is None and time.monotonic() < deadline \
                and storage.live_driver() is not None:
            time.sleep(0.1)
        if entry is None:
            entry = store.outcome(cmd.id)  # it may have come with the driver's end
        if entry is not None:
            refused |= not entry["accepted"]
            print(f"{cmd.command}: {'applied' if entry['accepted'] else 'refused'}: {entry['message']}")
        elif storage.live_driver() is None:
            refused = True
            print(f"{cmd.command}: not applied: the driver ended before taking it up (no later run applies it).")
        else:
            print(f"{cmd.command}: queued ({cmd.id}); the driver has not taken it up yet. "
                  f"`raytuner dashboard` or {store.history_path} shows when it does.")
    return 1 if refused else EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    storage = _storage(args.exp, args.root, reader=True)
    trial = args.trial
    if not trial.isalnum() or not (storage.trial_path(trial) / "config.json").is_file():
        raise CLIError(f"Experiment {storage.name!r} has no trial {trial!r}; `{cli_command('show', args.exp)}` lists "
                       "them.", EXIT_NOT_FOUND)
    text, offset = storage.read_log(trial)
    _write(text)
    while args.follow:
        why = _stopped_following(storage, trial)
        text, offset = storage.read_log(trial, offset)  # what landed with the trial's end, or since the last look
        _write(text)
        if why is not None:
            print(f"(stopped following: {why})", file=sys.stderr)
            break
        time.sleep(0.5)  # a tail -f: the driver appends as reports arrive
    status, error = _trial_end(storage, trial)
    if status == "FAILED" and error:
        # What it printed, then why it failed: its traceback is what a failed trial's log is read for.
        _write(f"--- trial {trial} failed; its traceback ({storage.trial_path(trial) / 'error.txt'}): ---\n{error}")
    elif offset == 0 and not args.follow:
        print(f"(trial {trial} has printed nothing)", file=sys.stderr)
    return EXIT_OK


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def _trial_end(storage, trial: str) -> tuple[str | None, str | None]:
    """The trial's status and recorded error, as far as its files can tell."""
    from raytuner.errors import ExperimentError

    try:
        record, _, error = storage.read_trial(trial)
    except (ExperimentError, OSError):  # not started yet, or damaged: there is no end to tell
        return None, None
    status = record.get("status") if isinstance(record, dict) else None
    return (status if isinstance(status, str) else None), error


def _stopped_following(storage, trial: str) -> str | None:
    """Why ``logs -f`` has nothing more to wait for, or None while the trial may print more."""
    status, _ = _trial_end(storage, trial)
    if status in ("COMPLETED", "STOPPED", "FAILED"):
        return f"trial {trial} ended {status}"
    if storage.live_driver() is None:
        return (f"no driver runs {storage.name!r} now, so trial {trial} prints nothing more until the experiment "
                f"is resumed (`{cli_command('resume', storage.path)}`)")
    return None


def cmd_dashboard(args: argparse.Namespace) -> int:
    from raytuner.dashboard import DashboardError, serve

    try:
        serve(args.root, host=args.host, port=args.port, read_only=args.read_only, token=args.token)
    except DashboardError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    return EXIT_OK


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the commands with ``build_parser``'s ``add(name, func, help)``."""
    p = add("control", cmd_control, "Steer a running experiment: limits, stop or re-run a trial, end it.")
    p.add_argument("exp", metavar="EXP", help="experiment folder, or its name under --root")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"storage root for names (default {DEFAULT_ROOT})")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="run at most N trials at once")
    p.add_argument("--num-trials", type=int, metavar="N", help="run N trials in all")
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help="end the experiment once its runs have taken this long in all")
    p.add_argument("--stop-trial", action="append", metavar="ID", help="stop this trial (repeatable)")
    p.add_argument("--retry-trial", action="append", metavar="ID",
                   help="run this FAILED trial again from its latest checkpoint (repeatable)")
    p.add_argument("--end", action="store_true", help="stop every trial and end the experiment")
    p.add_argument("--no-wait", action="store_true", help="queue the commands and return at once")

    p = add("logs", cmd_logs, "Print what a trial printed (its stdout and stderr).")
    p.add_argument("exp", metavar="EXP", help="experiment folder, or its name under --root")
    p.add_argument("trial", metavar="TRIAL", help="the trial id, e.g. 00003")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"storage root for names (default {DEFAULT_ROOT})")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the trial ends")

    p = add("dashboard", cmd_dashboard, "Serve the live web dashboard of the experiments under ROOT.")
    p.add_argument("root", nargs="?", default=DEFAULT_ROOT, metavar="ROOT", help=f"storage root (default {DEFAULT_ROOT})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=9265, help="port (default 9265; 0 picks a free one)")
    p.add_argument("--read-only", action="store_true", help="show experiments, refuse every control action")
    p.add_argument("--token", help="access token (default: generated when --host is not a loopback address)")

