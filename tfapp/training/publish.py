"""The driver's last phases: the served model, its calibration and metrics, and what the
chief publishes (weights, export, metrics.json, HParams, the model card)."""
from __future__ import annotations

import time

import keras

from tfapp.core import run_layout as layout
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text, dir_size_bytes, write_json
from tfapp.core.task_contract import Calibrated
from tfapp.serving.saved_model import export_saved_model
from tfapp.training.hparams import write_hparams
from tfapp.training.model_card import model_card
from tfapp.training.run_context import RunContext
from tfapp.training.serving_precision import model_to_serve


def served_model(ctx: RunContext, task, loaded, model, build=None):
    """What is evaluated, calibrated and exported is what will be served: the trained
    model, or a copy with the same weights in the export's precision (export.precision);
    `build(loaded)` makes the copy's structure when it is not the task's model."""
    served, ctx.export_precision = model_to_serve(task, loaded, model, ctx.precision,
                                                  ctx.cfg.export, build)
    return served


def evaluate_served(ctx: RunContext, task, served, splits: dict, packer, history,
                    fitted, validation: dict | None = None) -> dict:
    """Calibration, then validation and test metrics of the served model (`validation`:
    metrics computed earlier, from a model that had not trained on those examples)."""
    calibration = (task.calibrate(served, splits["validation"], packer)
                   if isinstance(task, Calibrated) else None)
    if calibration is not None:
        task.set_calibration(calibration)
        say("calibration: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in calibration.items()))
        if ctx.chief:
            write_json(ctx.path / layout.CALIBRATION_FILE, calibration)
    metrics = {"history": ctx.best_state.history() if ctx.best_state is not None else
               {k: [float(v) for v in vals] for k, vals in history.history.items()},
               # Restored by BackupAndRestore, so a resumed run counts its earlier steps.
               "optimizer_steps": int(keras.ops.convert_to_numpy(fitted.optimizer.iterations)),
               "validation": (validation if validation is not None else
                              task.evaluate(served, splits["validation"], packer)),
               "test": task.evaluate(served, splits["test"], packer)}
    if calibration is not None:
        metrics["calibration"] = calibration
    for split in ("validation", "test"):
        if metrics[split]:
            say(f"{split} metrics:\n" + task.format_metrics(metrics[split]))
    return metrics


def publish(ctx: RunContext, task, model, served, packer, loaded, splits, metrics: dict,
            started: float, train_seconds: float, card_lines: list[str]) -> None:
    """The chief writes weights, the export, metrics.json and the model card
    (`card_lines`: the levers' lines)."""
    cfg, run_path = ctx.cfg, ctx.path
    model.save_weights(str(run_path / layout.WEIGHTS_FILE))
    export_dir = None
    if cfg.export.enabled:
        export_dir = export_saved_model(task, served, packer,
                                        layout.export_base(run_path, cfg.task),
                                        cfg.export.version, cfg.export.profile)
        size_mb = dir_size_bytes(export_dir) / 2**20
        metrics["export"] = {"path": str(export_dir), "size_mb": round(size_mb, 1),
                             "precision": ctx.export_precision}
        say(f"exported SavedModel: {export_dir} ({size_mb:.1f} MiB)")
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    metrics["train_examples"] = task.training_size(splits["train"])
    write_json(run_path / layout.METRICS_FILE, metrics)
    write_hparams(layout.logs_dir(run_path), cfg, metrics)
    atomic_write_text(run_path / layout.MODEL_CARD_FILE,
                      model_card(cfg, task, loaded, splits, metrics, export_dir, train_seconds,
                                 card_lines))
