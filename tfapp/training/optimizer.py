"""The optimizer every training workflow uses, and compiling a model with it."""
from __future__ import annotations

import keras

# Variables that AdamW must not decay: biases, LayerNorm scales/offsets, embeddings' norms.
NO_DECAY = ["bias", "gamma", "beta"]


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


def compile_with_optimizer(model: keras.Model, train_cfg, precision: str, total_steps: int,
                           **compile_args) -> None:
    """Compiles `model` with AdamW (+ loss scaling under mixed_float16) and `compile_args`
    (loss, metrics, ...); call inside the strategy's scope."""
    optimizer = make_optimizer(train_cfg, total_steps)
    if precision == "mixed_float16":
        # Scales the loss so float16 gradients do not underflow.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=train_cfg.jit_compile,
                  steps_per_execution=train_cfg.steps_per_execution, **compile_args)
