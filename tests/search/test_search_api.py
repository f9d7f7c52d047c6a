"""The public namespace of the search package."""

from __future__ import annotations

import subprocess
import sys

import search

EXPECTED = {
    "FINISHED", "Domain", "GridSearcher", "HyperOptSearcher", "Outcome", "RandomSearcher",
    "Searcher", "TrialEnd", "choice", "grid", "has_grid", "loguniform", "qloguniform",
    "quniform", "randint", "sample_config", "space_to_json", "uniform", "validate_space",
}


def test_all_is_sorted_complete_and_importable():
    assert search.__all__ == sorted(search.__all__)
    assert set(search.__all__) == EXPECTED
    assert all(hasattr(search, name) for name in search.__all__)


def test_searchers_implement_the_contract():
    for name in ("GridSearcher", "HyperOptSearcher", "RandomSearcher"):
        assert issubclass(getattr(search, name), search.Searcher)


def test_search_does_not_import_ray():
    code = "import sys, search; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
