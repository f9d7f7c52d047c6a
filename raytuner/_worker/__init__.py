"""What runs inside a trial worker (a Ray actor): the actor itself, the trial session behind
``raytuner.report``, checkpoint packing, and the per-process GPU and TensorFlow setup.

Nothing here may import pandas, hyperopt or the driver: a worker must start fast."""
