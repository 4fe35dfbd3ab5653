"""levers.ema.momentum: evaluate, keep and export an exponential moving average of the
weights (Keras optimizer EMA). Validation, the epoch-end callbacks after it (best
checkpoint, early stopping's best weights, task metrics) and the final weights all see the
averaged weights; training steps keep updating the raw ones."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from tfapp.core.lever import Lever, register_lever


@dataclasses.dataclass
class EMAConfig:
    momentum: float = 0.0  # >0 (e.g. 0.99): the moving average is what is evaluated and served

    def problems(self) -> list[str]:
        return [] if 0 <= self.momentum < 1 else ["momentum must be in [0, 1)"]


class ResumableEMASwap(keras.callbacks.SwapEMAWeights):
    """Keras' SwapEMAWeights (averaged weights in the model at every epoch end, raw ones
    during the epoch) that also resumes right: backups are written at epoch end, so a
    backup holds the averages as the model's weights and the raw weights in the
    optimizer's average slots; after a restore they must be swapped back before training."""

    def __init__(self, backup_dir: Path):
        super().__init__(swap_on_epoch=True)
        self.backup_weights = Path(backup_dir) / "latest.weights.h5"

    def on_train_begin(self, logs=None):
        self._ema_weights_in_model = self.backup_weights.is_file()


@register_lever
class EMA(Lever):
    name = "ema"
    Config = EMAConfig
    legacy_train_keys = {"ema_momentum": "momentum"}

    @property
    def enabled(self) -> bool:
        return self.config.momentum > 0

    def optimizer_options(self) -> dict:
        return {"ema_momentum": self.config.momentum}

    def callbacks(self, run) -> dict[str, list]:
        return {"before_task": [ResumableEMASwap(run.ctx.backup_dir)]}

    def model_card_lines(self, metrics: dict) -> list[str]:
        return [f"- weights: the exponential moving average of training (momentum "
                f"{self.config.momentum:g})"]
