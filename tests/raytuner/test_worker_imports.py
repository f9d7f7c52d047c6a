"""A trial worker stays light: the modules it imports pull in neither pandas nor hyperopt.

pandas (Results) and hyperopt (HyperOptSearcher, with scipy) belong to the driver; each
would add a fraction of a second to every worker start and memory to every worker.
"""

from __future__ import annotations

import subprocess
import sys

# What a worker process imports: Ray, the actor module and its protocol, and the package
# the trainable uses (``import raytuner as rt; rt.report(...)``, the trial context).
WORKER_IMPORTS = """
import sys
import ray
import raytuner as rt
import raytuner._worker.actor, raytuner._worker.protocol
rt.report, rt.get_context, rt.get_checkpoint, rt.TrialContext
print(sorted({'pandas', 'hyperopt', 'scipy'} & set(sys.modules)))
"""


def test_worker_modules_import_neither_pandas_nor_hyperopt():
    out = subprocess.run([sys.executable, "-c", WORKER_IMPORTS], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
