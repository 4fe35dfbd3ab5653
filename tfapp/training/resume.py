"""What BackupAndRestore does not keep across a kill: early stopping's and the best
checkpoint's best-so-far and patience, and the epoch logs of the epochs before the kill.

Saved with the backup after every epoch and restored when a run resumes, so a worse epoch
after a resume cannot overwrite checkpoints/best.weights.h5, patience keeps counting, and
metrics.json's history holds every epoch."""
from __future__ import annotations

import json
import math
from pathlib import Path

import keras

from tfapp.core.rundir import atomic_write_text

STATE_FILE = "tfapp_state.json"


def _number(value):
    value = float(value)
    return value if math.isfinite(value) else None


class ResumableBest(keras.callbacks.Callback):
    """Keeps EarlyStopping / ModelCheckpoint state and the epoch logs in `backup_dir`.
    Put it after them in the callback list (their on_train_begin resets the state this
    restores; their on_epoch_end updates what this saves)."""

    def __init__(self, backup_dir: Path, early_stopping=None, checkpoint=None):
        super().__init__()
        self.path = Path(backup_dir) / STATE_FILE
        self.early_stopping, self.checkpoint = early_stopping, checkpoint
        self.epochs: list[dict] = []  # logs of every epoch, those before a kill included
        self.restored = False

    def on_train_begin(self, logs=None):
        if not self.path.is_file():
            return
        state = json.loads(self.path.read_text(encoding="utf-8"))
        self.epochs = state["epochs"]
        es, ckpt = self.early_stopping, self.checkpoint
        if es is not None and state.get("early_stopping"):
            s = state["early_stopping"]
            if s["best"] is not None:
                es.best, es.best_epoch = s["best"], s["best_epoch"]
            es.wait = s["wait"]
            best_file = Path(ckpt.filepath) if ckpt is not None else None
            if es.restore_best_weights and best_file is not None and best_file.is_file():
                # EarlyStopping keeps the best weights in memory only; without them it
                # would take the first epoch after the kill as "best". BackupAndRestore
                # (after this callback) then loads the latest weights back.
                self.model.load_weights(str(best_file))
                es.best_weights = self.model.get_weights()
        if ckpt is not None and state.get("checkpoint_best") is not None:
            ckpt.best = state["checkpoint_best"]
        self.restored = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({k: float(v) for k, v in (logs or {}).items()
                            if isinstance(v, (int, float))})
        es, ckpt = self.early_stopping, self.checkpoint
        state = {"epochs": self.epochs, "last_epoch": epoch}
        if es is not None:
            state["early_stopping"] = {
                "best": None if es.best is None else _number(es.best),
                "best_epoch": int(getattr(es, "best_epoch", 0)), "wait": int(es.wait)}
        if ckpt is not None and ckpt.best is not None:
            state["checkpoint_best"] = _number(ckpt.best)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(state))

    def history(self) -> dict:
        """{log key: one value per epoch}, across the kill."""
        keys = dict.fromkeys(k for logs in self.epochs for k in logs)
        return {k: [logs.get(k, float("nan")) for logs in self.epochs] for k in keys}
