"""TensorBoard's HParams dashboard for every run: the settings that shape a model and its
final validation / test metrics, so runs can be compared side by side."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

from tfapp.core.config import Config

# Where summary metrics are nested too deep or are tables, not one number.
_SKIP = {"per_class", "confusion_matrix", "tradeoff", "history"}


def hparams_of(cfg: Config) -> dict:
    """The config values that matter for model quality, as HParams values."""
    o, t, b = cfg.optimizer, cfg.trainer, cfg.backbone
    out = {"task": cfg.task, "seed": cfg.seed, "backbone": b.name,
           "max_seq_length": b.max_seq_length, "pooling": b.pooling,
           "learning_rate": o.learning_rate, "epochs": t.epochs,
           "global_batch_size": t.global_batch_size, "warmup_ratio": o.warmup_ratio,
           "weight_decay": o.weight_decay, "layer_decay": o.layer_decay,
           "head_lr_multiplier": o.head_lr_multiplier,
           "frozen_backbone_steps": o.frozen_backbone_steps,
           "label_smoothing": t.label_smoothing, "truncation": cfg.data.truncation,
           "dropout": -1.0 if b.dropout is None else b.dropout,  # -1: the checkpoint's
           "precision": cfg.runtime.precision}
    # Every lever's scalar settings, as levers.<name>.<key>.
    for name, section in dataclasses.asdict(cfg.levers).items():
        out.update({f"levers.{name}.{key}": value for key, value in section.items()
                    if isinstance(value, (bool, int, float, str))})
    return out


def final_metrics(metrics: dict) -> dict:
    """{"final/<split>/<path>": value} for every number in the validation and test results."""
    out = {}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in _SKIP:
                    walk(value, f"{path}/{key}")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            out[path] = float(node)

    for split in ("validation", "test"):
        walk(metrics.get(split) or {}, f"final/{split}")
    return out


def write_hparams(log_dir: Path, cfg: Config, metrics: dict) -> None:
    """Writes the run's hparams and final metrics into `log_dir` (TensorBoard's run)."""
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=0):
        hp.hparams(hparams_of(cfg), trial_id=str(cfg.run.dir))
        for tag, value in final_metrics(metrics).items():
            tf.summary.scalar(tag, value)
    writer.close()
