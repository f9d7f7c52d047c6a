"""``raytuner``: look at, compare and manage experiments from the terminal.

::

    raytuner ls [ROOT]                 experiments under ROOT (default ~/raytuner_results)
    raytuner show EXP                  trials sorted by the metric
    raytuner best EXP                  the best config as JSON (for scripts)
    raytuner report EXP [-o FILE]      the HTML report
    raytuner resume EXP                continue an interrupted experiment
    raytuner rename EXP NEW            rename an experiment's folder
    raytuner export EXP --csv|--json   trials (or every report) as a table
    raytuner control EXP --max-concurrent N   steer a running experiment (see cli/_live.py)
    raytuner logs EXP TRIAL [-f]       what a trial printed
    raytuner dashboard [ROOT]          the live web dashboard

EXP is an experiment folder, or the name of one under ``--root``.

Exit codes: 0 done; 1 the experiment cannot answer (no trials, no trial reported the
metric, a running experiment to rename); 2 bad command line; 3 no experiment there, or it
is damaged; 4 a feature that is not available (resume, plotly missing); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from raytuner.cli import _experiments, _files, _live
from raytuner.cli._common import (
    EXIT_EMPTY,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    escape,
    rich_console,
)


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raytuner", description="Look at, compare and manage raytuner experiments.",
        epilog="EXP is an experiment folder or the name of one under --root. Exit codes: 0 ok, 1 nothing to "
               "answer with (no trials, metric never reported), 2 bad usage, 3 no experiment there, 4 not available.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    _experiments.add_commands(add)  # ls, show, best, report, resume
    _files.add_commands(add)  # rename, export
    _live.add_commands(add)  # control, logs, dashboard
    return parser


def _version() -> str:
    from raytuner import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raytuner`` console script; returns the exit code."""
    from raytuner.errors import RayTunerError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else EXIT_USAGE
    except CLIError as exc:
        rich_console(stderr=True).print(f"[bold red]error:[/bold red] {escape(exc, newlines=True)}")
        return exc.code
    except RayTunerError as exc:  # e.g. a damaged results.jsonl met mid-command
        rich_console(stderr=True).print(f"[bold red]error:[/bold red] {escape(exc, newlines=True)}")
        return EXIT_NOT_FOUND
    except BrokenPipeError:  # `raytuner export ... | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except OSError as exc:
        rich_console(stderr=True).print(f"[bold red]error:[/bold red] {escape(exc, newlines=True)}")
        return EXIT_EMPTY
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
