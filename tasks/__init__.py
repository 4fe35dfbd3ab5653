"""Task packages, one per task: each holds its Task (config, inputs, head, loss, metrics,
serving signatures), registers it with tfapp.core.task_contract, and keeps its scenario code.

Look tasks up with `tfapp.core.task_contract.get_task(name)`. The registry checks the
marker below, so a different top-level `tasks` package is never taken for this one."""
TFAPP_TASK_PACKAGE = True
