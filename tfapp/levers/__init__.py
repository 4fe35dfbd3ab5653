"""Training levers as plugins: one module each, registering a tfapp.core.lever.Lever with
its own config section (levers.<name>), a check that refuses what it cannot serve, and the
hooks the training driver calls at its phases. The driver finds them by the registry and
never names one."""
