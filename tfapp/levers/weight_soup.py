"""A greedy soup of one run's epochs (Wortsman et al. 2022, "Model soups"): the weights
at the end of each epoch are kept; after training, starting from the best epoch by the
monitored validation metric, each next-best epoch is averaged in if the average scores at
least as well on validation. Averaging neighbouring points of one fine-tuning trajectory
lands in a flatter region than any single epoch; validation decides, so the soup is never
worse there than the best epoch alone, and test data is never looked at."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Callable, Optional

import keras
import numpy as np

from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.task_callbacks import EpochMetrics


@dataclasses.dataclass
class Ingredient:
    epoch: int  # 1-based
    score: float  # the monitored validation value at that epoch's end
    weights: list  # numpy copies of the model's trainable weights


class EpochWeights(keras.callbacks.Callback):
    """Keeps every epoch's trainable weights with its monitored validation value. Put it
    after the callbacks that add the monitored value to the logs. With `backup_dir` each
    epoch is also written there, so a run killed and resumed soups the same epochs as one
    that never stopped (BackupAndRestore removes the folder when training ends)."""

    def __init__(self, monitor: str, backup_dir: Optional[Path] = None):
        super().__init__()
        self.monitor = monitor
        self.folder = Path(backup_dir) / "soup" if backup_dir is not None else None
        self.ingredients: list[Ingredient] = []

    def on_train_begin(self, logs=None):
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("epoch_*.npz")):
            if path.name.endswith(".partial.npz"):  # killed while writing it
                continue
            with np.load(path) as saved:
                weights = [saved[f"w{k}"] for k in range(len(saved.files) - 2)]
                self._keep(Ingredient(int(saved["epoch"]), float(saved["score"]), weights))

    def _keep(self, ingredient: Ingredient) -> None:
        # An epoch run again after a kill replaces the copy saved before it.
        self.ingredients = [i for i in self.ingredients if i.epoch != ingredient.epoch]
        self.ingredients.append(ingredient)

    def on_epoch_end(self, epoch, logs=None):
        score = (logs or {}).get(self.monitor)
        if score is None or not math.isfinite(float(score)):
            return
        ingredient = Ingredient(epoch + 1, float(score), [keras.ops.convert_to_numpy(v)
                                                          for v in self.model.trainable_weights])
        self._keep(ingredient)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"epoch_{ingredient.epoch:04d}.npz"
            partial = path.with_name(path.stem + ".partial.npz")
            np.savez(partial, epoch=ingredient.epoch, score=ingredient.score,
                     **{f"w{k}": w for k, w in enumerate(ingredient.weights)})
            os.replace(partial, path)


def validation_scorer(model: keras.Model, val_ds, task_callbacks, monitor: str) -> Callable:
    """() -> the monitored validation value of `model`'s current weights, computed as
    during `fit`: Keras' compiled metrics on `val_ds` (prefixed val_) and the task's
    whole-set epoch metrics (EpochMetrics callbacks)."""
    def score() -> float:
        logs = {"val_" + k: v for k, v in
                model.evaluate(val_ds, return_dict=True, verbose=0).items()}
        for callback in task_callbacks:
            if isinstance(callback, EpochMetrics):
                logs.update(callback.metrics_fn(model))
        if monitor not in logs:
            raise KeyError(f"{monitor} is not among the validation logs ({', '.join(logs)})")
        return float(logs[monitor])
    return score


def assign_weights(model: keras.Model, weights: list) -> None:
    """Sets `model`'s trainable weights (in `model.trainable_weights` order)."""
    for variable, value in zip(model.trainable_weights, weights):
        variable.assign(value)


def mean_weights(weight_lists: list[list]) -> list:
    """The element-wise mean of several lists of weight arrays, in their dtype."""
    return [np.mean([weights[k] for weights in weight_lists], axis=0).astype(w.dtype)
            for k, w in enumerate(weight_lists[0])]


def greedy_soup(model: keras.Model, ingredients: list[Ingredient], score: Callable[[], float],
                mode: str = "max", current: Optional[Ingredient] = None,
                log: Callable = print) -> dict:
    """Sets `model`'s trainable weights to the greedy soup of `ingredients` (plus
    `current`, the weights in the model now, when its epoch is not among them: a resumed
    run's best epoch from before the kill) and returns what was chosen:
    {"epochs", "validation", "best_epoch", "best_epoch_validation"}."""
    pool = list(ingredients)
    if current is not None and current.epoch not in {i.epoch for i in pool}:
        pool.append(current)
    if not pool:
        raise ValueError("no epochs to average: the monitored metric was never logged")
    order = sorted(pool, key=lambda i: i.score, reverse=(mode == "max"))
    chosen, best = [order[0]], order[0].score
    for candidate in order[1:]:
        assign_weights(model, mean_weights([i.weights for i in chosen + [candidate]]))
        value = score()
        kept = value >= best if mode == "max" else value <= best
        log(f"weight soup: epochs {sorted(i.epoch for i in chosen + [candidate])} "
            f"{'kept' if kept else 'dropped'} (validation {value:.4f}, best so far {best:.4f})")
        if kept:
            chosen.append(candidate)
            best = value
    assign_weights(model, mean_weights([i.weights for i in chosen]))
    return {"epochs": sorted(i.epoch for i in chosen), "validation": best,
            "best_epoch": order[0].epoch, "best_epoch_validation": order[0].score}


def soup_after_fit(model: keras.Model, epoch_weights: EpochWeights, early_stopping,
                   score: Callable[[], float], mode: str, log: Callable = print) -> dict:
    """The greedy soup of a finished `fit`: the epochs `epoch_weights` kept, plus the best
    weights early stopping restored into `model` (when that epoch came before a resume).
    The returned choice also holds the soup's `seconds`."""
    started = time.perf_counter()
    current = None
    if early_stopping is not None and early_stopping.best is not None:
        current = Ingredient(int(early_stopping.best_epoch) + 1, float(early_stopping.best),
                             [keras.ops.convert_to_numpy(v) for v in model.trainable_weights])
    soup = greedy_soup(model, epoch_weights.ingredients, score, mode, current, log)
    soup["seconds"] = round(time.perf_counter() - started, 1)
    log(f"weight soup: epochs {soup['epochs']}, validation {epoch_weights.monitor} "
        f"{soup['validation']:.4f} (best epoch {soup['best_epoch']} alone: "
        f"{soup['best_epoch_validation']:.4f})")
    return soup


@dataclasses.dataclass
class WeightSoupConfig:
    enabled: bool = False  # true: average the best epochs' weights while validation holds


@register_lever
class WeightSoup(Lever):
    """levers.weight_soup.enabled: the greedy soup of the run's epochs replaces the best
    epoch's weights; the epochs it averaged are what a refit (if any) reproduces."""

    name = "weight_soup"
    Config = WeightSoupConfig
    legacy_train_keys = {"weight_soup": "enabled"}
    order = 40
    replaces_model = True

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def callbacks(self, run) -> dict[str, list]:
        self.epoch_weights = EpochWeights(run.monitor[0], run.ctx.backup_dir)
        return {"after_summary": [self.epoch_weights]}

    def after_fit(self, run) -> dict:
        score = validation_scorer(run.fitted, run.val_ds, run.task_callbacks, run.monitor[0])
        soup = soup_after_fit(run.fitted, self.epoch_weights, run.ctx.best_state.early_stopping,
                              score, run.monitor[1], log=say)
        run.kept_epochs = list(soup["epochs"])
        return soup

    def model_card_lines(self, metrics: dict) -> list[str]:
        return [f"- weights: the average of epochs {metrics[self.name]['epochs']} "
                f"(greedy weight soup on validation)"]
