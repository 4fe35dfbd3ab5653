"""Training wiring: strategy, data, model, optimizer, callbacks, fit, evaluation, export.

Talks to tasks only through the Task contract (tasks/base.py).
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import tfapp  # noqa: F401
import keras
import tensorflow as tf

from tfapp import distribute
from tfapp.backbone import TextPacker, load_backbone
from tfapp.callbacks import TrainingStats
from tfapp.config import Config
from tfapp.data import count_truncated
from tfapp.errors import ConfigError
from tfapp.export import export_saved_model
from tfapp.rundir import atomic_write_text, dir_size_bytes, new_run_dir, write_json

WEIGHTS_FILE = "model.weights.h5"
CALIBRATION_FILE = "calibration.json"
# Variables that AdamW must not decay: biases, LayerNorm scales/offsets, embeddings' norms.
NO_DECAY = ["bias", "gamma", "beta"]


def say(message: str) -> None:
    print(f"[tfapp] {message}", flush=True)


def make_optimizer(train_cfg, total_steps: int) -> keras.optimizers.Optimizer:
    """AdamW with linear warm-up then cosine decay to zero, and global-norm clipping."""
    warmup = int(round(train_cfg.warmup_ratio * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else train_cfg.learning_rate,
        decay_steps=max(total_steps - warmup, 1),
        warmup_target=train_cfg.learning_rate if warmup else None,
        warmup_steps=warmup, alpha=0.0)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=train_cfg.weight_decay,
        global_clipnorm=train_cfg.clip_norm if train_cfg.clip_norm > 0 else None)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def build_compiled_model(task, cfg: Config, loaded, placement, total_steps: int):
    """Task head on the backbone, compiled; call inside the strategy's scope."""
    model = task.build_model(loaded)
    compile_model(model, task, cfg, placement, total_steps)
    return model


def compile_model(model, task, cfg: Config, placement, total_steps: int) -> None:
    """AdamW (+ loss scaling under mixed_float16) and the task's losses and metrics."""
    optimizer = make_optimizer(cfg.train, total_steps)
    if placement.precision == "mixed_float16":
        # Scales the loss so float16 gradients do not underflow.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=cfg.train.jit_compile,
                  steps_per_execution=cfg.train.steps_per_execution, **task.compile_args())


def float32_copy(task, cfg: Config, model):
    """The task's model rebuilt under the float32 policy, with `model`'s weights (mixed
    policies keep float32 variables, so nothing is lost)."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu, cfg.backbone.dropout)
        copy = task.build_model(loaded)
        copy.set_weights(model.get_weights())
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return copy


def model_card(cfg: Config, task, loaded, splits, metrics: dict, export_dir, seconds) -> str:
    lines = [
        f"# Model card: {cfg.task}",
        "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- backbone: {loaded.source}",
        f"- backbone details: {loaded.backbone.count_params():,} parameters, "
        f"pooling {cfg.backbone.pooling}, max_seq_length {cfg.backbone.max_seq_length}, "
        f"exact GELU {loaded.exact_gelu}",
        f"- training: {cfg.train.epochs} epoch(s) max, global batch {cfg.train.global_batch_size}, "
        f"AdamW lr {cfg.train.learning_rate}, seed {cfg.seed}, {seconds:.0f} s",
        f"- export: {export_dir or 'not exported'}",
        "",
        "## Data",
        *task.model_card_lines(splits),
        "",
        "## Metrics",
        "```",
    ]
    for split in ("validation", "test"):
        if metrics.get(split):
            lines += [f"[{split}]", task.format_metrics(metrics[split])]
    lines += ["```", "",
              "## Intended use and limits",
              "Fine-tuned on the data above; check it on your own held-out data before use. "
              "The built-in sample is template-generated: its metrics are a smoke test, "
              "not an estimate of accuracy on real text.", ""]
    return "\n".join(lines)


def train(cfg: Config, task_cls, run_dir: str | None = None, prepare=None) -> Path:
    """Runs one training job end to end; returns the run directory.

    `prepare(model) -> keras.Model`, if given, wraps the task's model into the model that is
    compiled and fitted (e.g. a distiller); evaluation, weights and export use the task's
    model itself."""
    started = time.perf_counter()
    # tf.data input is shuffled by the pipeline itself; Keras' notice about it is noise.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    say("config:\n" + cfg.to_yaml().rstrip())
    keras.utils.set_random_seed(cfg.seed)
    placement = distribute.resolve(cfg.train)
    for reason in placement.reasons:
        say(reason)

    batch = cfg.train.global_batch_size
    if batch % placement.num_replicas:
        raise ConfigError(
            f"train.global_batch_size {batch} is not divisible by {placement.num_replicas} "
            f"replicas")
    if placement.strategy_name == "tpu" and not cfg.data.static_shapes:
        cfg.data.static_shapes = True
        say("data.static_shapes on: TPUs compile one program per batch shape")
    task = task_cls(cfg)
    # Read and validate all data before anything is written.
    splits = task.load_splits()
    sizes = {k: len(v) for k, v in splits.items()}
    say(f"data: {sizes['train']} train / {sizes['validation']} validation / "
        f"{sizes['test']} test examples")

    # Resolve the backbone before writing, so a bad backbone leaves no half-made run.
    with placement.strategy.scope():  # backbone variables must live on the strategy
        loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu,
                                cfg.backbone.dropout)
    say(f"backbone: {loaded.source}, {loaded.backbone.count_params():,} parameters")

    run_path = Path(run_dir or cfg.run.dir or new_run_dir(cfg.run.root, cfg.task))
    pinned = cfg.export.version
    if pinned is not None and (run_path / "export" / cfg.task / str(pinned)).exists():
        raise ConfigError(f"export.version {pinned} already exists under {run_path}; "
                          f"versions are never overwritten")
    resuming = (run_path / "backup").is_dir()
    run_path.mkdir(parents=True, exist_ok=True)
    cfg.run.dir = str(run_path)
    atomic_write_text(run_path / "config.yaml", cfg.to_yaml())
    say(f"run dir: {run_path}" + (" (resuming from its backup)" if resuming else ""))

    packer = TextPacker(loaded.tokenizer, cfg.backbone.max_seq_length)
    text_packer = task.text_packer(packer)
    for split, examples in splits.items():
        texts = task.texts(examples) if len(examples) else []
        if texts:
            n, longest = count_truncated(text_packer, texts)
            if n:
                say(f"{split}: {n} of {len(texts)} texts longer than "
                    f"{text_packer.max_seq_length - 2} word pieces were truncated "
                    f"(longest {longest})")

    train_ds = task.dataset(splits["train"], packer, batch, training=True)
    val_ds = task.dataset(splits["validation"], packer, batch, training=False)
    # Length buckets flush partial batches, so count the real number of steps (one pass,
    # which also fills the cache); Keras then shows a true progress bar.
    steps_per_epoch = int(train_ds.reduce(0, lambda n, _: n + 1))
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(steps_per_epoch))
    with placement.strategy.scope():
        model = task.build_model(loaded)
        fitted = prepare(model) if prepare else model
        compile_model(fitted, task, cfg, placement, steps_per_epoch * cfg.train.epochs)
    if placement.strategy_name == "multiworker":
        distribute.prepare_multiworker_fit(fitted, train_ds)
    monitor, mode = task.monitor()
    chief = distribute.is_chief(placement.strategy)
    # Every worker runs every callback (their predictions are collective ops), but only
    # the chief writes to the run dir; the others write to a scratch dir removed at the end.
    scratch = None if chief else run_path / f".worker-{distribute.worker_index()}"
    # Task callbacks come first: those that add validation metrics to the epoch logs must
    # run before the summary line, EarlyStopping, checkpoints and TensorBoard read them.
    callbacks = [
        *task.callbacks(scratch or run_path, splits["validation"], packer),
        TrainingStats(task.training_size(splits["train"]), task.summary_keys(), printer=say),
        # One backup per worker: they resume together from the same epoch.
        keras.callbacks.BackupAndRestore(str((scratch or run_path) / "backup")),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode,
                                      patience=cfg.train.early_stopping_patience,
                                      restore_best_weights=True, verbose=1),
    ]
    if chief:
        callbacks += [
            keras.callbacks.TensorBoard(
                str(run_path / "logs"), update_freq="epoch",
                profile_batch=tuple(cfg.train.profile_steps or (0, 0))),
            keras.callbacks.ModelCheckpoint(
                str(run_path / "checkpoints" / "best.weights.h5"), monitor=monitor, mode=mode,
                save_best_only=True, save_weights_only=True),
        ]
    say(f"training: {steps_per_epoch} steps/epoch, up to {cfg.train.epochs} epochs, "
        f"monitoring {monitor} ({mode})")
    history = fitted.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs,
                        callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.perf_counter() - started

    # What is evaluated, calibrated and exported is what will be served: after
    # mixed-precision training, a float32 copy with the same weights (export.float32).
    served = model
    if placement.precision != "float32" and cfg.export.float32:
        served = float32_copy(task, cfg, model)
        say(f"evaluating and exporting a float32 copy of the {placement.precision} model")
    calibration = task.calibrate(served, splits["validation"], packer)
    if calibration is not None:
        task.set_calibration(calibration)
        say("calibration: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in calibration.items()))
        if chief:
            write_json(run_path / CALIBRATION_FILE, calibration)
    metrics = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
               # Restored by BackupAndRestore, so a resumed run counts its earlier steps.
               "optimizer_steps": int(keras.ops.convert_to_numpy(fitted.optimizer.iterations)),
               "validation": task.evaluate(served, splits["validation"], packer),
               "test": task.evaluate(served, splits["test"], packer)}
    if calibration is not None:
        metrics["calibration"] = calibration
    for split in ("validation", "test"):
        if metrics[split]:
            say(f"{split} metrics:\n" + task.format_metrics(metrics[split]))

    export_dir = None
    if chief:
        model.save_weights(str(run_path / WEIGHTS_FILE))
        if cfg.export.enabled:
            export_dir = export_saved_model(task, served, packer,
                                            run_path / "export" / cfg.task, cfg.export.version)
            size_mb = dir_size_bytes(export_dir) / 2**20
            metrics["export"] = {"path": str(export_dir), "size_mb": round(size_mb, 1)}
            say(f"exported SavedModel: {export_dir} ({size_mb:.1f} MiB)")
        metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
        metrics["train_examples"] = task.training_size(splits["train"])
        write_json(run_path / "metrics.json", metrics)
        atomic_write_text(run_path / "MODEL_CARD.md",
                          model_card(cfg, task, loaded, splits, metrics, export_dir,
                                     train_seconds))
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"done in {time.perf_counter() - started:.0f} s; run dir {run_path}")
    return run_path


def restore_run(run_dir: str | Path):
    """(config, task, model, packer) of a finished run, with its final weights loaded."""
    from tfapp.cli import config_from_run

    run_path = Path(run_dir)
    cfg, task_cls = config_from_run(run_path)
    weights = run_path / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(f"{run_path}: no {WEIGHTS_FILE} (did the run finish?)")
    task = task_cls(cfg)
    loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu, cfg.backbone.dropout)
    model = task.build_model(loaded)
    model.load_weights(str(weights))
    calibration = run_path / CALIBRATION_FILE
    if calibration.is_file():
        task.set_calibration(json.loads(calibration.read_text(encoding="utf-8")))
    return cfg, task, model, TextPacker(loaded.tokenizer, cfg.backbone.max_seq_length)
