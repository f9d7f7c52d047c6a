"""Experiment storage: the one seam through which the driver, the readers (``rt.load``, the
CLI, the report) and every other part reach an experiment's files."""

#: Where experiments go when no ``storage_path`` is given (and where the CLI looks).
DEFAULT_ROOT = "~/raytuner_results"
