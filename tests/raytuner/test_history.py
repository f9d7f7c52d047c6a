"""results.jsonl folded into one trajectory: attempt markers, torn tails, damage."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytuner._storage.experiment import ExperimentStorage
from raytuner._storage.history import (
    attempt_marker,
    fold,
    last_row,
    read_history,
    repair_tail,
)
from raytuner.errors import ExperimentError


def _row(iteration, attempt=1, **extra):
    return {"loss": 1.0 / iteration, "iteration": iteration, "attempt": attempt, **extra}


def _write(path, lines, tail=b""):
    path.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines) + tail)


def test_a_restart_supersedes_the_rows_after_its_checkpoint():
    lines = [attempt_marker(1, 0, None, "start", 0.0)]
    lines += [_row(i, checkpoint="checkpoint_000005" if i == 5 else None) for i in range(1, 12)]
    lines += [attempt_marker(2, 5, "checkpoint_000005", "retry", 1.0)]
    lines += [_row(i, attempt=2) for i in range(6, 16)]
    history = fold(lines)
    assert [r["iteration"] for r in history.rows] == list(range(1, 16))
    assert [r["attempt"] for r in history.rows] == [1] * 5 + [2] * 10
    assert [r["iteration"] for r in history.superseded] == list(range(6, 12))
    assert history.attempt == 2
    assert history.last_checkpoint[0] == "checkpoint_000005"


def test_a_restart_from_scratch_supersedes_everything():
    lines = [attempt_marker(1, 0, None, "start", 0.0)] + [_row(i) for i in range(1, 18)]
    lines += [attempt_marker(2, 0, None, "resume", 1.0)] + [_row(i, attempt=2) for i in range(1, 21)]
    history = fold(lines)
    assert [r["iteration"] for r in history.rows] == list(range(1, 21))
    assert {r["attempt"] for r in history.rows} == {2}
    assert len(history.superseded) == 17


def test_a_torn_tail_is_skipped_by_readers_and_cut_by_the_writer(tmp_path, caplog):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.trial_path("00000").mkdir()
    path = storage.trial_path("00000") / "results.jsonl"
    _write(path, [_row(1), _row(2)], tail=b'{"loss": 0.3, "iter')
    with caplog.at_level(logging.WARNING, logger="raytuner"):
        history = read_history(path)
    assert [r["iteration"] for r in history.rows] == [1, 2] and history.torn == 19
    assert "cut short" in caplog.text
    assert last_row(path)["iteration"] == 2
    storage.append_results("00000", [_row(3)])
    assert [r["iteration"] for r in storage.read_results("00000")] == [1, 2, 3]
    assert read_history(path).torn == 0
    assert (path.parent / "results.torn").read_bytes() == b'{"loss": 0.3, "iter\n'


def test_a_damaged_line_before_the_tail_is_named_and_nothing_changes(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    storage.trial_path("00003").mkdir()
    path = storage.trial_path("00003") / "results.jsonl"
    path.write_bytes(b'{"iteration": 1}\n{"iteration": 2, oops\n{"iteration": 3}\n')
    before = path.read_bytes()
    history = read_history(path)
    assert history.damaged.line == 2 and [r["iteration"] for r in history.rows] == [1]
    with pytest.raises(ExperimentError, match=r"results.jsonl, line 2: not valid JSON.*Repair or delete"):
        storage.read_results("00003")
    assert path.read_bytes() == before
    path.write_bytes(b'{"iteration": 1}\n[1, 2]\n')
    assert "not a JSON object" in read_history(path).damaged.fault


def test_repair_tail_leaves_a_whole_file_alone(tmp_path):
    path = tmp_path / "results.jsonl"
    _write(path, [_row(1)])
    assert repair_tail(path, "00000") == 0 and not (tmp_path / "results.torn").exists()
    assert repair_tail(tmp_path / "missing.jsonl", "00000") == 0
    path.write_bytes(b'{"iteration": 1')  # a first line cut short: the whole file is torn
    assert repair_tail(path, "00000") == 15 and path.read_bytes() == b""


# A random life of a trial: reports, restarts from any earlier checkpoint, torn tails.
@st.composite
def _lives(draw):
    lines, iteration, attempt = [attempt_marker(1, 0, None, "start", 0.0)], 0, 1
    for _ in range(draw(st.integers(0, 6))):
        for _ in range(draw(st.integers(0, 8))):
            iteration += 1
            lines.append(_row(iteration, attempt))
        attempt += 1
        iteration = draw(st.integers(0, iteration))
        lines.append(attempt_marker(attempt, iteration, None, "retry", 0.0))
    for _ in range(draw(st.integers(0, 5))):
        iteration += 1
        lines.append(_row(iteration, attempt))
    return lines, draw(st.binary(max_size=30).filter(lambda b: b"\n" not in b))


@settings(max_examples=200, deadline=None)
@given(_lives())
def test_last_row_from_the_end_agrees_with_the_fold(tmp_path_factory, life):
    lines, tail = life
    path = tmp_path_factory.mktemp("h") / "results.jsonl"
    _write(path, lines, tail)
    history = read_history(path)
    iterations = [r["iteration"] for r in history.rows]
    assert iterations == list(range(1, len(iterations) + 1))  # one trajectory, 1..n
    assert last_row(path) == (history.rows[-1] if history.rows else None)
    assert len(history.rows) + len(history.superseded) == sum("loss" in line for line in lines)
