"""XLA-compiled model calls over a few fixed shapes, for serving.

XLA compiles one program per input shape. Requests come with any batch size and length,
so a batch is padded up to the next of a few batch sizes and its length up to the next of
a few length edges; every request then reuses one of at most len(batch) x len(length)
programs, each compiled on its first use. Batches larger than the largest batch bucket
take the plain (uncompiled) path, where XLA measured slower than TensorFlow's own kernels
(bench/RESULTS.md). Padding only adds rows and columns, and the outputs are cut back to the
request's rows, so nothing is ever truncated."""
from __future__ import annotations

import tensorflow as tf


def length_edges(max_len: int, smallest: int = 16) -> list[int]:
    """Powers of two from `smallest` up to `max_len`, and `max_len` itself as the last."""
    edges, edge = [], smallest
    while edge < max_len:
        edges.append(edge)
        edge *= 2
    return edges + [max_len]


def next_bucket(n, buckets):
    """The smallest bucket >= n (a scalar tensor); n must not exceed the largest bucket."""
    b = tf.constant(sorted(buckets), tf.int32)
    return tf.gather(b, tf.reduce_min(tf.where(b >= tf.cast(n, tf.int32))))


def pad_to(inputs: dict, rows, length, pad_id: int) -> dict:
    """`inputs` ([batch, len] tensors) padded to [rows, length]. Extra rows repeat the
    first row (a real text, so every row's outputs stay finite); extra columns are padding
    (token `pad_id`, mask 0)."""
    n = tf.shape(next(iter(inputs.values())))[0]
    out = {}
    for key, value in inputs.items():
        value = tf.concat([value, tf.repeat(value[:1], rows - n, axis=0)], axis=0)
        width = length - tf.shape(value)[1]
        fill = pad_id if key == "token_ids" else 0
        out[key] = tf.pad(value, [[0, 0], [0, width]], constant_values=tf.cast(fill, value.dtype))
    return out


def xla_bucketed(model_fn, batch_buckets, max_len: int, pad_id: int = 0):
    """`model_fn(inputs)` (inputs: dict of [batch, len] tensors; outputs: tensors or dicts
    of tensors with the batch first) run through XLA at bucketed shapes for batches up to
    max(batch_buckets), and as is for larger ones."""
    compiled = tf.function(model_fn, jit_compile=True)
    edges = length_edges(max_len)
    largest = max(batch_buckets)

    def call(inputs: dict):
        ids = inputs["token_ids"]
        n, length = tf.shape(ids)[0], tf.shape(ids)[1]

        def bucketed():
            padded = pad_to(inputs, next_bucket(n, batch_buckets),
                            next_bucket(length, edges), pad_id)
            return tf.nest.map_structure(lambda t: t[:n], compiled(padded))

        return tf.cond(tf.logical_and(n <= largest, length <= max_len), bucketed,
                       lambda: model_fn(inputs))

    return call
