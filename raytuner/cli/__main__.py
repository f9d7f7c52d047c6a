"""``python -m raytuner.cli``: the ``raytuner`` console script."""

import sys

from raytuner.cli import main

sys.exit(main())
