"""A finished run, back in memory: its config, task, model with final weights, and packer.

A run directory is self-contained: training saves the backbone's architecture and
vocabulary under RUN/backbone/ (keras-hub preset layout, no weights: RUN/model.weights.h5
holds them all), so a run restores after the backbone it started from is gone, and its
weights are read once."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras

from tfapp.core.backbone import LoadedBackbone, TextPacker, load_backbone, save_preset
from tfapp.core.config import Config, build_config, read_yaml
from tfapp.core.errors import ConfigError
from tfapp.core.lever import active_levers, model_builder
from tfapp.core.run_layout import (
    BACKBONE_DIR,
    CALIBRATION_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
)
from tfapp.core.task_contract import Task, get_task


def config_from_run(run_dir: Path) -> tuple[Config, type]:
    """The resolved config a run saved, typed with its task's schema."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    raw = read_yaml(path)
    task_cls = get_task(str(raw.get("task")))
    return build_config(raw, task_cls.Config, str(path)), task_cls


def save_run_backbone(loaded: LoadedBackbone, run_path: Path) -> Path:
    """Saves the backbone's architecture and vocabulary into the run (once: a resumed run
    keeps the one it started with)."""
    out = Path(run_path) / BACKBONE_DIR
    if not out.exists():
        save_preset(loaded, out, {"source": loaded.source}, with_weights=False)
    return out


def run_backbone(cfg: Config, run_path: Path) -> LoadedBackbone:
    """The run's backbone architecture (weights come from the run's weights file); runs
    written before backbones were saved with them fall back to `backbone.name`."""
    b = cfg.backbone
    saved = Path(run_path) / BACKBONE_DIR
    if saved.is_dir():
        return load_backbone(str(saved), b.exact_gelu, b.dropout, load_weights=False)
    return load_backbone(b.name, b.exact_gelu, b.dropout)


@dataclasses.dataclass
class RestoredRun:
    cfg: Config
    task: Task
    model: keras.Model
    packer: TextPacker
    loaded: LoadedBackbone  # its backbone is the model's, with the run's weights
    path: Path

    def __iter__(self):
        """(cfg, task, model, packer), the four things most callers need."""
        return iter((self.cfg, self.task, self.model, self.packer))

    def served(self) -> keras.Model:
        """The model in the precision of the run's export (metrics.json export.precision),
        so that evaluating it reproduces the run's metrics; the float32 model otherwise."""
        from tfapp.training.serving_precision import policy_copy

        metrics = self.path / METRICS_FILE
        precision = "float32"
        if metrics.is_file():
            precision = (json.loads(metrics.read_text(encoding="utf-8")).get("export") or {}
                         ).get("precision", "float32")
        if precision == "float32":
            return self.model
        return policy_copy(self.task, self.loaded, self.model, precision,
                           model_builder(active_levers(self.cfg), self.task))


def restore_run(run_dir: str | Path) -> RestoredRun:
    """A finished run with its final weights and calibration loaded."""
    run_path = Path(run_dir)
    cfg, task_cls = config_from_run(run_path)
    weights = run_path / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(f"{run_path}: no {WEIGHTS_FILE} (did the run finish?)")
    task = task_cls(cfg)
    loaded = run_backbone(cfg, run_path)
    model = model_builder(active_levers(cfg), task)(loaded)
    try:
        model.load_weights(str(weights))
    except Exception as e:  # h5py / Keras raise many kinds for a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{weights}: cannot read the run's weights ({reason}); the file "
                          f"is damaged or from another model") from None
    calibration = run_path / CALIBRATION_FILE
    if calibration.is_file():
        task.set_calibration(json.loads(calibration.read_text(encoding="utf-8")))
    return RestoredRun(cfg, task, model, TextPacker.from_config(loaded.tokenizer, cfg),
                       loaded, run_path)
