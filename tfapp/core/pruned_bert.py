"""A BERT backbone whose layers may differ in attention heads and feed-forward width.

keras-hub's BertBackbone gives every layer the same head count and sizes a head as
hidden_dim / num_heads, so removing heads would change the size of the heads that remain.
Structured pruning (tfapp.compression.pruning) needs each layer to keep its own heads at their
original size and its own feed-forward width; this subclass builds exactly that, with the
same layer names and weight layouts as BertBackbone, so weights copy over by name. It is
registered with Keras, so a saved preset of it loads through BertBackbone.from_preset like
any other keras-hub BERT (run directories, exports, distillation, quantisation).
"""
from __future__ import annotations

import keras
import keras_hub
from keras_hub.layers import PositionEmbedding, TransformerEncoder
from keras_hub.src.utils.keras_utils import gelu_approximate


def _initializer():
    return keras.initializers.TruncatedNormal(stddev=0.02)  # BERT's


@keras.saving.register_keras_serializable(package="tfapp")
class PrunedTransformerEncoder(TransformerEncoder):
    """keras-hub's post-norm TransformerEncoder with an explicit head size (`key_dim`)."""

    def __init__(self, key_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.key_dim = key_dim

    def build(self, inputs_shape):
        # TransformerEncoder.build with key_dim given rather than hidden_dim // num_heads.
        hidden_dim = inputs_shape[-1]
        policy = self.dtype_policy
        self._self_attention_layer = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=self.key_dim, dropout=self.dropout,
            kernel_initializer=_initializer(), dtype=policy, name="self_attention_layer")
        self._self_attention_layer.build(query_shape=inputs_shape, value_shape=inputs_shape)
        self._self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="self_attention_layer_norm")
        self._self_attention_layer_norm.build(inputs_shape)
        self._self_attention_dropout = keras.layers.Dropout(
            rate=self.dropout, dtype=policy, name="self_attention_dropout")
        self._feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="feedforward_layer_norm")
        self._feedforward_layer_norm.build(inputs_shape)
        self._feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation,
            kernel_initializer=_initializer(), dtype=policy,
            name="feedforward_intermediate_dense")
        self._feedforward_intermediate_dense.build(inputs_shape)
        self._feedforward_output_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=_initializer(), dtype=policy,
            name="feedforward_output_dense")
        self._feedforward_output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self._feedforward_dropout = keras.layers.Dropout(
            rate=self.dropout, dtype=policy, name="feedforward_dropout")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "key_dim": self.key_dim}


@keras.saving.register_keras_serializable(package="tfapp")
class PrunedBertBackbone(keras_hub.models.BertBackbone):
    """BERT with per-layer head counts (`layer_heads`) and feed-forward widths
    (`layer_intermediate_dims`), heads of size `key_dim`. Inputs, outputs and layer names
    are BertBackbone's."""

    def __init__(self, vocabulary_size, layer_heads, layer_intermediate_dims, key_dim,
                 hidden_dim, dropout=0.1, max_sequence_length=512, num_segments=2,
                 dtype=None, **kwargs):
        if len(layer_heads) != len(layer_intermediate_dims):
            raise ValueError("layer_heads and layer_intermediate_dims differ in length")
        for name in ("num_layers", "num_heads", "intermediate_dim"):  # BertBackbone's keys
            kwargs.pop(name, None)
        self.token_embedding = keras.layers.ReversibleEmbedding(
            input_dim=vocabulary_size, output_dim=hidden_dim,
            embeddings_initializer=_initializer(), dtype=dtype, name="token_embedding")
        self.position_embedding = PositionEmbedding(
            initializer=_initializer(), sequence_length=max_sequence_length, dtype=dtype,
            name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(
            input_dim=num_segments, output_dim=hidden_dim,
            embeddings_initializer=_initializer(), dtype=dtype, name="segment_embedding")
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            axis=-1, epsilon=1e-12, dtype=dtype, name="embeddings_layer_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype,
                                                       name="embeddings_dropout")
        self.transformer_layers = [
            PrunedTransformerEncoder(
                key_dim=key_dim, num_heads=heads, intermediate_dim=width,
                activation=gelu_approximate, dropout=dropout, layer_norm_epsilon=1e-12,
                kernel_initializer=_initializer(), dtype=dtype, name=f"transformer_layer_{i}")
            for i, (heads, width) in enumerate(zip(layer_heads, layer_intermediate_dims))]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=_initializer(), activation="tanh", dtype=dtype,
            name="pooled_dense")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = self.token_embedding(token_ids)
        x = self.embeddings_add((tokens, self.position_embedding(tokens),
                                 self.segment_embedding(segment_ids)))
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        for layer in self.transformer_layers:
            x = layer(x, padding_mask=padding_mask)
        # BertBackbone.__init__ would build uniform layers: skip to keras-hub's Backbone.
        keras_hub.models.Backbone.__init__(
            self,
            inputs={"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": self.pooled_dense(x[:, 0, :])},
            dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.layer_heads = list(layer_heads)
        self.layer_intermediate_dims = list(layer_intermediate_dims)
        self.key_dim = key_dim
        self.num_layers = len(layer_heads)
        self.num_heads = max(layer_heads)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = max(layer_intermediate_dims)
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.cls_token_index = 0

    def get_config(self):
        config = keras_hub.models.Backbone.get_config(self)
        config.update({
            "vocabulary_size": self.vocabulary_size, "layer_heads": self.layer_heads,
            "layer_intermediate_dims": self.layer_intermediate_dims, "key_dim": self.key_dim,
            "hidden_dim": self.hidden_dim, "dropout": self.dropout,
            "max_sequence_length": self.max_sequence_length,
            "num_segments": self.num_segments})
        return config


def layer_shapes(backbone) -> tuple[list[int], list[int], int]:
    """(heads per layer, feed-forward width per layer, head size) of any keras-hub BERT."""
    if isinstance(backbone, PrunedBertBackbone):
        return backbone.layer_heads, backbone.layer_intermediate_dims, backbone.key_dim
    n = backbone.num_layers
    return ([backbone.num_heads] * n, [backbone.intermediate_dim] * n,
            backbone.hidden_dim // backbone.num_heads)


def backbone_with_layers(backbone, layers: list[int], heads=None, widths=None):
    """A fresh (unweighted) backbone of `backbone`'s kind keeping the given layer indices,
    optionally with new per-layer head counts and widths: a BertBackbone where all layers
    are alike and were not resized, a PrunedBertBackbone otherwise."""
    old_heads, old_widths, key_dim = layer_shapes(backbone)
    heads = heads or [old_heads[i] for i in layers]
    widths = widths or [old_widths[i] for i in layers]
    config = backbone.get_config()
    config.pop("dtype", None)
    base = {k: config[k] for k in ("vocabulary_size", "hidden_dim", "dropout",
                                   "max_sequence_length", "num_segments")}
    uniform = len(set(heads)) == 1 and len(set(widths)) == 1
    if uniform and heads[0] * key_dim == base["hidden_dim"]:
        return keras_hub.models.BertBackbone(num_layers=len(layers), num_heads=heads[0],
                                             intermediate_dim=widths[0], **base)
    return PrunedBertBackbone(layer_heads=heads, layer_intermediate_dims=widths,
                              key_dim=key_dim, **base)
