"""The values a control command may carry, and the one function that checks them.

The dashboard, ``raytuner control``, the driver, and the Tuner and ``Tuner.resume`` for their
own limits all call :func:`clean_command` on what they receive (a JSON body, command-line
flags, a file in ``control/``, arguments), so a value one of them accepts is one the others
accept, and none can take the driver past these bounds:

- ``max_concurrent``: a whole number in [1, :data:`MAX_CONCURRENT`];
- ``num_trials``: a whole number in [1, :data:`MAX_NUM_TRIALS`];
- ``time_budget_s``: a finite number of seconds in (0, :data:`MAX_TIME_BUDGET_S`];
- ``trial_id``: a trial's id (:data:`TRIAL_ID_RE`).

Pure: no Ray, no storage. Errors are :class:`~raytuner.errors.ConfigError` in the house
template, naming the field, its value (shortened: a value may be a megabyte of text) and
the fix.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from raytuner.errors import ConfigError, invalid

#: At most this many trials at once. No cluster raytuner drives holds more actors, and the
#: driver starts the ones it may in every turn of its loop: a bound keeps one command from
#: making that loop (and its memory) unbounded.
MAX_CONCURRENT = 10_000
#: Trials in all, at most.
MAX_NUM_TRIALS = 10_000_000
#: Ten years, in seconds: longer is not a budget, and a finite bound keeps deadlines finite.
MAX_TIME_BUDGET_S = 10 * 365.25 * 24 * 3600
#: A trial's id: letters and digits (the driver names them 00000, 00001, ...).
TRIAL_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}\Z")  # \Z: "$" would let a newline end it

#: Each command with the arguments it takes.
COMMANDS: dict[str, tuple[str, ...]] = {
    "stop_trial": ("trial_id",),
    "retry_trial": ("trial_id",),
    "set_limits": ("max_concurrent", "num_trials", "time_budget_s"),
    "end_experiment": (),
}
_LIMITS = {  # name: (whole number?, highest, what it is)
    "max_concurrent": (True, MAX_CONCURRENT, "trials at once"),
    "num_trials": (True, MAX_NUM_TRIALS, "trials in all"),
    "time_budget_s": (False, MAX_TIME_BUDGET_S, "seconds"),
}


class Command(NamedTuple):
    """A command as it may be sent: a known name, and only its own arguments, typed."""

    command: str
    args: dict[str, Any]


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` that stays short and cannot fail: a 400-digit integer, a list
    nested 100,000 deep or a megabyte of text is described, not printed."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        digits = len(str(abs(value))) if value.bit_length() < 4000 else None
        if digits is not None and digits <= 20:
            return repr(value)
        return f"a {digits}-digit integer" if digits else "an integer of thousands of digits"
    if isinstance(value, str):
        text = repr(value[:width])
        return text if len(value) <= width else f"{text[:-1]}...{text[-1]} ({len(value)} characters)"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return f"an object of {len(value)} field{'s' if len(value) != 1 else ''}"
    return f"a {type(value).__name__}"


def number_text(value: int | float) -> str:
    """A limit as a person (or a command line) writes it: ``10000000``, ``0.5``."""
    return str(value) if isinstance(value, int) else f"{value:g}"


class _Shown:
    """A value in an error message, through :func:`shown` (``invalid`` uses its repr)."""

    def __init__(self, value: Any):
        self.text = shown(value)

    def __repr__(self) -> str:
        return self.text


def _number(owner: str, name: str, value: Any) -> int | float:
    integer, high, unit = _LIMITS[name]
    if integer:
        rule, fix = f"a whole number from 1 to {high:,}", f"Give {name} between 1 and {high:,}."
    else:
        rule = f"a finite number of seconds above 0 and at most {high:,.0f} (10 years)"
        fix = f"Give {name} in seconds, e.g. 3600 for an hour."
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(owner, name, _Shown(value), f"{rule} ({unit}), as a JSON number",
                      f"Send it as a number, e.g. {name}={4 if integer else 3600}.")
    if isinstance(value, float) and not (math.isfinite(value) and (value.is_integer() or not integer)):
        raise invalid(owner, name, _Shown(value), rule, fix)
    if not (1 <= value <= high if integer else 0 < value <= high):
        raise invalid(owner, name, _Shown(value), rule, fix)
    return int(value) if integer else float(value)


def clean_command(command: Any, args: Any = None, *, owner: str | None = None) -> Command:
    """The command, checked and typed, or a ConfigError naming the field, the value and
    the fix. ``args`` may be None or a mapping of argument names to values; an argument
    given as None counts as not given. ``owner`` names what took the values in errors
    (default: the command), e.g. ``Tuner.resume`` for its limits.

    >>> clean_command("set_limits", {"max_concurrent": 4.0})
    Command(command='set_limits', args={'max_concurrent': 4})
    """
    if not isinstance(command, str) or command not in COMMANDS:
        raise invalid("control", "command", _Shown(command), f"one of {', '.join(COMMANDS)}",
                      "Send the command's name as a string.")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise invalid(command, "args", _Shown(args), "an object of argument names to values",
                      f"Send e.g. {{{', '.join(repr(a) + ': ...' for a in COMMANDS[command])}}}.")
    unknown = [key for key in args if key not in COMMANDS[command]]
    if unknown:
        takes = ", ".join(COMMANDS[command]) or "no arguments"
        raise ConfigError(f"{command}: {shown(unknown[0])} is not one of its arguments; it takes {takes}. "
                          f"Leave {shown(unknown[0])} out.")
    clean: dict[str, Any] = {}
    if command in ("stop_trial", "retry_trial"):
        trial_id = args.get("trial_id")
        if not isinstance(trial_id, str) or not TRIAL_ID_RE.match(trial_id):
            raise invalid(command, "trial_id", _Shown(trial_id), "a trial's id (letters and digits)",
                          "Give one such as '00003'; `raytuner show EXP` lists them.")
        clean["trial_id"] = trial_id
    elif command == "set_limits":
        for name in COMMANDS[command]:
            if args.get(name) is not None:
                clean[name] = _number(owner or command, name, args[name])
        if not clean:
            raise ConfigError("set_limits: needs at least one of max_concurrent, num_trials, time_budget_s; "
                              "give the limits to change, e.g. max_concurrent=4.")
    return Command(command, clean)
