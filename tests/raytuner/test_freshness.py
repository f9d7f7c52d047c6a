"""A warm worker's modules against their files on disk (raytuner._worker.freshness)."""

from __future__ import annotations

import importlib
import os
import sys
import time

from raytuner._worker.freshness import changed_modules


def test_a_module_whose_file_changed_after_the_time_is_named_and_others_are_not(tmp_path, monkeypatch):
    (tmp_path / "rt_fresh_a.py").write_text("VALUE = 1\n")
    (tmp_path / "rt_fresh_b.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("rt_fresh_a", "rt_fresh_b"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.import_module(name)
    since = time.time()
    assert not {"rt_fresh_a", "rt_fresh_b"} & set(changed_modules(since))
    later = since + 2
    os.utime(tmp_path / "rt_fresh_a.py", (later, later))
    assert "rt_fresh_a" in changed_modules(since) and "rt_fresh_b" not in changed_modules(since)
    (tmp_path / "rt_fresh_b.py").unlink()  # gone from disk: nothing to compare, not counted
    assert "rt_fresh_b" not in changed_modules(since)
    for name in ("rt_fresh_a", "rt_fresh_b"):
        del sys.modules[name]
