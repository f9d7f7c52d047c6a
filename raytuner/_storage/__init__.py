"""Experiment storage: the one seam through which the driver, the readers (``rt.load``, the
CLI, the report) and every other part reach an experiment's files."""
