"""A trial's log captured at the file-descriptor level (no Ray).

Each test runs its capture in a child Python process: the capture takes the process's own
descriptors 1 and 2, and pytest's must never be taken. The child prints what the test
checks as JSON once its descriptors are back; TMPDIR gives it a capture folder of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from raytuner._worker import logs

TRIAL_DIR = "/results/exp/trials/00000"

PRELUDE = """
import ctypes, faulthandler, json, os, subprocess, sys, threading
from raytuner._worker.logs import TrialLog

def identity():
    return [[os.fstat(fd).st_dev, os.fstat(fd).st_ino] for fd in (1, 2)], [id(sys.stdout), id(sys.stderr)]

def done(**facts):
    sys.stdout.write(json.dumps(facts))
"""


def run_child(tmp_path, body: str, expect_rc: int = 0) -> dict:
    script = PRELUDE + textwrap.dedent(body)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert child.returncode == expect_rc, child.stderr
    return json.loads(child.stdout) if expect_rc == 0 else {"stderr": child.stderr}


def capture_files(tmp_path) -> list[str]:
    folder = tmp_path / f"raytuner-stdio-{os.getuid()}"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_every_kind_of_write_lands_in_order_and_the_descriptors_come_back(tmp_path):
    facts = run_child(tmp_path, f"""
        before = identity()
        log = TrialLog({TRIAL_DIR!r}, max_bytes=100_000)
        log.start()
        print("1 print")
        sys.stdout.buffer.write(b"2 buffer\\n")
        faulthandler.enable()
        print("3 stderr after faulthandler.enable", file=sys.stderr)
        subprocess.run([sys.executable, "-c", "print('4 child to stdout=sys.stdout')"], stdout=sys.stdout, check=True)
        sys.stdout.reconfigure(line_buffering=True)
        print("5 after reconfigure")
        os.write(1, b"6 os.write 1\\n")
        os.write(2, b"7 os.write 2\\n")
        subprocess.run([sys.executable, "-c", "import os; os.write(1, b'8 child fd 1\\\\n'); os.write(2, b'9 child fd 2\\\\n')"],
                       check=True)
        ctypes.CDLL(None).write(1, b"10 libc write\\n", 14)
        streams = [sys.stdout.name, sys.stdout.isatty(), sys.stdout.fileno(), sys.stderr.fileno()]
        first = log.take()
        thread = threading.Thread(target=print, args=("11 a thread",))
        thread.start()
        thread.join()
        print("12 last, no newline", end="")
        log.stop()
        done(first=first, rest=log.take(), streams=streams, same=identity() == before, after=log.take())
    """)
    assert facts["first"] == "".join(f"{line}\n" for line in [
        "1 print", "2 buffer", "3 stderr after faulthandler.enable", "4 child to stdout=sys.stdout",
        "5 after reconfigure", "6 os.write 1", "7 os.write 2", "8 child fd 1", "9 child fd 2", "10 libc write"])
    assert facts["rest"] == "11 a thread\n12 last, no newline"
    assert facts["streams"] == ["<stdout>", False, 1, 2]  # Keras' progress bar sees no tty
    assert facts["same"] and facts["after"] == ""
    assert capture_files(tmp_path) == []


def test_c_stdio_is_flushed_into_the_trial_that_wrote_it(tmp_path):
    facts = run_child(tmp_path, f"""
        libc = ctypes.CDLL(None)
        log = TrialLog({TRIAL_DIR!r})
        log.start()
        libc.printf(b"printf in the trial\\n")  # fd 1 is no tty: C buffers it until it is flushed
        log.stop()
        text = log.take()
        libc.printf(b"")
        done(text=text)
    """)
    assert facts["text"] == "printf in the trial\n"


def test_megabytes_without_a_reader_never_block_and_the_cap_is_noted_once(tmp_path):
    facts = run_child(tmp_path, f"""
        log = TrialLog({TRIAL_DIR!r}, max_bytes=1 << 20)
        log.start()
        chunk = "x" * 65535 + "\\n"
        writer = threading.Thread(target=lambda: [sys.stdout.write(chunk) for _ in range(9 * 16)])
        writer.start()
        writer.join()  # 9 MiB and no one read any of it
        first = log.take()
        sys.stdout.write(chunk * 16)
        pending = log.pending()
        size_after_cut = os.fstat(1).st_size
        folder = os.listdir(os.path.join(os.environ["TMPDIR"], f"raytuner-stdio-{{os.getuid()}}"))
        log.stop()
        done(first_len=len(first), tail=first[-200:], later=log.take(), pending=pending, size=size_after_cut,
             folder=folder)
    """)
    note = "\n[raytuner: this trial printed more than 1048576 bytes in one run; the rest was dropped]\n"
    assert facts["first_len"] == (1 << 20) + len(note) and facts["tail"].endswith(note)
    assert facts["later"] == "" and facts["pending"] is False
    assert facts["size"] == 0 and facts["folder"] == []  # past the cap nothing is kept, on disk either


def test_a_character_split_between_two_reads_comes_out_whole(tmp_path):
    facts = run_child(tmp_path, f"""
        log = TrialLog({TRIAL_DIR!r})
        log.start()
        data = "é€".encode()
        os.write(1, data[:3])
        first = log.take()
        os.write(1, data[3:])
        second = log.take()
        os.write(1, data[:1])  # cut short at the trial's end: replaced, not lost
        log.stop()
        done(first=first, second=second, last=log.take())
    """)
    assert (facts["first"], facts["second"], facts["last"]) == ("é", "€", "\ufffd")


def test_a_crashed_workers_unshipped_output_and_traceback_are_recovered_once(tmp_path, monkeypatch):
    crashed = run_child(tmp_path, f"""
        log = TrialLog({TRIAL_DIR!r})
        log.start()
        print("shipped")
        assert log.take() == "shipped\\n"
        print("not shipped yet")
        faulthandler.enable()
        ctypes.string_at(0)
    """, expect_rc=-11)
    assert "Segmentation fault" not in crashed["stderr"]  # it went to the capture
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    text = logs.recover(TRIAL_DIR)
    assert text.startswith("not shipped yet\nFatal Python error: Segmentation fault")
    assert 'File "<string>"' in text  # the traceback of the crashing frame
    assert logs.recover(TRIAL_DIR) == "" and capture_files(tmp_path) == []
    assert logs.recover("/results/exp/trials/00001") == ""


def test_capture_files_of_processes_long_gone_are_swept(tmp_path):
    folder = tmp_path / f"raytuner-stdio-{os.getuid()}"
    folder.mkdir(mode=0o700)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    old = time.time() - logs.STALE_S - 60
    for name, age in [(f"a.{gone.pid}.log", old), (f"b.{os.getpid()}.log", old), (f"c.{gone.pid}.log", None)]:
        (folder / name).write_bytes(b"")
        if age:
            os.utime(folder / name, (age, age))
    run_child(tmp_path, f"""
        log = TrialLog({TRIAL_DIR!r})
        log.start()
        log.stop()
        done()
    """)
    assert capture_files(tmp_path) == [f"b.{os.getpid()}.log", f"c.{gone.pid}.log"]


@pytest.mark.parametrize("mode", [0o755, 0o777])
def test_a_capture_folder_open_to_others_is_not_used(tmp_path, mode):
    folder = tmp_path / f"raytuner-stdio-{os.getuid()}"
    folder.mkdir()
    folder.chmod(mode)
    facts = run_child(tmp_path, f"""
        log = TrialLog({TRIAL_DIR!r})
        log.start()
        print("kept private")
        where = os.readlink("/proc/self/fd/1") if os.path.isdir("/proc/self/fd") else ""
        log.stop()
        done(text=log.take(), where=where)
    """)
    assert facts["text"] == "kept private\n"
    assert os.path.dirname(facts["where"]) != str(folder) and list(folder.iterdir()) == []
