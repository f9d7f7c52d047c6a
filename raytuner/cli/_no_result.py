"""Why a ranking command has nothing to show (``best``, ``show``, ``report``): the error a
user reads, with what the trials did instead and what to type next."""

from __future__ import annotations

from raytuner._display import cli_command
from raytuner.cli._common import CLIError


def no_result(results, metric: str) -> CLIError:
    """The error when no trial has a finite ``metric`` to rank: whether they all failed (the
    most common error), have not reported yet, reported nothing, or reported other metrics."""
    from raytuner._driver import failures

    failed = [t for t in results.trials if t.error and t.status.value == "FAILED"]
    unfinished = [t for t in results.trials if not t.status.is_finished()]
    name = results.path.name
    if failed and len(failed) + len(unfinished) == len(results.trials):
        groups = failures.group((t.trial_id, t.error) for t in failed)
        first, ids = groups[0]
        where = f" at {first.frame}" if first.frame else ""
        others = f" ({len(groups) - 1} other error{'s' if len(groups) > 2 else ''} too)" if len(groups) > 1 else ""
        still = f", {len(unfinished)} not finished" if unfinished else ""
        return CLIError(
            f"No trial of {name!r} succeeded: {len(failed)} of {len(results.trials)} failed{still}. The most "
            f"common error ({len(ids)} trials): {first.headline}{where}{others}. Tracebacks: "
            f"{results.path / 'trials' / ids[0] / 'error.txt'}; `{cli_command('show', results.path)}` lists them all."
        )
    # Unfinished trials report later only while a driver runs them; otherwise a resume does.
    later = (" Try again in a moment." if results.status == "RUNNING" else
             f" Its driver is not running ({results.status}): `{cli_command('resume', results.path)}` continues it.")
    if unfinished and len(unfinished) == len(results.trials):
        return CLIError(f"No trial of {name!r} has reported {metric!r} yet ({len(unfinished)} not finished).{later}")
    reported = sorted({k for t in results.trials for k in t.metrics})
    if not reported:
        later = later if unfinished else ""
        return CLIError(f"No trial of {name!r} has reported any value ({len(results.trials)} trials): there is "
                        f"nothing to rank or plot yet.{later}")
    return CLIError(
        f"No trial of {name!r} reported a finite {metric!r} ({len(results.trials)} trials). "
        f"Metrics reported: {', '.join(reported)}. Pass one with --metric."
    )


def failed_best(results, best, metric: str) -> CLIError:
    """The error when the best value of ``metric`` is that of ``best``, a FAILED trial: no
    result to use."""
    failed = sum(t.status.value == "FAILED" for t in results.trials)
    if failed + sum(not t.status.is_finished() for t in results.trials) == len(results.trials):
        return no_result(results, metric)  # no trial succeeded: its most common error says why
    others = len(results.trials) - failed
    return CLIError(
        f"No trial of {results.path.name!r} that did not fail reported a finite {metric!r} ({others} other "
        f"trial{'s' if others != 1 else ''}); the best value comes from trial {best.trial_id}, which FAILED. "
        f"`raytuner show {results.path.name}` lists the failures; pass --metric to rank by another metric.")
