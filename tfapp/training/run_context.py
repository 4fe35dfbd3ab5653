"""One run context for every workflow that trains: fine-tuning (tfapp.training.trainer),
masked-LM pretraining and distillation.

It owns what those share: the distribution strategy and dtype policy (chosen once), the
backbone built inside the strategy's scope, the run directory (written by the chief
only; other workers get a scratch directory removed at the end), the optimizer with loss
scaling, the standard callbacks (one BackupAndRestore per worker, TensorBoard,
EarlyStopping, best checkpoint, progress line) and the multi-worker preparation of fit.
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Optional

import keras

from tfapp.core import distribute
from tfapp.core.backbone import LoadedBackbone, load_backbone
from tfapp.core.config import Config
from tfapp.core.errors import ConfigError
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text, new_run_dir
from tfapp.training.optimizer import compile_with_optimizer
from tfapp.training.progress import TrainingStats

BEST_CHECKPOINT = Path("checkpoints") / "best.weights.h5"


@dataclasses.dataclass
class RunContext:
    cfg: Config
    placement: distribute.Placement
    path: Optional[Path] = None
    resuming: bool = False

    @classmethod
    def start(cls, cfg: Config) -> "RunContext":
        """Prints the config, seeds everything, and picks strategy and precision."""
        say("config:\n" + cfg.to_yaml().rstrip())
        keras.utils.set_random_seed(cfg.seed)
        placement = distribute.resolve(cfg.train)
        for reason in placement.reasons:
            say(reason)
        batch = cfg.train.global_batch_size
        if batch % placement.num_replicas:
            raise ConfigError(f"train.global_batch_size {batch} is not divisible by "
                              f"{placement.num_replicas} replicas")
        if placement.strategy_name == "tpu" and not cfg.data.static_shapes:
            cfg.data.static_shapes = True
            say("data.static_shapes on: TPUs compile one program per batch shape")
        return cls(cfg, placement)

    # --- placement ------------------------------------------------------------------
    @property
    def strategy(self):
        return self.placement.strategy

    @property
    def precision(self) -> str:
        return self.placement.precision

    @property
    def chief(self) -> bool:
        return distribute.is_chief(self.placement.strategy)

    def scope(self):
        return self.placement.strategy.scope()

    def load_backbone(self, spec: Optional[str] = None) -> LoadedBackbone:
        """The configured backbone (or `spec`), its variables created on the strategy."""
        b = self.cfg.backbone
        with self.scope():
            loaded = load_backbone(spec or b.name, b.exact_gelu, b.dropout)
        say(f"backbone: {loaded.source}, {loaded.backbone.count_params():,} parameters")
        return loaded

    # --- run directory --------------------------------------------------------------
    def choose_run_dir(self, run_dir: Optional[str], default_name: str) -> Path:
        """The run directory: `run_dir`, else run.dir, else a new runs/<name>/<time>."""
        cfg = self.cfg
        self.path = Path(run_dir or cfg.run.dir or new_run_dir(cfg.run.root, default_name))
        return self.path

    def open_run_dir(self) -> Path:
        """Creates (or re-opens, to resume) the chosen run directory and saves the
        resolved config."""
        cfg = self.cfg
        self.resuming = (self.path / "backup").is_dir()
        self.path.mkdir(parents=True, exist_ok=True)
        cfg.run.dir = str(self.path)
        if self.chief:
            atomic_write_text(self.path / "config.yaml", cfg.to_yaml())
        say(f"run dir: {self.path}" + (" (resuming from its backup)" if self.resuming else ""))
        return self.path

    @property
    def worker_dir(self) -> Path:
        """Where this process may write: the run dir for the chief, a scratch dir for the
        other workers (every worker runs every callback, since their predictions are
        collective ops, but only the chief's outputs are kept)."""
        if self.chief:
            return self.path
        return self.path / f".worker-{distribute.worker_index()}"

    # --- model and fit --------------------------------------------------------------
    def compile(self, model: keras.Model, total_steps: int, sample_data=None,
                **compile_args) -> None:
        """Compiles with AdamW (+ loss scaling under mixed_float16) inside the strategy's
        scope; under MultiWorkerMirroredStrategy also prepares `fit`/`evaluate` to build
        from a local batch of `sample_data`."""
        with self.scope():
            compile_with_optimizer(model, self.cfg.train, self.precision, total_steps,
                                   **compile_args)
        if self.placement.strategy_name == "multiworker":
            distribute.prepare_multiworker_fit(model, sample_data)

    def callbacks(self, examples_per_epoch: int, summary_keys: list[str],
                  monitor: Optional[tuple[str, str]] = None, first: tuple = ()) -> list:
        """The standard callbacks. `first` (e.g. a task's callbacks that add validation
        metrics to the logs) run before the summary line, early stopping, checkpoints and
        TensorBoard read the logs. With `monitor` (log key, 'max' | 'min'): early stopping
        that restores the best weights, and the best checkpoint."""
        train_cfg = self.cfg.train
        callbacks = [
            *first,
            TrainingStats(examples_per_epoch, summary_keys, printer=say),
            # One backup per worker: they resume together from the same epoch.
            keras.callbacks.BackupAndRestore(str(self.worker_dir / "backup")),
        ]
        if monitor:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor[0], mode=monitor[1], patience=train_cfg.early_stopping_patience,
                restore_best_weights=True, verbose=1))
        if self.chief:
            callbacks.append(keras.callbacks.TensorBoard(
                str(self.path / "logs"), update_freq="epoch",
                profile_batch=tuple(train_cfg.profile_steps or (0, 0))))
            if monitor:
                callbacks.append(keras.callbacks.ModelCheckpoint(
                    str(self.path / BEST_CHECKPOINT), monitor=monitor[0], mode=monitor[1],
                    save_best_only=True, save_weights_only=True))
        return callbacks

    def fit(self, model: keras.Model, train_ds, val_ds, callbacks: list):
        """`model.fit` for the configured epochs; progress bars on a terminal, one line per
        epoch in logs."""
        return model.fit(train_ds, validation_data=val_ds, epochs=self.cfg.train.epochs,
                         callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)

    def close(self) -> None:
        """Removes a non-chief worker's scratch directory."""
        if self.path is not None and not self.chief:
            shutil.rmtree(self.worker_dir, ignore_errors=True)
