"""Fine-tuning one task end to end, in named phases: read data, open the run, build
inputs, build and compile the model, fit, pick the served model, evaluate, publish.

Talks to tasks only through the Task contract (tfapp.core.task)."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import keras
import numpy as np

from tfapp.core.backbone import TextPacker
from tfapp.core.config import Config
from tfapp.core.data import count_truncated, with_counted_steps
from tfapp.core.errors import ConfigError
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text, dir_size_bytes, write_json
from tfapp.serving.export import export_saved_model
from tfapp.training.hparams import write_hparams
from tfapp.training.model_card import model_card
from tfapp.training.optimizer import compile_with_optimizer
from tfapp.training.restore import CALIBRATION_FILE, WEIGHTS_FILE, save_run_backbone
from tfapp.training.run_context import RunContext
from tfapp.training.serving_precision import model_to_serve
from tfapp.training.consistency import repeat_rows, with_consistency
from tfapp.training.refit import epochs_to_refit, examples_to_refit, refit
from tfapp.training.weight_soup import soup_after_fit, validation_scorer


def freeze_for_training(cfg: Config, loaded) -> None:
    """train.freeze_token_embeddings: the word-piece embedding matrix (half of a small
    BERT's weights) keeps its pretrained values; position embeddings and the encoder
    still learn."""
    if cfg.train.freeze_token_embeddings:
        loaded.backbone.get_layer("token_embedding").trainable = False


def consistency_outputs(task, cfg: Config, distilling: bool) -> list:
    """The outputs train.rdrop_alpha regularises: [] when it is off, when distilling (the
    distiller is its own training model) and for a model without class logits (QA
    retrieval, recommendation); those two say so and train without it."""
    if not cfg.train.rdrop_alpha:
        return []
    outputs = [] if distilling else task.consistency_outputs()
    if not outputs:
        why = ("the distiller is its own training model" if distilling else
               f"this {task.name} model has no class-logit output")
        say(f"train.rdrop_alpha {cfg.train.rdrop_alpha:g} not applied: {why}")
    return outputs


def build_compiled_model(task, cfg: Config, loaded, placement, total_steps: int):
    """Task head on the backbone, compiled; call inside the strategy's scope."""
    model = task.build_model(loaded)
    freeze_for_training(cfg, loaded)
    compile_with_optimizer(model, cfg.train, placement.precision, total_steps,
                           **task.compile_args())
    return model


def read_splits(task) -> dict:
    """Reads and validates all data before anything is written."""
    splits = task.load_splits()
    sizes = {k: len(v) for k, v in splits.items()}
    say(f"data: {sizes['train']} train / {sizes['validation']} validation / "
        f"{sizes['test']} test examples")
    for line in split_overlap(task, splits):
        say(line)
    return splits


def split_overlap(task, splits: dict) -> list[str]:
    """Warnings for evaluation examples whose text is also a training example (duplicated
    rows): their scores are optimistic."""
    train = task.example_texts(splits["train"])
    if train is None:
        return []
    seen = {" ".join(t.split()).lower() for t in train}
    out = []
    for split in ("validation", "test"):
        texts = task.example_texts(splits[split]) if len(splits[split]) else []
        both = sum(" ".join(t.split()).lower() in seen for t in texts)
        if both:
            out.append(f"warning: {both} of {len(texts)} {split} texts also appear in the "
                       f"training split (duplicated rows); {split} scores on them are "
                       f"optimistic: deduplicate the data")
    return out


def check_export_version(cfg: Config, run_path: Path) -> None:
    pinned = cfg.export.version
    if pinned is not None and (run_path / "export" / cfg.task / str(pinned)).exists():
        raise ConfigError(f"export.version {pinned} already exists under {run_path}; "
                          f"versions are never overwritten")


def choose_max_length(cfg: Config, task, loaded, splits: dict) -> None:
    """data.length_percentile: sets backbone.max_seq_length (before the resolved config is
    written) to that percentile of the training texts' lengths, rounded up to a multiple
    of 8 and capped by the configured length: long outliers then cost one truncation
    instead of padded attention over the whole budget."""
    percentile = cfg.data.length_percentile
    texts = task.texts(splits["train"]) if percentile is not None else []
    if not texts:
        return
    cap = cfg.backbone.max_seq_length
    lengths = TextPacker(loaded.tokenizer, cap).token_lengths(texts) + 2  # [CLS], [SEP]
    chosen = int(min(cap, max(8, -(-float(np.percentile(lengths, percentile)) // 8) * 8)))
    say(f"backbone.max_seq_length {chosen}: the {percentile:g}th percentile of training "
        f"token lengths is {np.percentile(lengths, percentile):.0f} (cap {cap}, "
        f"longest {lengths.max()})")
    if cfg.data.window_stride:  # windows must still overlap or touch
        chosen = max(chosen, min(cap, cfg.data.window_stride + 2))
    cfg.backbone.max_seq_length = chosen


def report_truncation(task, packer: TextPacker, splits: dict) -> None:
    text_packer = task.text_packer(packer)
    for split, examples in splits.items():
        texts = task.texts(examples) if len(examples) else []
        if texts:
            n, longest = count_truncated(text_packer, texts)
            if n:
                say(f"{split}: {n} of {len(texts)} texts longer than "
                    f"{text_packer.max_seq_length - 2} word pieces were truncated "
                    f"(longest {longest})")


def make_datasets(task, splits: dict, packer: TextPacker, batch: int):
    """(train, validation, steps per epoch, counted: see with_counted_steps)."""
    train_ds, steps = with_counted_steps(task.dataset(splits["train"], packer, batch,
                                                      training=True))
    return train_ds, task.dataset(splits["validation"], packer, batch, training=False), steps


def served_model(ctx: RunContext, task, loaded, model):
    """What is evaluated, calibrated and exported is what will be served: the trained
    model, or a copy with the same weights in the export's precision (export.precision)."""
    served, ctx.export_precision = model_to_serve(task, loaded, model, ctx.precision,
                                                  ctx.cfg.export)
    return served


def evaluate_served(ctx: RunContext, task, served, splits: dict, packer, history,
                    fitted, validation: dict | None = None) -> dict:
    """Calibration, then validation and test metrics of the served model (`validation`:
    metrics computed earlier, from a model that had not trained on those examples)."""
    calibration = task.calibrate(served, splits["validation"], packer)
    if calibration is not None:
        task.set_calibration(calibration)
        say("calibration: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in calibration.items()))
        if ctx.chief:
            write_json(ctx.path / CALIBRATION_FILE, calibration)
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
            started: float, train_seconds: float) -> None:
    """The chief writes weights, the export, metrics.json and the model card."""
    cfg, run_path = ctx.cfg, ctx.path
    model.save_weights(str(run_path / WEIGHTS_FILE))
    export_dir = None
    if cfg.export.enabled:
        export_dir = export_saved_model(task, served, packer, run_path / "export" / cfg.task,
                                        cfg.export.version)
        size_mb = dir_size_bytes(export_dir) / 2**20
        metrics["export"] = {"path": str(export_dir), "size_mb": round(size_mb, 1),
                             "precision": ctx.export_precision}
        say(f"exported SavedModel: {export_dir} ({size_mb:.1f} MiB)")
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    metrics["train_examples"] = task.training_size(splits["train"])
    write_json(run_path / "metrics.json", metrics)
    write_hparams(run_path / "logs", cfg, metrics)
    atomic_write_text(run_path / "MODEL_CARD.md",
                      model_card(cfg, task, loaded, splits, metrics, export_dir, train_seconds))


def train(cfg: Config, task_cls, run_dir: str | None = None, prepare=None) -> Path:
    """Runs one training job end to end; returns the run directory.

    `prepare(model) -> keras.Model`, if given, wraps the task's model into the model that is
    compiled and fitted (e.g. a distiller); evaluation, weights and export use the task's
    model itself."""
    started = time.perf_counter()
    # tf.data input is shuffled by the pipeline itself; Keras' notice about it is noise.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    ctx = RunContext.start(cfg)
    task = task_cls(cfg)
    splits = read_splits(task)
    regularised = consistency_outputs(task, cfg, prepare is not None)
    refit_examples = examples_to_refit(cfg, task, splits, prepare is not None)
    # Resolve the backbone before writing, so a bad backbone leaves no half-made run.
    loaded = ctx.load_backbone()
    choose_max_length(cfg, task, loaded, splits)
    check_export_version(cfg, ctx.choose_run_dir(run_dir, cfg.task))
    run_path = ctx.open_run_dir()
    if ctx.chief:
        save_run_backbone(loaded, run_path)

    packer = TextPacker.from_config(loaded.tokenizer, cfg)
    report_truncation(task, packer, splits)
    train_ds, val_ds, steps = make_datasets(task, splits, packer, cfg.train.global_batch_size)

    def build(loaded):
        """(task model, the model fitted, R-Drop outputs) on `loaded`."""
        with ctx.scope():
            model = task.build_model(loaded)
            freeze_for_training(cfg, loaded)
            fitted = prepare(model) if prepare else model
            if regularised:
                fitted = with_consistency(model, regularised, cfg.train.rdrop_alpha)
        return model, fitted, regularised

    model, fitted, _ = build(loaded)
    if regularised:
        train_ds = repeat_rows(train_ds)
    ctx.compile(fitted, steps * cfg.train.epochs, train_ds, **task.compile_args())

    monitor = task.monitor()
    task_callbacks = task.callbacks(ctx.worker_dir, splits["validation"], packer)
    callbacks = ctx.callbacks(
        task.training_size(splits["train"]), task.summary_keys(), monitor,
        first=task_callbacks)
    say(f"training: {steps} steps/epoch, up to {cfg.train.epochs} epochs, "
        f"monitoring {monitor[0]} ({monitor[1]})")
    history = ctx.fit(fitted, train_ds, val_ds, callbacks)
    soup = None
    if ctx.epoch_weights is not None:
        soup = soup_after_fit(fitted, ctx.epoch_weights, ctx.best_state.early_stopping,
                              validation_scorer(fitted, val_ds, task_callbacks, monitor[0]),
                              monitor[1], log=say)
    validation = refitted = None
    if refit_examples is not None:
        validation = task.evaluate(served_model(ctx, task, loaded, model),
                                   splits["validation"], packer)
        model, loaded, refitted = refit(ctx, task, refit_examples, packer, build,
                                        epochs_to_refit(cfg, ctx.best_state.early_stopping,
                                                        soup))
    train_seconds = time.perf_counter() - started

    served = served_model(ctx, task, loaded, model)
    metrics = evaluate_served(ctx, task, served, splits, packer, history, fitted, validation)
    if soup is not None:
        metrics["weight_soup"] = soup
    if refitted is not None:
        metrics["refit"] = refitted
    if ctx.chief:
        publish(ctx, task, model, served, packer, loaded, splits, metrics, started,
                train_seconds)
    ctx.close()
    say(f"done in {time.perf_counter() - started:.0f} s; run dir {run_path}")
    return run_path
