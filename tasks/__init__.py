"""Task packages, one per task: each holds its Task (config, inputs, head, loss, metrics,
serving signatures), registers it with tfapp.core.task, and keeps its scenario code.

Look tasks up with `tfapp.core.task.get_task(name)`."""
