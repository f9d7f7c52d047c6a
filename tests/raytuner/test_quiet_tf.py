"""TensorFlow's start-up chatter is filtered; its warnings and errors are not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from raytuner._worker.quiet_tf import keep

NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = "I0000 00:00:1795836893.181550   31826 port.cc:153] oneDNN custom operations are on.\n"
WARN = "W0000 00:00:1795836893.181550   31826 gpu_device.cc:2342] Cannot dlopen some GPU libraries.\n"
ERROR = "E0000 00:00:1795836893.181550   31826 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"


def test_info_lines_and_the_absl_notice_go_warnings_and_errors_stay():
    assert not keep(NOTICE, 1) and not keep(ONEDNN, 1)
    assert keep(WARN, 1) and keep(ERROR, 1) and keep("Traceback (most recent call last):\n", 1)
    assert keep(ONEDNN, 0) and keep(NOTICE, 0)  # TF_CPP_MIN_LOG_LEVEL=0: everything, as TensorFlow would
    assert not keep(WARN, 2) and keep(ERROR, 2)


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorflow") is None, reason="needs tensorflow")
def test_importing_tensorflow_in_a_worker_like_process_is_quiet():
    script = ("import sys\nfrom raytuner._worker import accelerators, quiet_tf\nseen = []\n"
              "quiet_tf.arm()\naccelerators.after_import('tensorflow', lambda tf: seen.append(1))\n"
              "import tensorflow\nprint('hooks', seen, file=sys.stderr)\nsys.stderr.write('after\\n')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "RAYTUNER_TF_STARTUP_LOGS")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr
    assert "hooks [1]" in done.stderr and done.stderr.endswith("after\n")  # other hooks run; stderr is back
