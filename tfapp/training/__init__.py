"""Training workflows: the driver (fine-tuning in fixed phases, tfapp.training.driver), the
run context every training workflow shares, the optimizer, progress callbacks, restoring a
finished run, the model card. Training levers are plugins in tfapp.levers."""
