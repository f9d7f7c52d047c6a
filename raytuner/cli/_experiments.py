"""The CLI's commands on recorded experiments: ``ls``, ``show``, ``best``, ``report`` and
``resume`` (``rename`` and ``export``: :mod:`raytuner.cli._files`)."""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path
from typing import Callable

from raytuner._display import cli_command, config_text, terminal_text, time_text, value_text
from raytuner._formats import flatten
from raytuner._best import scope_of
from raytuner._storage import DEFAULT_ROOT
from raytuner.cli._front import best_json, front_view, point, summary_text
from raytuner.cli._no_result import failed_best, no_result
from raytuner.cli._common import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CLIError,
    escape,
    load,
    locate,
    print_table,
    rich_console,
)


_SCOPES = {"last": "each trial's last report", "all": "each trial's best report"}


def _metric_mode(results, args) -> tuple[str, str]:
    metric = getattr(args, "metric", None) or results.metric
    mode = getattr(args, "mode", None) or results.mode
    if results.objectives.multi and not isinstance(mode, str):  # --metric of a multi-objective experiment
        mode = results.objectives.mode_of(metric)
        if mode is None:
            raise CLIError(f"{metric!r} is not one of the objectives of {results.path.name!r} "
                           f"({results.objectives.describe()}); pass --mode min or --mode max to rank by it.")
    if metric is None and results.damaged:
        raise CLIError(f"Experiment {results.path.name!r}: {results.damaged}, so its metric is unknown; pass --metric "
                       "NAME (and --mode) to rank its trials, or repair that file.")
    if metric is None:
        raise CLIError(f"Experiment {results.path.name!r} has no metric to rank trials by; pass --metric NAME.")
    if not isinstance(metric, str) or mode not in ("min", "max"):
        raise CLIError(f"Experiment {results.path.name!r} ranks trials by several objectives ({metric!r}); pass "
                       "--metric NAME (and --mode) to rank them by one.")
    return metric, mode


def _scored(results, metric: str) -> list:
    from raytuner._formats import is_finite

    return [t for t in results.trials if is_finite(t.metrics.get(metric))]


def _require_trials(results) -> None:
    if not results.trials:
        raise CLIError(f"Experiment {results.path.name!r} has no trials yet ({results.path}).")


# -- commands ----------------------------------------------------------------------------
def cmd_ls(args: argparse.Namespace) -> int:
    from raytuner._best import shown_value
    from raytuner._results import read_trial
    from raytuner._objectives import Objectives
    from raytuner.cli._front import listing_text
    from raytuner._storage import remote
    from raytuner._storage.experiment import ExperimentStorage
    from raytuner.cli import _tables
    from raytuner.errors import ExperimentError

    if args.root is not None and args.root_option is not None and args.root != args.root_option:
        raise CLIError(f"Two storage roots: {args.root} and --root {args.root_option}; pass one.", EXIT_USAGE)
    given = str(args.root or args.root_option or DEFAULT_ROOT)
    root = _local_root(given)
    if not root.is_dir():
        raise CLIError(f"No folder {root}: there are no experiments there. Pass the storage root, e.g. "
                       f"`raytuner ls {DEFAULT_ROOT}`.", EXIT_NOT_FOUND)
    uri = given.rstrip("/") if remote.is_uri(given) else None
    shown_root = uri or root
    rows, damaged = [], []
    for folder in sorted(p for p in root.iterdir() if (p / "experiment.json").is_file()):
        # A bucket's experiment read as one (its checkpoints listed there, its live driver
        # looked up there, its paths shown as URIs), not as the JSON files the listing pulled.
        storage = ExperimentStorage(f"{uri}/{folder.name}") if uri else ExperimentStorage(folder)
        try:
            meta, damage = storage.read_experiment_record()
        except ExperimentError:
            continue  # removed since the listing
        # trial.json and config.json: the listing of a whole root reads the results.jsonl of
        # the unfinished trials only, whose record may lag behind their reports (a finished
        # one's is written after its last row).
        trials = [read_trial(storage, trial_id, history=False) for trial_id in storage.trial_ids()]
        objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min"))
        live = storage.live_driver() is not None
        trials = [trial if trial.status.is_finished() or trial.damaged else
                  read_trial(storage, trial.trial_id, objectives=objectives, live=live) for trial in trials]
        metric, mode = meta.get("metric"), meta.get("mode", "min")
        best = None
        scope = scope_of(meta)
        if isinstance(metric, str) and mode in ("min", "max"):
            found = _whole_best(storage, trials, metric, mode, scope, live)
            # A failed trial's value is no result: `raytuner best` refuses it too.
            best = shown_value(found, metric, mode, scope) if found and found.status.value != "FAILED" else None
        best_text = listing_text(storage, meta, trials, scope) or value_text(best)  # several objectives: the front
        counts = _counts(trials)
        status = "DAMAGED" if damage else meta.get("status", "?")
        if status == "RUNNING" and not live:
            status = "INTERRUPTED"  # its driver died without saying so (a crash, a lost machine)
        if damage:
            damaged.append(f"{folder.name}: {damage.describe()}")
        damaged.extend(f"{folder.name}, trial {t.trial_id}: {t.damaged}" for t in trials if t.damaged)
        rows.append((folder.name, _status_text(status, counts), _count_line(counts), best_text,
                     meta.get("start_time") or meta.get("created"), ", ".join(Objectives.of(metric).metrics) or "-",
                     _limits_text(meta)))
    if not rows:
        rich_console(stderr=True).print(f"No experiments in {escape(str(shown_root))}.")
        return EXIT_OK
    rows.sort(key=lambda r: time_text(r[4]), reverse=True)
    this_year = datetime.datetime.now().strftime("%Y-")
    started = [time_text(r[4]) for r in rows]
    if all(s.startswith(this_year) for s in started):  # the year adds nothing
        started = [s[len(this_year):] for s in started]
    columns = [
        _tables.Column("name", [r[0] for r in rows]),
        _tables.Column("status", [r[1] for r in rows], kind="text"),
        _tables.Column("trials", [r[2] for r in rows], kind="text"),
        _tables.Column("best", [r[3] for r in rows], kind="number"),
        _tables.Column("metric", [r[5] for r in rows], optional=True),
        _tables.Column("started", started, optional=True),
        _tables.Column("limits", [r[6] for r in rows], kind="text", optional=True, priority=0),
    ]
    console = rich_console(wide=args.wide)
    hidden = print_table(console, columns, wide=args.wide, title=f"experiments in {shown_root}")
    if hidden:
        console.print(f"({', '.join(hidden)} left out to fit {console.width} columns; --wide shows all)")
    for line in damaged:
        console.print(f"damaged: {escape(line)}", soft_wrap=True)
    return EXIT_OK


def _whole_best(storage, trials: list, metric: str, mode: str, scope: str, live: bool):
    """The best of ``trials`` (read without their results.jsonl), each candidate's history
    read to be sure it is whole: one damaged before its last line is DAMAGED, never best, as
    every other view has it. It replaces its entry in ``trials``; the next best is checked.
    ``live``: whether a driver holds the experiment now (:func:`raytuner._results.read_trial`)."""
    from raytuner._best import best_trial
    from raytuner._objectives import Objectives
    from raytuner._results import read_trial

    while True:
        found = best_trial(trials, metric, mode, scope)
        if found is None:
            return None
        whole = read_trial(storage, found.trial_id, objectives=Objectives.of(metric, mode), live=live)
        if whole.damaged is None:
            return found
        trials[trials.index(found)] = whole


def _counts(trials) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    return counts


def _status_text(status: str, counts: dict[str, int]) -> str:
    """``COMPLETED, 11 of 20 failed``: the experiment's status, and the trials that failed
    or whose files are damaged, so that no listing hides them."""
    total = sum(counts.values())
    return ", ".join([status] + [f"{counts[s]} of {total} {s.lower()}" for s in ("FAILED", "DAMAGED") if counts.get(s)])


def _local_root(root: str) -> Path:
    """A storage root to list; a URI's experiments (their JSON files) pulled into the cache."""
    from raytuner._storage import remote
    from raytuner.errors import ConfigError, ExperimentError

    if not remote.is_uri(root):
        return Path(root).expanduser()
    try:
        return remote.list_experiments(root)
    except (ConfigError, ExperimentError) as exc:
        raise CLIError(str(exc), EXIT_NOT_FOUND) from None


def _limits_text(meta: dict) -> str:
    """The limits in force, as the Tuner, a control command or a resume set them last:
    ``2 at once, 8 trials, 3600 s budget``."""
    from raytuner._formats import is_finite

    parts = []
    for key, unit in (("max_concurrent", " at once"), ("num_trials", " trials"), ("time_budget_s", " s budget")):
        if is_finite(meta.get(key)):
            parts.append(value_text(meta[key], 6) + unit)
    return ", ".join(parts)


def _count_line(counts: dict[str, int]) -> str:
    """``12 (6 stopped, 1 failed)``: the total, and every status but COMPLETED."""
    total = sum(counts.values())
    others = ", ".join(f"{n} {s.lower()}" for s, n in _by_status(counts) if s != "COMPLETED")
    return f"{total} ({others})" if others else (f"{total} completed" if total else "none")


def _by_status(counts: dict[str, int]) -> list[tuple[str, int]]:
    order = ["RUNNING", "PENDING", "PAUSED", "COMPLETED", "STOPPED", "FAILED", "DAMAGED"]
    return sorted(counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))


def cmd_show(args: argparse.Namespace) -> int:
    from raytuner.cli import _tables
    from raytuner._driver import failures

    from raytuner._best import ranked, shown_value
    from raytuner._formats import run_time

    results = load(args.exp, args.root)
    _require_trials(results)
    front = front_view(results, args)
    if front is None:
        metric, mode = _metric_mode(results, args)
        rule = results._ranking(metric, mode)  # as `best --metric` ranks it
        order = ranked(results.trials, metric, mode, results.scope, **rule)  # best first, as `best` says
        scored, shown = _scored(results, metric), [metric]
        by_scope = rule["own_metric"] or "reports" in rule
        heading = f"metric {escape(metric)} ({mode}), ranked by {_SCOPES[results.scope if by_scope else 'last']}"
    else:  # several objectives: the front first, marked, then the others in the Pareto order
        order = front.ranked + [t for t in results.trials if t not in front.ranked]
        scored, shown = front.ranked, list(results.objectives.metrics)
        metric, heading = " and ".join(shown), f"objectives {escape(results.objectives.describe())}"
    trials = order[: args.limit] if args.limit else order
    meta = results.meta
    configs = {t.trial_id: flatten(t.config) for t in results.trials}
    params = list(dict.fromkeys(k for c in configs.values() for k in c))
    constant = {} if args.wide or len(results.trials) < 2 else {
        p: configs[results.trials[0].trial_id].get(p) for p in params
        if len({json.dumps(c.get(p), sort_keys=True, default=repr) for c in configs.values()}) == 1
    }
    console = rich_console(wide=args.wide)
    counts = _counts(results.trials)
    console.print(f"[bold]{escape(results.path.name)}[/bold]  {escape(_status_text(results.status, counts))}  {heading}")
    if front is not None:
        console.print(f"Pareto front ({results.scope} reports): {len(front.members)} trials, marked *")
    if results.damaged:
        console.print(f"experiment.json is damaged: {escape(results.damaged)}", soft_wrap=True)
    error = meta.get("error") if results.status == "FAILED" else None
    if isinstance(error, str) and error.strip():
        console.print(f"the run failed: {escape(error.strip().splitlines()[-1])}  (its traceback: experiment.json's "
                      "\"error\")", soft_wrap=True)
    ran = run_time(meta, live=results.status == "RUNNING")  # the time between its runs does not count
    console.print(f"{len(results.trials)} trials: {', '.join(f'{n} {s.lower()}' for s, n in _by_status(counts))}; "
                  f"started {time_text(meta.get('start_time') or meta.get('created'))}"
                  + (f"; ran {ran:.1f} s" if ran is not None else ""))
    # The scheduler's arguments break between arguments, never inside one.
    for line in _tables.call_lines(f"searcher {meta.get('searcher', '-')}; scheduler ", str(meta.get("scheduler", "-")),
                                   console.width):
        console.print(escape(line), soft_wrap=True)
    if constant:
        same = ", ".join(f"{k}={config_text(constant, k, 4)}" for k in constant)
        console.print("same in every trial: " + escape(same))
    if front is None:  # the value ranked by, as the scope has it
        values = [_tables.Column(f"best {metric}" if results.scope == "all" and by_scope else metric,
                                 [_ranked_text(t, metric, shown_value(t, metric, mode, results.scope, **rule))
                                  for t in trials],
                                 kind="number")]
    else:
        values = [_tables.Column(m, [value_text(point(front, t).get(m)) for t in trials], kind="number")
                  for m in shown]
    columns = [_tables.Column("trial", [t.trial_id for t in trials])]
    if front is not None:
        columns.append(_tables.Column("front", ["*" if t.trial_id in front.members else "" for t in trials]))
    columns += [
        _tables.Column("status", [t.status.value.lower() for t in trials]),
        _tables.Column("iter", [str(t.iteration) for t in trials], kind="number"),
        *values,
        # Training time matters less than the config: it is the first to go on a narrow screen.
        _tables.Column("time (s)", [f"{t.time_total_s:.1f}" for t in trials], kind="number", optional=True, priority=0),
    ]
    # The other metrics the trials reported go with the time (--wide shows them all).
    reports = {t.trial_id: t.metrics if front is None else point(front, t) for t in trials}
    for name in dict.fromkeys(k for t in trials for k in reports[t.trial_id] if k not in shown):
        values = [reports[t.trial_id].get(name) for t in trials]
        numeric = all(isinstance(v, (int, float)) or v is None for v in values)
        columns.append(_tables.Column(name, [value_text(v) for v in values], kind="number" if numeric else "name",
                                      optional=True, priority=0, max_width=None if args.wide else 16,
                                      full_header=name))
    first_param = len(columns)
    for param in params:
        if param in constant:
            continue
        values = [configs[t.trial_id].get(param) for t in trials]
        numeric = all(isinstance(v, (int, float)) or v is None for v in values)
        columns.append(_tables.Column(param, [config_text(configs[t.trial_id], param, 4) for t in trials],
                                      kind="number" if numeric else "name",
                                      optional=True, max_width=None if args.wide else 16, full_header=param))
    if not args.wide:
        for column in columns[first_param:]:
            column.header = _tables.middle(column.header, max(12, max((len(c) for c in column.cells), default=0)))
    hidden = print_table(console, columns, wide=args.wide)
    if hidden:
        console.print(f"(left out to fit {console.width} columns: {escape(', '.join(hidden))}; --wide shows all)")
    if args.limit and len(order) > args.limit:
        console.print(f"({len(order) - args.limit} more trials; --limit 0 shows all)")
    damaged = [t for t in results.trials if t.damaged]
    if damaged:
        console.print(f"\ndamaged trials ({len(damaged)}), left out of the ranking:")
        for trial in damaged:
            console.print(f"  {trial.trial_id}: {escape(trial.damaged)}", soft_wrap=True)
    failed = [(t.trial_id, t.error) for t in results.trials if t.status.value == "FAILED" and t.error]
    if failed:
        console.print(f"\nfailed trials ({len(failed)}), by error:")
        for failure, ids in failures.group(failed):
            shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
            console.print(f"  {escape(failure.headline)}  (trial{'s' if len(ids) > 1 else ''} {shown})")
            if failure.frame:
                console.print(f"    at {escape(failure.frame)}" + (f": {escape(failure.code)}" if failure.code else ""))
        console.print(f"  tracebacks: {escape(results.path / 'trials')}/<trial>/error.txt")
    if not scored:
        raise no_result(results, metric)
    return EXIT_OK


def _ranked_text(trial, metric: str, value) -> str:
    """The value ``trial`` is ranked by; one it does not have because its value is NaN or
    infinite (never ranked) as that value, ``nan``, ``inf`` or ``-inf``: ``-`` is for a
    metric it never reported."""
    if value is None:
        last = trial.metrics.get(metric)
        if isinstance(last, float) and not math.isfinite(last):
            return value_text(last)
    return value_text(value)


def cmd_best(args: argparse.Namespace) -> int:
    from raytuner._best import best_trial

    results = load(args.exp, args.root)
    _require_trials(results)
    front = front_view(results, args)
    if front is not None:  # several objectives: the front, as a JSON list
        metrics = " and ".join(results.objectives.metrics)
        if not front.members:
            raise no_result(results, metrics)
        first = next(iter(front.members.values())).trial
        if first.status.value == "FAILED":  # only when no other trial has values: no result to use
            raise failed_best(results, first, metrics)
        print(best_json(front, args.full))
        return EXIT_OK
    metric, mode = _metric_mode(results, args)
    best = best_trial(results.trials, metric, mode, results.scope, **results._ranking(metric, mode))
    if best is None:
        raise no_result(results, metric)
    if best.status.value == "FAILED":  # only when no other trial has a value: no result to use
        raise failed_best(results, best, metric)
    out = best.config if not args.full else {
        "trial_id": best.trial_id, "status": best.status.value, "config": best.config, "metrics": best.metrics,
    }
    print(json.dumps(out, indent=2, default=repr))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from raytuner.errors import ConfigError, ExperimentError

    results = load(args.exp, args.root)
    _require_trials(results)
    front = front_view(results, args)
    if front is not None:  # several objectives: the report draws the front, and each objective alone
        metric, mode = args.metric, args.mode
        if not front.members:
            raise no_result(results, " and ".join(results.objectives.metrics))
    else:
        metric, mode = _metric_mode(results, args)
        if not _scored(results, metric):
            raise no_result(results, metric)
    if args.output is not None:
        from raytuner._report import output_path

        try:  # a path that would replace one of the experiment's files (or another non-HTML file)
            output_path(results, args.output)
        except ConfigError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
    try:
        path = results.report(args.output, metric=metric, mode=mode)
    except ExperimentError as exc:
        raise CLIError(str(exc)) from None
    except ConfigError as exc:  # plotly missing
        raise CLIError(str(exc), EXIT_UNAVAILABLE) from None
    print(path)
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    import raytuner
    from raytuner._control_values import clean_command
    from raytuner.errors import ConfigError, ExperimentError, TrialsFailedError

    limits = {k: v for k, v in (("num_trials", args.num_trials), ("time_budget_s", args.time_budget),
                                ("max_concurrent", args.max_concurrent)) if v is not None}
    try:  # values out of bounds are usage errors, before anything is read
        if limits:
            clean_command("set_limits", limits, owner="raytuner resume")
    except ConfigError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    path = locate(args.exp, args.root)
    load(args.exp, args.root)  # a clear message for a wrong path, before Ray starts
    try:
        results = raytuner.Tuner.resume(str(path), num_trials=args.num_trials, time_budget_s=args.time_budget,
                                        max_concurrent=args.max_concurrent, address=args.address,
                                        retry_failed=args.retry_failed)
    except (TrialsFailedError, ConfigError, ExperimentError) as exc:  # the experiment's own answer (1)
        raise CLIError(str(exc)) from None
    print(terminal_text(_summary(results), newlines=True))  # a metric's name as a trial gave it
    return EXIT_OK


def _summary(results) -> str:
    """One paragraph on where an experiment stands after a run, and what to type next."""
    counts: dict[str, int] = {}
    for trial in results.trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    from raytuner._best import best_trial, shown_value

    text = (f"{results.path.name}: {results.status}, {len(results.trials)} trials "
            f"({', '.join(f'{n} {s.lower()}' for s, n in _by_status(counts))})")
    if results.objectives.multi:
        text += summary_text(results)
    else:
        best = best_trial(results.trials, results.metric, results.mode, results.scope) if results.metric else None
        if best is not None and best.status.value != "FAILED":
            value = shown_value(best, results.metric, results.mode, results.scope)
            text += f"; best {results.metric}={value_text(value)} (trial {best.trial_id})"
    return text + f".\nSee them with: {cli_command('show', results.path)}"


def exp_args(p: argparse.ArgumentParser, ranking: bool = False) -> None:
    p.add_argument("exp", metavar="EXP", help="experiment folder, or its name under --root")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"storage root for names (default {DEFAULT_ROOT})")
    if ranking:
        p.add_argument("--metric", help="rank by this reported metric (default: the experiment's)")
        p.add_argument("--mode", choices=("min", "max"), help="min or max (default: the experiment's)")


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the commands with ``build_parser``'s ``add(name, func, help)``."""
    p = add("ls", cmd_ls, "List experiments with status, trial counts, best value and start time.")
    p.add_argument("root", nargs="?", default=None, metavar="ROOT", help=f"storage root (default {DEFAULT_ROOT})")
    p.add_argument("--root", dest="root_option", metavar="ROOT", help="the same, as the other commands take it")
    p.add_argument("--wide", action="store_true", help="every column in full, however wide")

    p = add("show", cmd_show, "Show an experiment's trials, best first (the Pareto front first, marked *), with "
            "status and config.")
    exp_args(p, ranking=True)
    p.add_argument("-n", "--limit", type=int, default=50, help="show at most N trials (0: all; default 50)")
    p.add_argument("--wide", action="store_true",
                   help="every config column in full (also those the same in every trial), however wide")

    p = add("best", cmd_best, "Print the best trial's config as JSON (several objectives: the Pareto front, a list).")
    exp_args(p, ranking=True)
    p.add_argument("--full", action="store_true", help="print trial id, status, config and metrics")

    p = add("report", cmd_report, "Write the experiment's HTML report (needs plotly).")
    exp_args(p, ranking=True)
    p.add_argument("-o", "--output", help="the .html file (default EXP/report.html)")

    p = add("resume", cmd_resume, "Continue an interrupted experiment where it stopped.")
    exp_args(p)
    p.add_argument("--num-trials", type=int, metavar="N", help="extend the experiment to this many trials")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="the experiment's time budget: its runs, this one included, take this long in all")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="run at most N trials at once")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the FAILED trials again, each from its latest checkpoint")
    p.add_argument("--address", metavar="ADDR",
                   help="the Ray cluster to run on ('auto', 'HOST:6379'); default RAY_ADDRESS, else a local Ray")
