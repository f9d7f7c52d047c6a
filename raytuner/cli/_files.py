"""The CLI's commands on an experiment's files as a whole: ``rename`` (its folder and
recorded name) and ``export`` (its trials, or every report, as CSV or JSON)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

from raytuner.cli._common import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, CLIError, load, locate
from raytuner.cli._experiments import _require_trials, exp_args


def cmd_rename(args: argparse.Namespace) -> int:
    from raytuner._storage.experiment import ExperimentStorage
    from raytuner._storage.files import check_name
    from raytuner.errors import ConfigError, ExperimentError

    path = locate(args.exp, args.root)
    if isinstance(path, str):
        raise CLIError(f"rename works on local folders only; {path} is in cloud storage. Copy it to the new "
                       "name with the provider's tools (e.g. aws s3 mv --recursive), then set \"name\" in its "
                       "experiment.json.", EXIT_USAGE)
    storage = ExperimentStorage(path)
    try:
        meta = storage.read_experiment()
        check_name(args.new, "NEW")
    except ExperimentError as exc:
        raise CLIError(str(exc), EXIT_NOT_FOUND) from None
    except ConfigError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    live = storage.live_driver()
    if live is not None:  # even with --force: the driver would go on writing to the old path
        raise CLIError(f"{storage.name!r} is being run by a live driver ({live.describe()}); rename it once "
                       "that driver has stopped.")
    # Marked RUNNING with no live driver: its driver died (`raytuner ls` shows it INTERRUPTED),
    # and nothing writes to it any more.
    target = storage.path.parent / args.new
    if target.exists():
        raise CLIError(f"{target} already exists; choose another name.")
    os.rename(storage.path, target)
    renamed = ExperimentStorage(target)
    # Where it was, for trackers that find its earlier runs by its path (MLflow) on resume.
    former = [p for p in meta.get("former_paths") or () if isinstance(p, str)] + [str(storage.path)]
    renamed.write_experiment({**meta, "name": args.new, "former_paths": former})
    print(target)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    import pandas as pd

    results = load(args.exp, args.root)
    _require_trials(results)
    if args.output not in (None, "-"):
        _refuse_own_file(results, args.output, "history" if args.history else "trials", args.format)
    if args.history:
        frames = []
        for trial in results.trials:
            frame = results.history(trial.trial_id)
            frame.insert(0, "trial_id", trial.trial_id)
            frames.append(frame)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        frame = results.dataframe()
    out = args.output if args.output not in (None, "-") else sys.stdout
    if args.format == "csv":
        frame.to_csv(out, index=False)
    else:
        text = _records_json(frame)
        if out is sys.stdout:
            print(text)
        else:
            Path(out).write_text(text + "\n")
    if out is not sys.stdout:
        print(out, file=sys.stderr)
    return EXIT_OK


def _refuse_own_file(results, output: str, what: str, suffix: str) -> None:
    """Refuse ``-o`` where the export would replace one of the experiment's own files, by the
    rule ``raytuner report -o`` keeps (``_storage.files.own_file``; no page is allowed in it)."""
    from raytuner._storage.files import own_file

    why = own_file(results.path, output)
    if why is not None:
        folder = Path(results.path).expanduser().resolve()
        example = folder.parent / f"{folder.name}_{what}.{suffix}"
        raise CLIError(f"export: `-o` is {output!r}, but must be a path outside the experiment's folder: this is "
                       f"{why}, which the export would replace. Pass e.g. {str(example)!r}, or leave -o out to "
                       "write to standard output.", EXIT_USAGE)


def _records_json(frame) -> str:
    """``frame``'s rows as a JSON list of objects, every float as Python writes it (the
    shortest text that reads back to the same number; pandas' own writer keeps 10 decimals,
    so 1e-12 came out as 0.0). JSON has no infinity: an infinite value is the string
    ``"Infinity"`` or ``"-Infinity"``, as the dashboard's API writes them (pandas would
    write ``null``, the same as a value never reported; CSV keeps ``inf``). NaN is
    ``null``: in the table it is also what a trial that never reported a metric has."""
    def plain(value):
        if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
            value = value.item()  # a numpy scalar
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if math.isinf(value):
                return "Infinity" if value > 0 else "-Infinity"
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    rows = [{str(column): plain(value) for column, value in row.items()}
            for row in frame.to_dict(orient="records")]
    return json.dumps(rows, indent=1, allow_nan=False, default=str)


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``rename`` and ``export`` with ``build_parser``'s ``add(name, func, help)``."""
    p = add("rename", cmd_rename, "Rename an experiment (its folder and its recorded name).")
    exp_args(p)
    p.add_argument("new", metavar="NEW", help="the new name (letters, digits, '._+=-')")
    p.add_argument("--force", action="store_true",
                   help="kept for scripts: an experiment whose driver died is renamed without it")

    p = add("export", cmd_export, "Export trials (or every report) as CSV (default) or JSON.")
    exp_args(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv",
                     help="comma-separated values (the default)")
    fmt.add_argument("--json", dest="format", action="store_const", const="json",
                     help='a JSON list of records (an infinity as "Infinity"/"-Infinity", NaN as null)')
    p.set_defaults(format="csv")
    p.add_argument("--history", action="store_true", help="one row per report instead of one per trial")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
