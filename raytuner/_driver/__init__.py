"""What runs in the driver process: the trial lifecycle that owns the trials (no Ray), the
controller that owns the Ray side (actors, futures, storage writes, callbacks), the one
path that runs an experiment new or resumed, the worker pool, starting Ray, resources and
autoscaling, per-trial stop rules and the terminal view."""
