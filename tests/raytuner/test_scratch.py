"""Trial runs' scratch folders: a run's folder is its own while its process lives, and the
next run on the node removes the folders of processes that are gone (however they ended)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from raytuner._worker import scratch
from raytuner._worker.scratch import OWNER, Scratch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpdir_here(tmp_path, monkeypatch):
    """$TMPDIR for this process (tempfile caches it) and for its children."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return tmp_path


def root_of(tmp: Path) -> Path:
    return tmp / f"raytuner-scratch-{os.getuid()}"


def killed_runs(*trial_ids: str) -> list[Path]:
    """Scratch folders with a checkpoint in each, made by processes that are then SIGKILLed
    (as Ray kills a worker whose trial still runs), all killed once all are made."""
    code = textwrap.dedent("""
        import sys
        from raytuner._worker.scratch import Scratch
        folder = Scratch(sys.argv[1]).path()
        (folder / "restored").mkdir()
        (folder / "restored" / "weights").write_bytes(b"x" * 4096)
        print(folder, flush=True)
        sys.stdin.read()  # until killed
    """)
    children = [subprocess.Popen([sys.executable, "-c", code, trial_id], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True)
                for trial_id in trial_ids]
    folders = [Path(child.stdout.readline().strip()) for child in children]
    for child in children:
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        child.stdout.close()
        child.stdin.close()
    return folders


def killed_run(trial_id: str = "00007") -> Path:
    return killed_runs(trial_id)[0]


def test_a_run_makes_its_folder_on_first_use_in_the_users_private_folder_and_removes_it(tmpdir_here):
    run = Scratch("00003")
    assert not root_of(tmpdir_here).exists()  # most runs need none
    folder = run.path()
    assert run.path() == folder
    assert folder.parent == root_of(tmpdir_here) and folder.name.startswith("00003-")
    assert (root_of(tmpdir_here).stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == [OWNER]
    run.remove()
    assert not folder.exists()
    run.remove()  # twice is harmless


def test_the_folder_of_a_killed_process_goes_at_the_next_run_and_a_live_ones_stays(tmpdir_here):
    dead = killed_run()
    live = Scratch("00001")
    assert (dead / "restored" / "weights").exists()  # what the kill left: a checkpoint's copy
    mine = live.path()  # this run's folder sweeps the others first
    assert not dead.exists()
    assert mine.exists()
    assert scratch.sweep(root_of(tmpdir_here), background=False) == []  # a live run's lock holds
    assert sorted(p.name for p in root_of(tmpdir_here).iterdir()) == [mine.name]
    live.remove()


def test_a_sweep_names_what_it_removed_and_deletes_it(tmpdir_here):
    dead = killed_runs("00000", "00001")
    root = root_of(tmpdir_here)
    assert sorted(scratch.sweep(root, background=False)) == sorted(p.name for p in dead)
    assert list(root.iterdir()) == []


def test_a_sweep_deletes_in_a_thread_after_moving_the_folders_aside_at_once(tmpdir_here):
    dead = killed_run()
    root = root_of(tmpdir_here)
    release = threading.Event()
    started = threading.Event()
    real_delete = scratch._delete

    def slow_delete(trash):
        started.set()
        release.wait(30)
        real_delete(trash)

    scratch._delete = slow_delete
    try:
        assert scratch.sweep(root) == [dead.name]
        assert started.wait(30)
        assert not dead.exists()  # moved aside before sweep returned
        assert [p.name[:len(".trash-")] for p in root.iterdir()] == [".trash-"]
        release.set()
        for thread in threading.enumerate():
            if thread.name == "raytuner-scratch-sweep":
                thread.join(30)
    finally:
        scratch._delete = real_delete
    assert list(root.iterdir()) == []


def test_trash_a_killed_sweep_left_is_deleted_by_the_next(tmpdir_here):
    root = root_of(tmpdir_here)
    (root / ".trash-abc" / "folder").mkdir(parents=True)
    (root / ".trash-abc" / "folder" / "weights").write_bytes(b"x")
    scratch.sweep(root, background=False)
    assert list(root.iterdir()) == []


def test_a_folder_without_its_lock_file_is_left_alone(tmpdir_here):
    """Its maker made it and has not yet locked and named its lock file (or died there)."""
    root = scratch.user_folder("raytuner-scratch")
    (root / "00004-made").mkdir()
    (root / "00005-locking").mkdir()
    (root / "00005-locking" / f"{OWNER}-new").touch()
    assert scratch.sweep(root, background=False) == []
    assert sorted(p.name for p in root.iterdir()) == ["00004-made", "00005-locking"]


def test_links_are_not_followed(tmpdir_here, tmp_path_factory):
    """A link in the folder, to a folder or as the lock file, is no run's: nothing through it
    is touched."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / OWNER).touch()
    (elsewhere / "data").write_text("keep")
    root = scratch.user_folder("raytuner-scratch")
    (root / "00001-link").symlink_to(elsewhere)
    (root / "00002-linked-lock").mkdir()
    (root / "00002-linked-lock" / OWNER).symlink_to(elsewhere / OWNER)
    assert scratch.sweep(root, background=False) == []
    assert (elsewhere / "data").read_text() == "keep"


def test_a_lock_held_by_another_process_keeps_the_folder(tmpdir_here):
    root = scratch.user_folder("raytuner-scratch")
    folder = root / "00009-other"
    folder.mkdir()
    (folder / OWNER).touch()
    code = textwrap.dedent(f"""
        import fcntl, os, sys
        fd = os.open({str(folder / OWNER)!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert scratch.sweep(root, background=False) == []
        assert folder.exists()
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
    assert scratch.sweep(root, background=False) == ["00009-other"]  # it ended: the lock is free


@pytest.mark.parametrize("mode", [0o777, 0o755])
def test_a_folder_open_to_others_is_not_used_and_nothing_is_swept(tmpdir_here, mode):
    root = root_of(tmpdir_here)
    root.mkdir()
    root.chmod(mode)
    (root / "00001-someone").mkdir()
    (root / "00001-someone" / OWNER).touch()
    run = Scratch("00002")
    folder = run.path()
    assert folder.parent == tmpdir_here and folder.name.startswith("raytuner-00002-")
    assert (root / "00001-someone").exists()
    run.remove()
    assert not folder.exists()


def test_two_runs_in_one_process_hold_their_own_folders(tmpdir_here):
    """flock locks belong to open files, not processes: a sweep in the same process cannot
    take a live run's lock either."""
    first, second = Scratch("00000"), Scratch("00001")
    a, b = first.path(), second.path()
    assert scratch.sweep(root_of(tmpdir_here), background=False) == []
    first.remove()
    assert b.exists() and not a.exists()
    fd = os.open(b / OWNER, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    second.remove()


def test_a_driver_sweeps_its_node_as_it_starts_without_making_the_folder(tmpdir_here):
    assert scratch.sweep_this_node() == []
    assert not root_of(tmpdir_here).exists()  # nothing made on a driver that runs no trial
    dead = killed_run()
    assert scratch.sweep_this_node() == [dead.name]
    assert not dead.exists()
