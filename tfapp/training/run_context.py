"""One run context for every workflow that trains: fine-tuning (tfapp.training.driver),
masked-LM pretraining and distillation.

It owns what those share: the distribution strategy and dtype policy (chosen once), the
backbone built inside the strategy's scope, the run directory (written by the chief
only; other workers get a scratch directory removed at the end), the optimizer with loss
scaling, the standard callbacks (one BackupAndRestore per worker, TensorBoard,
EarlyStopping, best checkpoint, progress line) and the multi-worker preparation of fit.
"""
from __future__ import annotations

import dataclasses
import fcntl
import math
import shutil
import sys
from pathlib import Path
from typing import Optional

import keras

from tfapp.core import distribute
from tfapp.core import run_layout as layout
from tfapp.core.backbone import LoadedBackbone, load_backbone
from tfapp.core.config import Config, read_yaml, upgrade_raw
from tfapp.core.errors import ConfigError, TfappError
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text, check_writable, new_run_dir
from tfapp.training.optimizer import compile_with_optimizer
from tfapp.training.progress import TrainingStats
from tfapp.training.resume import ResumableBest

BEST_CHECKPOINT = layout.BEST_CHECKPOINT


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss, or epoch whose validation metrics,
    are NaN or infinite, and remembers where (Keras' TerminateOnNaN only stops)."""

    def __init__(self):
        super().__init__()
        self.where = None

    def _check(self, logs, where):
        bad = [k for k, v in (logs or {}).items()
               if isinstance(v, (int, float)) and not math.isfinite(v)]
        if bad and self.where is None:
            self.where = f"{bad[0]} is {logs[bad[0]]} at {where}"
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"the end of epoch {epoch + 1}")


def lock_run_dir(path: Path):
    """An exclusive lock on RUN/.lock, held until the process ends: a second training into
    the same run directory stops with one line instead of interleaving with the first."""
    handle = open(path / layout.LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise TfappError(f"{path} is in use by another training "
                         f"(locked: {path / layout.LOCK_FILE}); "
                         f"wait for it to finish or choose another --run-dir") from None
    return handle


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def check_same_config(saved_path: Path, cfg: Config) -> None:
    """A resumed run must train what its backup was made with: another training file, a
    dropped head or a new learning rate would silently skip optimizer state or restart
    the schedule. Refuses, naming the keys that differ."""
    if not saved_path.is_file():
        return
    saved = _flatten(upgrade_raw(read_yaml(saved_path)))
    now = _flatten(cfg.to_dict())
    # Where the run writes and what it profiles do not change what it trains.
    ignore = {"run.dir", "run.root", "runtime.profile_steps"}
    differ = sorted(k for k in saved.keys() | now.keys()
                    if k not in ignore and saved.get(k) != now.get(k))
    if differ:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in differ[:5])
        raise TfappError(f"{saved_path.parent}: cannot resume with a different config: {shown}"
                         + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
                         + "; re-run with the same settings or choose another --run-dir")


@dataclasses.dataclass
class RunContext:
    cfg: Config
    placement: distribute.Placement
    path: Optional[Path] = None
    resuming: bool = False
    guard: StopOnNonFinite = dataclasses.field(default_factory=StopOnNonFinite)
    best_state: Optional[ResumableBest] = None
    export_precision: Optional[str] = None  # chosen when the served model is made

    @classmethod
    def start(cls, cfg: Config) -> "RunContext":
        """Prints the config, seeds everything, and picks strategy and precision."""
        say("config:\n" + cfg.to_yaml().rstrip())
        keras.utils.set_random_seed(cfg.seed)
        placement = distribute.resolve(cfg.runtime)
        for reason in placement.reasons:
            say(reason)
        batch = cfg.trainer.global_batch_size
        if batch % placement.num_replicas:
            raise ConfigError(f"trainer.global_batch_size {batch} is not divisible by "
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
        self.resuming = (self.path / layout.BACKUP_DIR).is_dir()
        check_writable(self.path, "run directory")
        if self.chief:
            self._lock = lock_run_dir(self.path)
        cfg.run.dir = str(self.path)
        if self.resuming:
            check_same_config(self.path / layout.CONFIG_FILE, cfg)
        if self.chief:
            atomic_write_text(self.path / layout.CONFIG_FILE, cfg.to_yaml())
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
                optimizer_options: Optional[dict] = None, **compile_args) -> None:
        """Compiles with AdamW (+ loss scaling under mixed_float16) inside the strategy's
        scope; under MultiWorkerMirroredStrategy also prepares `fit`/`evaluate` to build
        from a local batch of `sample_data`."""
        with self.scope():
            compile_with_optimizer(model, self.cfg, self.precision, total_steps,
                                   optimizer_options, **compile_args)
        if self.placement.strategy_name == "multiworker":
            distribute.prepare_multiworker_fit(model, sample_data)

    @property
    def backup_dir(self) -> Path:
        """This worker's BackupAndRestore folder (and the state saved beside it)."""
        return self.worker_dir / layout.BACKUP_DIR

    def callbacks(self, examples_per_epoch: int, summary_keys: list[str],
                  monitor: Optional[tuple[str, str]] = None, first: tuple = (),
                  extra: Optional[dict] = None) -> list:
        """The standard callbacks. `first` (e.g. a task's callbacks that add validation
        metrics to the logs) run before the summary line, early stopping, checkpoints and
        TensorBoard read the logs. With `monitor` (log key, 'max' | 'min'): early stopping
        that restores the best weights, and the best checkpoint. `extra` ({slot: [...]},
        the levers'): "before_task" callbacks run before `first`, "after_summary" ones
        after the summary line and before early stopping."""
        train_cfg, extra = self.cfg.trainer, extra or {}
        callbacks = [self.guard, *extra.get("before_task", []), *first,
                     TrainingStats(examples_per_epoch, summary_keys, printer=say),
                     *extra.get("after_summary", [])]
        early_stopping = checkpoint = None
        if monitor:
            early_stopping = keras.callbacks.EarlyStopping(
                monitor=monitor[0], mode=monitor[1], patience=train_cfg.early_stopping_patience,
                restore_best_weights=True, verbose=1)
            callbacks.append(early_stopping)
        if self.chief:
            callbacks.append(keras.callbacks.TensorBoard(
                str(self.path / layout.LOGS_DIR), update_freq="epoch",
                profile_batch=tuple(self.cfg.runtime.profile_steps or (0, 0))))
            if monitor:
                checkpoint = keras.callbacks.ModelCheckpoint(
                    str(self.path / BEST_CHECKPOINT), monitor=monitor[0], mode=monitor[1],
                    save_best_only=True, save_weights_only=True)
                callbacks.append(checkpoint)
        # One backup per worker: they resume together from the same epoch. The state
        # BackupAndRestore lacks (best so far, patience, earlier epochs' logs) is saved
        # just before it, so the two never disagree by more than the epoch being written.
        self.best_state = ResumableBest(self.backup_dir, early_stopping, checkpoint)
        callbacks += [self.best_state, keras.callbacks.BackupAndRestore(str(self.backup_dir))]
        return callbacks

    def fit(self, model: keras.Model, train_ds, val_ds, callbacks: list,
            epochs: Optional[int] = None, what: str = "training",
            remedy: str = "lower optimizer.learning_rate or raise optimizer.warmup_ratio"):
        """`model.fit` for `epochs` (default trainer.epochs); progress bars on a terminal,
        one line per epoch in logs. A non-finite loss stops it with one line naming
        `what` diverged; nothing is published then."""
        history = model.fit(train_ds, validation_data=val_ds,
                            epochs=epochs or self.cfg.trainer.epochs,
                            callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
        if self.guard.where is not None:
            self.close()
            best = self.path / BEST_CHECKPOINT
            kept = (f"; the last good weights are in {best}"
                    if self.chief and best.is_file() and what == "training" else "")
            raise TfappError(f"{what} diverged: {self.guard.where}; nothing was exported or "
                             f"published{kept} ({remedy})")
        return history

    def close(self) -> None:
        """Removes a non-chief worker's scratch directory."""
        if self.path is not None and not self.chief:
            shutil.rmtree(self.worker_dir, ignore_errors=True)
