"""raytuner's warnings inside a trial: taken for the driver's terminal, and written to the
trial's log exactly as they would be without the relay (no Ray; each case runs in a child
Python process, whose logging configuration is its own)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from raytuner._worker.notes import MAX_PENDING


def run_child(body: str) -> dict:
    script = "import json, logging, sys\nfrom raytuner._worker.notes import TrialNotes\n" + textwrap.dedent(body)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    return {"out": json.loads(child.stdout), "stderr": child.stderr}


def test_raytuners_warnings_are_taken_and_still_reach_stderr_as_without_the_relay():
    child = run_child("""
        notes = TrialNotes()
        notes.start()
        logging.getLogger("raytuner.keras").warning("Trial %s: pass initial_epoch", "00003")
        logging.getLogger("raytuner.keras").info("not a warning")
        logging.getLogger("user").warning("the user's own")
        logging.getLogger("raytuner._worker.actor").error("an error")
        first = notes.take()
        notes.stop()
        logging.getLogger("raytuner.keras").warning("after the trial")
        print(json.dumps([first, notes.take()]))
    """)
    assert child["out"] == [[["Trial %s: pass initial_epoch", "Trial 00003: pass initial_epoch"],
                             ["an error", "an error"]], []]
    # Python's last resort writes each warning once: the relay neither hides nor doubles one.
    assert child["stderr"] == ("Trial 00003: pass initial_epoch\nthe user's own\nan error\nafter the trial\n")


@pytest.mark.parametrize("config", ["logging.basicConfig(format='%(levelname)s %(message)s')",
                                    "logging.getLogger('raytuner').addHandler(logging.StreamHandler())"])
def test_a_trainable_that_configures_logging_gets_each_warning_once(config):
    child = run_child(f"""
        notes = TrialNotes()
        notes.start()
        {config}
        logging.getLogger("raytuner.keras").warning("advice")
        print(json.dumps(notes.take()))
        notes.stop()
    """)
    assert child["out"] == [["advice", "advice"]]
    assert child["stderr"].count("advice") == 1, child["stderr"]


def test_a_trial_warning_in_a_loop_keeps_a_bounded_number_of_notes():
    child = run_child("""
        notes = TrialNotes()
        notes.start()
        for i in range(1000):
            logging.getLogger("raytuner.keras").warning("step %d", i)
        print(json.dumps(len(notes.take())))
        notes.stop()
    """)
    assert child["out"] == MAX_PENDING
