"""The optimizer every training workflow uses, and compiling a model with it.

AdamW with warm-up and cosine decay, plus three fine-tuning levers that act through a
per-variable learning-rate multiplier: layer-wise learning-rate decay (the embeddings
and lower encoder layers learn slower than the top, Howard & Ruder 2018 / ELECTRA), a
faster learning rate for the randomly initialised head than for the pretrained backbone,
and a number of head-only steps before the backbone starts to learn (so a random head does
not push the pretrained encoder around)."""
from __future__ import annotations

import re

import keras

# Variables that AdamW must not decay: biases, LayerNorm scales/offsets, embeddings' norms.
NO_DECAY = ["bias", "gamma", "beta"]
_LAYER = re.compile(r"(?:^|/)transformer_layer_(\d+)/")
_EMBEDDING = re.compile(r"(?:^|/)(token_embedding|position_embedding|segment_embedding|"
                        r"embeddings_layer_norm)/")


def backbone_depth(path: str):
    """0 for the backbone's embeddings, i + 1 for encoder layer i, None outside it."""
    match = _LAYER.search(path)
    if match:
        return int(match[1]) + 1
    return 0 if _EMBEDDING.search(path) else None


def learning_rate_scales(paths: list[str], layer_decay: float,
                         head_multiplier: float = 1.0) -> list[float]:
    """Per-variable multipliers: decay ** (layers + 1 - depth) inside the backbone,
    `head_multiplier` for the head (anything outside it)."""
    depths = [backbone_depth(p) for p in paths]
    top = max((d for d in depths if d is not None), default=0) + 1
    return [head_multiplier if d is None else layer_decay ** (top - d) for d in depths]


class FineTuningAdamW(keras.optimizers.AdamW):
    """AdamW whose learning rate is scaled per variable (layer-wise decay) and held at zero
    for the backbone during the first `frozen_backbone_steps` steps."""

    def __init__(self, layer_decay: float = 1.0, frozen_backbone_steps: int = 0,
                 head_lr_multiplier: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.layer_decay = layer_decay
        self.frozen_backbone_steps = frozen_backbone_steps
        self.head_lr_multiplier = head_lr_multiplier

    def build(self, var_list):
        super().build(var_list)
        paths = [v.path for v in var_list]
        self._lr_scales = learning_rate_scales(paths, self.layer_decay, self.head_lr_multiplier)
        self._in_backbone = [backbone_depth(p) is not None for p in paths]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        scale = self._lr_scales[index]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        if self.frozen_backbone_steps and self._in_backbone[index]:
            learning_rate = learning_rate * keras.ops.cast(
                keras.ops.greater_equal(self.iterations, self.frozen_backbone_steps),
                learning_rate.dtype)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "layer_decay": self.layer_decay,
                "frozen_backbone_steps": self.frozen_backbone_steps,
                "head_lr_multiplier": self.head_lr_multiplier}


def make_optimizer(opt_cfg, total_steps: int, ema_momentum: float = 0.0
                   ) -> keras.optimizers.Optimizer:
    """AdamW with linear warm-up then cosine decay to zero, global-norm clipping, the
    layer-decay / head-multiplier / head-only-steps levers of the optimizer section, and
    weight averaging (Keras' optimizer EMA) when `ema_momentum` > 0."""
    warmup = int(round(opt_cfg.warmup_ratio * total_steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else opt_cfg.learning_rate,
        decay_steps=max(total_steps - warmup, 1),
        warmup_target=opt_cfg.learning_rate if warmup else None,
        warmup_steps=warmup, alpha=0.0)
    optimizer = FineTuningAdamW(
        layer_decay=opt_cfg.layer_decay,
        frozen_backbone_steps=opt_cfg.frozen_backbone_steps,
        head_lr_multiplier=opt_cfg.head_lr_multiplier,
        learning_rate=schedule, weight_decay=opt_cfg.weight_decay,
        global_clipnorm=opt_cfg.clip_norm if opt_cfg.clip_norm > 0 else None,
        use_ema=ema_momentum > 0,
        ema_momentum=ema_momentum if ema_momentum > 0 else 0.99)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def compile_with_optimizer(model: keras.Model, cfg, precision: str, total_steps: int,
                           optimizer_options: dict | None = None, **compile_args) -> None:
    """Compiles `model` with AdamW from cfg.optimizer (+ loss scaling under
    mixed_float16), cfg.runtime's jit_compile / steps_per_execution, and `compile_args`
    (loss, metrics, ...); call inside the strategy's scope. `optimizer_options` are the
    levers' (e.g. ema_momentum)."""
    optimizer = make_optimizer(cfg.optimizer, total_steps, **(optimizer_options or {}))
    if precision == "mixed_float16":
        # Scales the loss so float16 gradients do not underflow.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=cfg.runtime.jit_compile,
                  steps_per_execution=cfg.runtime.steps_per_execution, **compile_args)
