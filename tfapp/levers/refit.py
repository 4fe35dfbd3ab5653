"""levers.refit.enabled: once validation has chosen how long to train (the best epoch, or the
epochs of the weight soup), a fresh model trains on the training and validation examples
together for that many epochs, on the same learning-rate schedule, and that model is the
one evaluated on test, saved and exported. The held-out examples then teach the model
instead of only choosing it, at about twice the training time.

Validation metrics stay those of the first model: the refit model has seen those
examples. A task that calibrates on validation data (QA's hand-off threshold) cannot
refit (`Task.combine` returns None), nor can distillation (the distiller, not the
task's model, trains) or a run with a lever that changes the optimizer (EMA: the refit
keeps no moving average)."""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import keras

from tfapp.core import run_layout as layout
from tfapp.core.datasets import with_counted_steps
from tfapp.core.errors import ConfigError
from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.task_contract import Refittable
from tfapp.levers.weight_soup import assign_weights, mean_weights
from tfapp.training.progress import TrainingStats


def epochs_to_refit(epochs: int, early_stopping, kept: Optional[list]) -> list[int]:
    """The 1-based epochs whose weights the refit keeps: `kept` (those the weights already
    average, e.g. a weight soup's), else early stopping's best epoch, else the last of
    `epochs`."""
    if kept:
        return list(kept)
    if early_stopping is not None and early_stopping.best_epoch is not None \
            and early_stopping.best is not None:
        return [int(early_stopping.best_epoch) + 1]
    return [epochs]


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


@dataclasses.dataclass
class RefitConfig:
    enabled: bool = False  # true: retrain on train + validation for the chosen epochs


@register_lever
class Refit(Lever):
    name = "refit"
    Config = RefitConfig
    legacy_train_keys = {"refit": "enabled"}
    order = 90  # after the levers that choose the epochs (weight soup)
    replaces_model = True

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def check(self, run) -> None:
        if run.distilling:
            raise ConfigError("levers.refit: not supported when distilling (the distiller, "
                              "not the task's model, is what trains)")
        for other in run.levers:
            if other is not self and other.optimizer_options():
                raise ConfigError(f"levers.refit: not supported with levers.{other.name} "
                                  f"(the refit does not carry its optimizer state; set one "
                                  f"of them off)")
        if not isinstance(run.task, Refittable):
            raise ConfigError(f"levers.refit: the {run.task.name} task cannot train on its "
                              f"validation data (it calibrates or is judged on it); set "
                              f"levers.refit.enabled false")
        self.combined = run.task.combine(run.splits["train"], run.splits["validation"])

    def after_fit(self, run) -> dict:
        """Measures the first model on validation, then trains a fresh one from the
        pretrained backbone on training + validation for the chosen epochs (the mean of
        their weights) and makes it the run's model."""
        cfg, ctx, task = run.cfg, run.ctx, run.task
        run.validation = task.evaluate(run.served(), run.splits["validation"], run.packer)
        epochs = epochs_to_refit(cfg.trainer.epochs, ctx.best_state.early_stopping,
                                 run.kept_epochs)
        started = time.perf_counter()
        keras.utils.set_random_seed(cfg.seed)
        loaded = ctx.load_backbone()
        train_ds, steps = with_counted_steps(task.dataset(
            self.combined, run.packer, cfg.trainer.global_batch_size, training=True))
        model, fitted = run.build(loaded)
        train_ds = run.training_data(train_ds)
        run.compile(fitted, steps, train_ds)
        keep = KeepEpochs(model, epochs)
        size = task.training_size(self.combined)
        say(f"refit: a fresh model on {size} training + validation examples, {max(epochs)} "
            f"epoch(s) of the {cfg.trainer.epochs}-epoch schedule ({steps} steps/epoch), "
            f"keeping epoch(s) {sorted(epochs)}")
        callbacks = [ctx.guard, TrainingStats(size, ["loss"], printer=say), keep]
        if ctx.chief:  # its own TensorBoard run beside the first model's train/validation
            callbacks.append(keras.callbacks.TensorBoard(
                str(layout.logs_dir(ctx.path, "refit")), update_freq="epoch"))
        ctx.fit(fitted, train_ds, None, callbacks, epochs=max(epochs), what="refit",
                remedy="lower optimizer.learning_rate or set levers.refit.enabled false")
        assign_mean(model, [keep.kept[e] for e in sorted(epochs)])
        run.model, run.loaded = model, loaded
        record = {"epochs": sorted(epochs), "examples": size,
                  "seconds": round(time.perf_counter() - started, 1)}
        say(f"refit: done in {record['seconds']:.0f} s")
        return record

    def model_card_lines(self, metrics: dict) -> list[str]:
        r = metrics[self.name]
        return [f"- refit: retrained on {r['examples']} training + validation examples, "
                f"epochs {r['epochs']} kept; the validation metrics below are the first "
                f"model's"]
