"""The public namespace: sorted, complete `__all__`; no Ray import."""

from __future__ import annotations

import subprocess
import sys

import raytuner.schedulers as schedulers
from raytuner.schedulers import Scheduler


def test_all_is_sorted_and_complete():
    assert schedulers.__all__ == sorted(schedulers.__all__)
    public = {name for name in vars(schedulers) if not name.startswith("_")}
    assert public - {"annotations"} == set(schedulers.__all__)


def test_every_scheduler_implements_the_contract():
    for name in schedulers.__all__:
        obj = getattr(schedulers, name)
        if isinstance(obj, type) and name.endswith("Scheduler") and obj is not Scheduler:
            assert issubclass(obj, Scheduler)
            assert obj.__doc__ and "Args:" in obj.__doc__ and "Example:" in obj.__doc__


def test_importing_schedulers_does_not_import_ray_or_pandas():
    # raytuner.schedulers raises raytuner.errors: that import must stay as light.
    code = "import sys, raytuner.schedulers; print(sorted({'ray', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docstring_examples_run():
    import doctest

    from raytuner.schedulers import _asha, _fifo, _hyperband, _median, _pb2, _pbt, _replay

    for module in (_asha, _fifo, _hyperband, _median, _pb2, _pbt, _replay):
        assert doctest.testmod(module).failed == 0
