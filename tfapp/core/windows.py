"""Sliding-window inference for texts longer than the model's length budget.

A long text is split into overlapping windows of `max_seq_length - 2` word pieces,
`stride` pieces apart (the last window ends at the text's end); the model scores every
window and the outputs of a text's windows are pooled (mean or max of logits / embeddings).
The same TensorFlow ops run in evaluation and inside the exported serving functions, so
served scores equal evaluated ones. Training still sees one (truncated) window per text."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfapp.core.buckets import xla_bucketed

POOLINGS = ("mean", "max")


def window_pieces(pieces: tf.RaggedTensor, size: int, stride: int):
    """(windows [W, (<= size)], row id of each window [W]) for ragged word pieces
    [B, (len)]. Every row gets at least one window (an empty text: one empty window)."""
    lengths = pieces.row_lengths()
    extra = tf.maximum(lengths - size, 0)
    counts = 1 + (extra + stride - 1) // stride  # windows per row
    starts = tf.ragged.range(counts) * stride
    row_ids = starts.value_rowids()
    flat_starts = starts.flat_values
    ends = tf.minimum(flat_starts + size, tf.gather(lengths, row_ids))
    offsets = tf.gather(pieces.row_starts(), row_ids)
    positions = tf.ragged.range(flat_starts + offsets, ends + offsets)
    return tf.gather(pieces.flat_values, positions), row_ids


def pool_windows(values, row_ids, pooling: str):
    """Per-text pooling of per-window outputs (a tensor or a dict of tensors)."""
    pool = tf.math.segment_max if pooling == "max" else tf.math.segment_mean
    return tf.nest.map_structure(lambda v: pool(tf.cast(v, tf.float32), row_ids), values)


def call_on_texts(model_fn, packer, texts):
    """`model_fn(packed inputs)` for raw `texts`: one truncated window per text, or, when
    the packer has a window stride, every window with its outputs pooled per text. With
    the packer's xla_batch_buckets, small batches run XLA-compiled (tfapp.core.buckets)."""
    if packer.xla_batch_buckets:
        model_fn = xla_bucketed(model_fn, packer.xla_batch_buckets, packer.max_seq_length,
                                packer.pad_id)
    if not packer.window_stride:
        return model_fn(packer(texts))
    inputs, row_ids = packer.windows(texts)
    return pool_windows(model_fn(inputs), row_ids, packer.window_pooling)


def predict_texts(model, packer, texts, batch_size: int, dataset_fn):
    """Model outputs for a list of texts as numpy (dicts stay dicts), in the texts' order.
    Without windows: `model.predict` over `dataset_fn(texts sorted by length, packer,
    batch_size)`; with windows: the pooled path of `call_on_texts`, batch by batch."""
    if not packer.window_stride:
        # Batches of texts of similar length pad little: in file order, batches of 32 padded
        # to their longest text were 47% padding on TFNS validation and 39% on CLINC150
        # test, sorted 2% and 1%. Outputs go back to the texts' order.
        order = packer.length_order(texts)
        out = model.predict(dataset_fn([texts[i] for i in order], packer, batch_size),
                            verbose=0)
        inverse = np.argsort(order)
        return tf.nest.map_structure(lambda a: np.asarray(a)[inverse], out)
    fn = tf.function(lambda t: call_on_texts(lambda x: model(x, training=False), packer, t))
    parts = [fn(tf.constant(list(texts[i:i + batch_size])))
             for i in range(0, len(texts), batch_size)]
    return tf.nest.map_structure(lambda *p: np.concatenate([x.numpy() for x in p]), *parts)
