"""A failed trial's traceback in one line, with the user's own frame (no Ray)."""

from __future__ import annotations

import raytuner
from raytuner._driver.failures import group, parse

PACKAGE = raytuner.__file__.rsplit("/", 1)[0]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    f'  File "{PACKAGE}/_worker/actor.py", line 214, in run\n    self._fn(dict(self.spec.config))\n'
    '  File "/home/u/train.py", line 12, in train\n    lr = config["learning_rate"]\n'
    "         ~~~~~~^^^^^^^^^^^^^^^^^\n"
    '  File "/usr/lib/python3.11/site-packages/keras/src/x.py", line 3, in fit\n    raise KeyError(k)\n'
    "KeyError: 'learning_rate'\n"
)


def test_a_traceback_gives_type_message_and_the_users_frame():
    failure = parse(TRACEBACK)
    assert failure.headline == "KeyError: 'learning_rate'"
    assert failure.frame == "/home/u/train.py:12 in train" and failure.code == 'lr = config["learning_rate"]'


def test_only_the_last_of_several_failures_counts():
    record = f"--- failure 1 at Sat ---\n{TRACEBACK}--- failure 2 at Sun ---\nThe trial's worker died: ActorDiedError\n"
    failure = parse(record)
    assert failure.headline == "The trial's worker died: ActorDiedError" and failure.frame is None


def test_failures_group_by_error_most_frequent_first():
    other = TRACEBACK.replace("KeyError: 'learning_rate'", "ValueError: bad")
    groups = group([("00000", other), ("00001", TRACEBACK), ("00002", TRACEBACK)])
    assert [(g[0].headline, g[1]) for g in groups] == [("KeyError: 'learning_rate'", ["00001", "00002"]),
                                                      ("ValueError: bad", ["00000"])]


def test_one_raising_line_is_one_problem_whatever_its_messages_say():
    def raised(x):
        return TRACEBACK.replace("KeyError: 'learning_rate'", f"ValueError: bad x={x}")

    groups = group([(f"{i:05d}", raised(i / 10)) for i in range(16)] + [("00016", TRACEBACK)])
    assert [(g[0].headline, len(g[1])) for g in groups] == [("ValueError: bad x=0.0 (and 15 other messages)", 16),
                                                            ("KeyError: 'learning_rate'", 1)]
    elsewhere = raised(0.5).replace("line 12, in train", "line 40, in train")
    assert len(group([("00000", raised(0.5)), ("00001", elsewhere)])) == 2  # another line: another problem
    died = "The trial's worker died: ActorDiedError: pid {}"
    assert len(group([("00000", died.format(1)), ("00001", died.format(2))])) == 2  # no frame: by message
