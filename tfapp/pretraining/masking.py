"""Masked-LM batches in tf.data, for `tfapp.pretrain` and task-adaptive pretraining.

Texts are tokenised once; batches are bucketed by length and padded only to their longest
text (not to backbone.max_seq_length), so short texts cost short sequences. Masks are
drawn in the pipeline after batching, so every epoch masks afresh (validation batches are
cached once masked, so their loss stays comparable). Masking selects `rate` of the word
pieces — or, with whole-word masking (Cui et al. 2019), of the words, masking every piece
of a chosen word ("##" pieces continue a word) — at most `max_predictions` per text; each
selected piece becomes [MASK] 80% of the time, a random piece 10%, itself 10% (BERT).
Batches are what keras-hub's BertMaskedLM takes: token_ids, padding_mask, segment_ids,
mask_positions; the labels are the original ids at those positions, weighted 1 (0 for the
padding of mask_positions)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

BOUNDARIES = (16, 32, 48, 64, 96, 128, 192, 256)


def continuation_table(tokenizer) -> np.ndarray:
    """[vocabulary] bool: the piece continues a word (WordPiece "##" prefix)."""
    return np.array([p.startswith("##") for p in tokenizer.get_vocabulary()], bool)


def token_dataset(texts: list[str], tokenizer, max_length: int) -> tf.data.Dataset:
    """One [CLS] pieces [SEP] int32 vector per text (truncated to `max_length`)."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    pieces = tokenizer(tf.constant(texts))  # eager keras-hub gives lists, else ragged
    pieces = pieces.to_list() if hasattr(pieces, "to_list") else pieces
    rows = [np.array([cls_id, *r[:max_length - 2], sep_id], np.int32) for r in pieces]
    return tf.data.Dataset.from_generator(
        lambda: iter(rows), output_signature=tf.TensorSpec([None], tf.int32))


def mask_batch(ids, selectable, continues, rate: float, max_predictions: int,
               whole_word: bool, mask_id: int, vocabulary_size: int, pad_id: int = 0,
               seed=None):
    """(inputs dict, mask_ids, mask_weights) for a [batch, length] padded id matrix.
    `selectable` / `continues`: [vocabulary] bool tables (not special; "##" piece);
    `seed`: an int64 scalar making the draws stateless (None: stateful ops)."""
    def uniform(k, shape, high=None):
        if seed is None:
            return (tf.random.uniform(shape) if high is None
                    else tf.random.uniform(shape, 0, high, tf.int32))
        pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(k, tf.int64)])
        return (tf.random.stateless_uniform(shape, pair) if high is None
                else tf.random.stateless_uniform(shape, pair, 0, high, tf.int32))

    ids = tf.cast(ids, tf.int32)
    can = tf.gather(selectable, ids)
    if whole_word:
        starts = can & ~tf.gather(continues, ids)
        word = tf.maximum(tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1, 0)
        drawn = uniform(0, tf.shape(ids)) < rate  # one draw per word slot
        chosen = can & tf.gather(drawn, word, batch_dims=1)
    else:
        chosen = can & (uniform(0, tf.shape(ids)) < rate)
    # At most max_predictions per row, the earliest chosen positions first.
    length = tf.shape(ids)[1]
    position = tf.broadcast_to(tf.range(length)[tf.newaxis], tf.shape(ids))
    key = tf.where(chosen, position, length + position)
    order = tf.argsort(key, axis=1)[:, :max_predictions]
    taken = tf.gather(chosen, order, batch_dims=1)
    pad = tf.maximum(max_predictions - tf.shape(order)[1], 0)
    order = tf.pad(order, [[0, 0], [0, pad]])
    taken = tf.pad(taken, [[0, 0], [0, pad]])
    weights = tf.cast(taken, tf.float32)
    originals = tf.gather(ids, order, batch_dims=1)
    roll = uniform(1, tf.shape(order))
    replacement = tf.where(roll < 0.8, mask_id, tf.where(
        roll < 0.9, uniform(2, tf.shape(order), vocabulary_size), originals))
    batch = tf.shape(ids)[0]
    rows = tf.broadcast_to(tf.range(batch)[:, tf.newaxis], tf.shape(order))
    where = tf.boolean_mask(tf.stack([rows, order], axis=-1), taken)
    masked = tf.tensor_scatter_nd_update(ids, where, tf.boolean_mask(replacement, taken))
    padding_mask = ids != pad_id
    inputs = {"token_ids": masked, "padding_mask": padding_mask,
              "segment_ids": tf.zeros_like(ids), "mask_positions": order}
    return inputs, originals, weights


def mlm_dataset(texts: list[str], tokenizer, max_length: int, batch_size: int, *,
                rate: float, max_predictions: int, whole_word: bool, training: bool,
                seed: int) -> tf.data.Dataset:
    """Length-bucketed, freshly masked batches of `texts` (see the module docstring)."""
    vocabulary = tokenizer.get_vocabulary()
    special = [tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
               if t in vocabulary]
    selectable = np.ones(len(vocabulary), bool)
    selectable[special] = False
    tables = (tf.constant(selectable), tf.constant(continuation_table(tokenizer)))
    ds = token_dataset(texts, tokenizer, max_length)
    if training:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    bounds = [b for b in BOUNDARIES if b < max_length]
    pad_id = tokenizer.token_to_id("[PAD]")
    ds = ds.bucket_by_sequence_length(lambda x: tf.shape(x)[0], bounds,
                                      [batch_size] * (len(bounds) + 1),
                                      padding_values=pad_id, pad_to_bucket_boundary=False)
    mask_id = tokenizer.token_to_id("[MASK]")

    def masked(ids, batch_seed):
        return mask_batch(ids, *tables, rate, max_predictions, whole_word, mask_id,
                          len(vocabulary), pad_id, batch_seed)

    # Stateless draws seeded per batch by a stream that changes every epoch: stateful ops
    # in a map restart with the iterator when a global seed is set (as training sets it),
    # which would mask every epoch the same way.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, seeds).map(masked, num_parallel_calls=tf.data.AUTOTUNE)
    return (ds if training else ds.cache()).prefetch(tf.data.AUTOTUNE)
