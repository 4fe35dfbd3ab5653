"""train.refit: once validation has chosen how long to train (the best epoch, or the
epochs of the weight soup), a fresh model trains on the training and validation examples
together for that many epochs, on the same learning-rate schedule, and that model is the
one evaluated on test, saved and exported. The held-out examples then teach the model
instead of only choosing it, at about twice the training time.

Validation metrics stay those of the first model: the refit model has seen those
examples. A task that calibrates on validation data (QA's hand-off threshold) cannot
refit (`Task.combine` returns None), nor can distillation (the distiller, not the
task's model, trains) or EMA runs (the refit keeps no moving average)."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional

import keras

from tfapp.core.config import Config
from tfapp.core.data import with_counted_steps
from tfapp.core.errors import ConfigError, TfappError
from tfapp.core.log import say
from tfapp.training.consistency import repeat_rows
from tfapp.training.progress import TrainingStats
from tfapp.training.weight_soup import assign_weights, mean_weights


def examples_to_refit(cfg: Config, task, splits: dict, distilling: bool):
    """The training + validation examples the refit trains on (None: train.refit is off);
    an unsupported combination is a one-line ConfigError before anything is written."""
    if not cfg.train.refit:
        return None
    if distilling:
        raise ConfigError("train.refit: not supported when distilling (the distiller, not "
                          "the task's model, is what trains)")
    if cfg.train.ema_momentum > 0:
        raise ConfigError("train.refit: not supported with train.ema_momentum > 0 (set one "
                          "of them off)")
    combined = task.combine(splits["train"], splits["validation"])
    if combined is None:
        raise ConfigError(f"train.refit: the {task.name} task cannot train on its validation "
                          f"data (it calibrates or is judged on it); set train.refit false")
    return combined


def epochs_to_refit(cfg: Config, early_stopping, soup: Optional[dict]) -> list[int]:
    """The 1-based epochs whose weights the refit keeps: the soup's, else early stopping's
    best epoch, else the last configured epoch."""
    if soup is not None:
        return list(soup["epochs"])
    if early_stopping is not None and early_stopping.best_epoch is not None \
            and early_stopping.best is not None:
        return [int(early_stopping.best_epoch) + 1]
    return [cfg.train.epochs]


class KeepEpochs(keras.callbacks.Callback):
    """Copies `source`'s trainable weights at the end of the listed (1-based) epochs (the
    task's model, which the fitted model may wrap)."""

    def __init__(self, source: keras.Model, epochs: list[int]):
        super().__init__()
        self.source = source
        self.epochs = set(epochs)
        self.kept: dict[int, list] = {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self.kept[epoch + 1] = [keras.ops.convert_to_numpy(v)
                                    for v in self.source.trainable_weights]


def assign_mean(model: keras.Model, weight_lists: list[list]) -> None:
    """Sets `model`'s trainable weights to the element-wise mean of `weight_lists` (each a
    list of arrays in `model.trainable_weights` order)."""
    assign_weights(model, mean_weights(weight_lists))


def refit(ctx, task, combined, packer, build: Callable, epochs: list[int]) -> tuple:
    """Trains `build(loaded) -> (model, training model, regularised)` from the pretrained
    backbone on `combined` for max(epochs) epochs and sets the model's weights to the mean
    of those epochs' weights. Returns (model, loaded backbone, record for metrics.json)."""
    cfg = ctx.cfg
    started = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    loaded = ctx.load_backbone()
    train_ds, steps = with_counted_steps(
        task.dataset(combined, packer, cfg.train.global_batch_size, training=True))
    model, fitted, regularised = build(loaded)
    if regularised:
        train_ds = repeat_rows(train_ds)
    ctx.compile(fitted, steps * cfg.train.epochs, train_ds, **task.compile_args())
    keep = KeepEpochs(model, epochs)
    size = task.training_size(combined)
    say(f"refit: a fresh model on {size} training + validation examples, {max(epochs)} "
        f"epoch(s) of the {cfg.train.epochs}-epoch schedule ({steps} steps/epoch), keeping "
        f"epoch(s) {sorted(epochs)}")
    callbacks = [ctx.guard, TrainingStats(size, ["loss"], printer=say), keep]
    if ctx.chief:  # its own TensorBoard run beside the first model's train/validation
        callbacks.append(keras.callbacks.TensorBoard(str(ctx.path / "logs" / "refit"),
                                                     update_freq="epoch"))
    fitted.fit(train_ds, epochs=max(epochs), verbose=1 if sys.stdout.isatty() else 2,
               callbacks=callbacks)
    if ctx.guard.where is not None:
        raise TfappError(f"refit diverged: {ctx.guard.where}; nothing was exported or "
                         f"published (lower train.learning_rate or set train.refit false)")
    assign_mean(model, [keep.kept[e] for e in sorted(epochs)])
    record = {"epochs": sorted(epochs), "examples": size,
              "seconds": round(time.perf_counter() - started, 1)}
    say(f"refit: done in {record['seconds']:.0f} s")
    return model, loaded, record
