"""The public namespace of the search package."""

from __future__ import annotations

import subprocess
import sys

import raytuner.search as search

EXPECTED = {
    "FINISHED", "Domain", "GPSearcher", "GridSearcher", "HyperOptSearcher", "OptunaSearcher", "Outcome",
    "RandomSearcher", "Searcher", "TPESearcher", "TrialEnd", "choice", "grid", "has_grid", "loguniform", "qloguniform",
    "quniform", "randint", "sample_config", "space_to_json", "uniform", "validate_space",
    "from_config", "space_from_json",
}


def test_all_is_sorted_complete_and_importable():
    assert search.__all__ == sorted(search.__all__)
    assert set(search.__all__) == EXPECTED
    assert all(hasattr(search, name) for name in search.__all__)


def test_searchers_implement_the_contract():
    for name in ("GPSearcher", "GridSearcher", "HyperOptSearcher", "OptunaSearcher", "RandomSearcher", "TPESearcher"):
        assert issubclass(getattr(search, name), search.Searcher)


def test_search_does_not_import_ray_or_pandas():
    # raytuner.search raises raytuner.errors: that import must stay as light.
    code = "import sys, raytuner.search; sys.exit('ray' in sys.modules or 'pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_no_top_level_search_or_schedulers_is_installed(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('search'), u.find_spec('schedulers'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]


def test_a_users_own_search_and_schedulers_modules_do_not_shadow_ours(tmp_path):
    # A script beside its own search.py and schedulers.py: Python puts the script's folder
    # first on sys.path, which used to break raytuner's imports of its own packages.
    for name in ("search", "schedulers"):
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the user\'s own {name}.py')\n")
    (tmp_path / "script.py").write_text(
        "import raytuner as rt\n"
        "searcher = rt.HyperOptSearcher(space={'x': rt.uniform(0, 1)}, seed=0)\n"
        "scheduler = rt.ASHAScheduler(max_resource=9)\n"
        "print(type(searcher).__module__, type(scheduler).__module__)\n"
    )
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["raytuner.search._hyperopt", "raytuner.schedulers._asha"]
