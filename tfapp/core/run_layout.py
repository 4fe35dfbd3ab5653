"""Every path a run directory holds, in one place. A run dir is self-contained: it restores
(tfapp.training.restore) without the backbone source it started from.

    RUN/
      config.yaml              the resolved config, every key
      metrics.json             history, validation and test metrics, lever records, export
      MODEL_CARD.md            what was trained, on what, how well
      model.weights.h5         the task model's weights (the served ones)
      calibration.json         the task's calibration (e.g. QA's hand-off threshold)
      backbone/                the backbone as a keras-hub preset (tokenizer included)
      checkpoints/best.weights.h5   best epoch on validation
      backup/                  BackupAndRestore + resume state (removed when training ends)
      logs/                    TensorBoard: train/, validation/, HParams, task summaries
      export/<task>/<version>/ SavedModels for TF Serving
      tapt/                    task-adaptive pretraining's own run (levers.tapt)
      members/<name>/logs/     an ensemble member's TensorBoard run (levers.ensemble)
      intermediate/run/        the intermediate-task fine-tune's own run (levers.intermediate)
      eval/<data stem>[-N]/    `tfapp.evaluate` results (metrics.json)
      export-int8/<task>/<v>/  `tfapp.quantize`'s int8 export, with quantization.json
      pruning.json             what `tfapp.prune` kept (in the pruned run)
      .lock                    held while a training writes here
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
WEIGHTS_FILE = "model.weights.h5"
CALIBRATION_FILE = "calibration.json"
BACKBONE_DIR = "backbone"
BEST_CHECKPOINT = Path("checkpoints") / "best.weights.h5"
BACKUP_DIR = "backup"
LOGS_DIR = "logs"
EXPORT_DIR = "export"
TAPT_DIR = "tapt"
MEMBERS_DIR = "members"
INTERMEDIATE_DIR = "intermediate"
LOCK_FILE = ".lock"
EVAL_DIR = "eval"
INT8_EXPORT_DIR = "export-int8"
QUANTIZATION_REPORT = "quantization.json"
PRUNING_REPORT = "pruning.json"


def export_base(run_dir, task: Optional[str] = None) -> Path:
    """RUN/export[/<task>]: the versioned SavedModels TF Serving reads."""
    base = Path(run_dir) / EXPORT_DIR
    return base / task if task else base


def logs_dir(run_dir, *sub: str) -> Path:
    """RUN/logs[/sub...]: TensorBoard's run folder (or one of its sub-runs)."""
    return Path(run_dir, LOGS_DIR, *sub)
