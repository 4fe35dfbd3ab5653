"""Hyperparameter search over normal training runs (KerasTuner)."""
