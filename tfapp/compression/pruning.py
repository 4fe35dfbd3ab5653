"""Structured pruning of a finished classification run: whole attention heads and
feed-forward neurons go, ranked by measured importance, and the backbone is rebuilt
physically smaller (fewer heads, narrower feed-forward layers), then fine-tuned briefly as
a new run that evaluates and exports like any other.

Importance follows Michel et al. (2019), "Are Sixteen Heads Really Better than One?": the
importance of a unit is |dL/dg| for a gate g multiplying its output, summed over batches of
training data. A head's output enters the layer only through its slice of the attention
output kernel W_o[h], so dL/dg_h = sum(W_o[h] * dL/dW_o[h]); likewise a feed-forward
neuron i through row i of the output kernel. Weight gradients are therefore all that is
needed. Head scores are normalised per layer (L2), as in the paper, neuron scores too, and
the lowest-scoring units are removed globally, at least one of each kind kept per layer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tfapp.core import run_layout as layout
from tfapp.core.errors import ConfigError


def check_fraction(name: str, value: float) -> float:
    """A pruning fraction in [0, 1); a one-line error otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0 <= value < 1:
        raise ConfigError(f"{name} must be in [0, 1) (the fraction of units removed), "
                          f"got {value}")
    return value


def _encoder_layers(backbone) -> list:
    return list(backbone.transformer_layers)


def unit_importance(model, backbone, dataset, compute_loss, batches: int) -> tuple[list, list]:
    """(head scores per layer, neuron scores per layer): sum over `batches` batches of
    |sum(W * dL/dW)| over each unit's slice of the attention-output / feed-forward-output
    kernel."""
    import tensorflow as tf

    layers = _encoder_layers(backbone)
    kernels = []
    for layer in layers:
        kernels.append(layer._self_attention_layer._output_dense.kernel)  # (heads, d, hidden)
        kernels.append(layer._feedforward_output_dense.kernel)  # (width, hidden)
    totals = [np.zeros(k.shape[0], dtype=np.float64) for k in kernels]
    seen = 0
    for batch in dataset.take(batches):
        x, y = batch[0], batch[1]
        with tf.GradientTape() as tape:
            loss = compute_loss(x, y, model(x, training=False))
        grads = tape.gradient(loss, kernels)
        for i, (k, g) in enumerate(zip(kernels, grads)):
            axes = tuple(range(1, len(k.shape)))
            totals[i] += np.abs(tf.reduce_sum(tf.cast(k, tf.float32) * g, axis=axes).numpy())
        seen += 1
    if not seen:
        raise ConfigError("no training batches to measure unit importance on")
    return totals[0::2], totals[1::2]


def normalise_per_layer(scores: list[np.ndarray]) -> list[np.ndarray]:
    """Each layer's scores divided by their L2 norm (Michel et al.), so layers compare."""
    return [s / (np.linalg.norm(s) or 1.0) for s in scores]


def units_to_keep(scores: list[np.ndarray], fraction: float) -> list[list[int]]:
    """Per layer, the sorted indices of the units that stay when the lowest-scoring
    `fraction` of all units is removed, never a layer's last unit."""
    total = sum(len(s) for s in scores)
    to_remove = int(round(fraction * total))
    kept = [set(range(len(s))) for s in scores]
    order = sorted((float(v), layer, unit) for layer, s in enumerate(scores)
                   for unit, v in enumerate(s))
    removed = 0
    for _, layer, unit in order:
        if removed == to_remove:
            break
        if len(kept[layer]) > 1:
            kept[layer].discard(unit)
            removed += 1
    return [sorted(k) for k in kept]


def pruned_backbone(backbone, keep_heads: list[list[int]], keep_neurons: list[list[int]]):
    """A physically smaller copy of `backbone` keeping the given heads and neurons of each
    layer, with their weights (everything else copied unchanged)."""
    from tfapp.core.pruned_bert import backbone_with_layers

    n = len(_encoder_layers(backbone))
    small = backbone_with_layers(backbone, list(range(n)), [len(h) for h in keep_heads],
                                 [len(k) for k in keep_neurons])
    for layer in small.layers:
        if layer.weights and not layer.name.startswith("transformer_layer_"):
            layer.set_weights(backbone.get_layer(layer.name).get_weights())
    for old, new, heads, neurons in zip(_encoder_layers(backbone), _encoder_layers(small),
                                        keep_heads, keep_neurons):
        old_att, new_att = old._self_attention_layer, new._self_attention_layer
        for part in ("_query_dense", "_key_dense", "_value_dense"):
            kernel, bias = getattr(old_att, part).get_weights()  # (hidden, H, d), (H, d)
            getattr(new_att, part).set_weights([kernel[:, heads], bias[heads]])
        kernel, bias = old_att._output_dense.get_weights()  # (H, d, hidden), (hidden,)
        new_att._output_dense.set_weights([kernel[heads], bias])
        kernel, bias = old._feedforward_intermediate_dense.get_weights()  # (hidden, I), (I,)
        new._feedforward_intermediate_dense.set_weights([kernel[:, neurons], bias[neurons]])
        kernel, bias = old._feedforward_output_dense.get_weights()  # (I, hidden), (hidden,)
        new._feedforward_output_dense.set_weights([kernel[neurons], bias])
        for norm in ("_self_attention_layer_norm", "_feedforward_layer_norm"):
            getattr(new, norm).set_weights(getattr(old, norm).get_weights())
    return small


def plan(model, backbone, dataset, compute_loss, heads: float, ffn: float,
         batches: int) -> dict:
    """Which heads and neurons stay, from importance measured on `batches` batches."""
    head_scores, neuron_scores = unit_importance(model, backbone, dataset, compute_loss,
                                                 batches)
    keep_heads = units_to_keep(normalise_per_layer(head_scores), heads)
    keep_neurons = units_to_keep(normalise_per_layer(neuron_scores), ffn)
    return {"keep_heads": keep_heads, "keep_neurons": keep_neurons,
            "heads_per_layer": [len(h) for h in keep_heads],
            "ffn_width_per_layer": [len(k) for k in keep_neurons],
            "head_importance": [s.round(6).tolist() for s in head_scores]}


def prune(run: str | Path, heads: float, ffn: float, epochs: int = 1, learning_rate=None,
          batches: int = 64, temperature: float = 2.0, alpha: float = 0.5,
          run_dir=None) -> Path:
    """Prunes a finished run's backbone and fine-tunes it (distilling from the unpruned
    model with weight `alpha`) into a new run; returns its directory."""
    from tfapp.compression.distillation import copy_head_weights, make_distiller
    from tfapp.core.backbone import LoadedBackbone, save_preset
    from tfapp.core.log import say
    from tfapp.core.rundir import new_run_dir, write_json
    from tfapp.training.driver import train
    from tfapp.training.restore import restore_run

    heads, ffn = check_fraction("--heads", heads), check_fraction("--ffn", ffn)
    if batches < 1 or epochs < 1 or temperature <= 0 or not 0 <= alpha <= 1:
        raise ConfigError("--batches and --epochs must be >= 1, --temperature > 0 and "
                          "--alpha in [0, 1]")
    source = restore_run(run)
    cfg, task, model, packer = source
    if type(model).__name__ != "Functional":
        raise ConfigError(f"{run}: pruning supports classification runs with a functional "
                          f"Keras model (e.g. sentiment, qa intent mode); this run's model "
                          f"is a {type(model).__name__}")
    run_dir = Path(run_dir or new_run_dir(cfg.run.root, cfg.task))
    pruned_dir = run_dir / "pruned_backbone"
    if not pruned_dir.exists():  # a re-run resumes from the pruned backbone it saved
        model.compile(optimizer="sgd", **{k: v for k, v in task.compile_args().items()
                                          if k != "metrics"})
        data = task.dataset(task.load_splits()["train"], packer, 8, training=True)
        chosen = plan(model, source.loaded.backbone, data,
                      lambda x, y, p: model.compute_loss(x=x, y=y, y_pred=p), heads, ffn,
                      batches)
        small = pruned_backbone(source.loaded.backbone, chosen["keep_heads"],
                                chosen["keep_neurons"])
        loaded = LoadedBackbone(small, source.loaded.tokenizer,
                                f"pruned ({heads:.0%} heads, {ffn:.0%} feed-forward) "
                                f"{source.loaded.source}", source.loaded.exact_gelu)
        save_preset(loaded, pruned_dir, {"pruned_from": str(run), "heads_fraction": heads,
                                         "ffn_fraction": ffn, **chosen})
        before, after = source.loaded.backbone.count_params(), small.count_params()
        write_json(run_dir / layout.PRUNING_REPORT, {
            "source_run": str(run), "heads_fraction": heads, "ffn_fraction": ffn,
            "importance_batches": batches, "parameters_before": before,
            "parameters_after": after, **chosen})
        say(f"pruned: heads per layer {chosen['heads_per_layer']}, feed-forward widths "
            f"{chosen['ffn_width_per_layer']}; parameters {before:,} -> {after:,}")
    cfg.backbone.name = str(pruned_dir)
    cfg.backbone.exact_gelu = "auto"  # the saved preset records it
    cfg.run.dir = None
    cfg.export.version = None
    cfg.trainer.epochs = epochs
    if learning_rate:
        cfg.optimizer.learning_rate = learning_rate
    distiller_cls = make_distiller(model, temperature, alpha) if alpha > 0 else None

    def prepare(new_model):
        copy_head_weights(new_model, model)
        return distiller_cls(new_model, name="distiller") if distiller_cls else new_model

    return train(cfg, type(task), str(run_dir), prepare=prepare)
