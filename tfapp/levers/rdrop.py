"""R-Drop consistency regularisation (Liang et al., NeurIPS 2021): every training example
goes through the model twice in the same batch, so the two passes see different dropout
masks, and the loss adds alpha/2 x the symmetric KL divergence between the two predicted
class distributions. It punishes predictions that hinge on which units dropout kept, the
usual way a fine-tuned model overfits a small labelled set. Costs about twice the
compute per step; serving is unchanged (the layer passes logits through)."""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.task_contract import ClassLogits


class PairedConsistency(keras.layers.Layer):
    """Identity on class logits; in training, rows 2i and 2i+1 are two passes of one
    example and alpha/2 x their mean symmetric KL divergence joins the model's losses."""

    def __init__(self, alpha: float, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, logits, training=False):
        if training:
            log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
            first, second = log_p[0::2], log_p[1::2]
            kl = tf.reduce_sum(tf.exp(first) * (first - second)
                               + tf.exp(second) * (second - first), axis=-1) / 2
            self.add_loss(self.alpha / 2 * tf.reduce_mean(kl))
        return logits

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


def with_consistency(model: keras.Model, outputs: list, alpha: float) -> keras.Model:
    """A training model over the same layers whose `outputs` (names of a dict-output
    model; [None] for a single-output model) carry the consistency loss."""
    out = model.output
    if isinstance(out, dict):
        wrapped = {name: (PairedConsistency(alpha, name=f"{name}_consistency")(tensor)
                          if name in outputs else tensor) for name, tensor in out.items()}
    else:
        wrapped = PairedConsistency(alpha, name="consistency")(out)
    return keras.Model(model.inputs, wrapped, name=f"{model.name}_consistency")


def repeat_rows(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each batch with every row twice, side by side (rows 2i and 2i+1 are the same
    example), so an even share of a batch per replica keeps the pairs together."""
    return dataset.map(lambda *parts: tf.nest.map_structure(
        lambda t: tf.repeat(t, 2, axis=0), parts if len(parts) > 1 else parts[0]))


@dataclasses.dataclass
class RDropConfig:
    alpha: float = 0.0  # >0: two dropout passes per example, alpha/2 x their KL in the loss

    def problems(self) -> list[str]:
        return [] if 0 <= self.alpha <= 100 else ["alpha must be in [0, 100]"]


@register_lever
class RDrop(Lever):
    """levers.rdrop.alpha: R-Drop on the class-logit outputs of tasks that declare ClassLogits.
    A model without class logits (QA retrieval, recommendation) or a distiller trains
    without it, and says so, so one shared config serves every task."""

    name = "rdrop"
    Config = RDropConfig
    legacy_train_keys = {"rdrop_alpha": "alpha"}

    @property
    def enabled(self) -> bool:
        return self.config.alpha > 0

    outputs = None  # the regularised outputs, decided at the first build

    def check(self, run) -> None:
        self.regularised(run.task, run.distilling)

    def regularised(self, task, distilling: bool) -> list:
        """The outputs R-Drop regularises ([] when it cannot apply, said once)."""
        if self.outputs is None:
            self.outputs = ([] if distilling or not isinstance(task, ClassLogits)
                            else task.consistency_outputs())
            if not self.outputs:
                why = ("the distiller is its own training model" if distilling else
                       f"this {task.name} model has no class-logit output")
                say(f"levers.rdrop.alpha {self.config.alpha:g} not applied: {why}")
        return self.outputs

    def training_model(self, model, fitted, task):
        if not self.regularised(task, fitted is not model):
            return fitted
        return with_consistency(model, self.outputs, self.config.alpha)

    def training_data(self, dataset):
        return repeat_rows(dataset) if self.outputs else dataset
