"""What runs in the driver process: the controller that owns trials and Ray actors, the
worker pool, starting Ray, resume, per-trial stop rules, resources and the terminal view."""
