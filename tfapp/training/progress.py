"""Progress reporting for every training workflow: one summary line per epoch, and the
learning rate, throughput and loss scale in the epoch logs (so TensorBoard gets them)."""
from __future__ import annotations

import time

import keras


class TrainingStats(keras.callbacks.Callback):
    """Adds `learning_rate`, `examples_per_second` (the whole epoch, validation included),
    `train_examples_per_second` (its training steps only) and under mixed_float16
    `loss_scale` to the epoch logs and prints one summary line per epoch. Put it before
    TensorBoard so these values reach TensorBoard too."""

    def __init__(self, examples_per_epoch: int, summary_keys: list[str], printer=print):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.summary_keys = summary_keys
        self.printer = printer
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._trained = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        seconds = max(time.perf_counter() - self._start, 1e-9)
        # The optimizer evaluates its schedule at the current step.
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        logs["examples_per_second"] = self.examples_per_epoch / seconds
        # The training steps alone, without the epoch's validation and callbacks.
        logs["train_examples_per_second"] = self.examples_per_epoch / max(
            self._trained - self._start, 1e-9)
        scale = getattr(self.model.optimizer, "dynamic_scale", None)
        if scale is not None:  # mixed_float16: the loss scale, to spot overflow storms
            logs["loss_scale"] = float(keras.ops.convert_to_numpy(scale))
        shown = "  ".join(f"{k} {logs[k]:.4f}" for k in self.summary_keys if k in logs)
        self.printer(f"epoch {epoch + 1}: {shown}  lr {logs['learning_rate']:.2e}  "
                     f"{logs['examples_per_second']:.1f} ex/s  {seconds:.1f}s")
