"""Training workflows: the run context every training workflow shares, fine-tuning a task
(trainer), the optimizer, progress callbacks, restoring a finished run, the model card."""
