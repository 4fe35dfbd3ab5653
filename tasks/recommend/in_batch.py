"""In-batch negatives for the recommend task (recommend.loss: in_batch): each training
example is (history, one positive); the batch's positives are every example's negatives,
plus `recommend.sampled_negatives` catalogue items drawn uniformly per example (mixed
negative sampling, so rare and never-clicked items are negatives too). Each distinct item
in the batch is encoded once, whatever the number of examples that share it.

Logits get the sampled-softmax correction logit - log q(item), q being the item's share of
the candidate slots (popular items are in-batch negatives more often: without it the model
learns to push popular items down), and accidental hits (the row's own positive appearing
again as another example's positive or a drawn item) are masked out."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

MASKED = -1e9


def candidate_probabilities(positive_counts: np.ndarray, sampled_per_example: int
                            ) -> np.ndarray:
    """[items] share of the batch's candidate slots each item is expected to fill: one
    positive per example, drawn by how often items are training positives, and
    `sampled_per_example` items drawn uniformly."""
    counts = np.asarray(positive_counts, np.float64)
    popularity = counts / max(counts.sum(), 1.0)
    uniform = 1.0 / len(counts)
    return ((popularity + sampled_per_example * uniform)
            / (1 + sampled_per_example)).astype(np.float32)


def mask_accidental_hits(logits, candidate_ids, positive_ids):
    """[batch, candidates] logits with every column that holds the row's own positive item
    set to MASKED. (keras_rs.layers.RemoveAccidentalHits 0.4 adds a subnormal float to
    such logits, which leaves them unchanged.)"""
    duplicate = tf.equal(candidate_ids[tf.newaxis, :], positive_ids[:, tf.newaxis])
    return tf.where(duplicate, tf.constant(MASKED, logits.dtype), logits)


def in_batch_logits(scorer, user, side, candidates, candidate_ids, candidate_q,
                    positive_ids):
    """[batch, 1 + candidates] logits whose column 0 is each row's own positive (row b's
    positive is candidate b), so sparse labels are all 0; the other columns are every
    candidate with the row's positive (and its accidental copies) masked out."""
    import keras_rs

    batch = tf.shape(user)[0]
    grid = tf.repeat(candidates[tf.newaxis], batch, axis=0)  # [batch, C, dim]
    logits = scorer(user, grid, side)
    logits = keras_rs.layers.SamplingProbabilityCorrection(epsilon=1e-12)(
        logits, tf.repeat(candidate_q[tf.newaxis], batch, axis=0))
    positive = tf.gather(logits, tf.range(batch), batch_dims=1)[:, tf.newaxis]
    return tf.concat([positive, mask_accidental_hits(logits, candidate_ids, positive_ids)],
                     axis=1)


def in_batch_dataset(history: list[list[int]], positives: list[int], item_tokens,
                     probabilities: np.ndarray, sampled: int, batch_size: int, pad_id: int,
                     shuffle_buffer: int, seed: int, training: bool) -> tf.data.Dataset:
    """Batches of {history_index/tokens, candidate_index/tokens [b, 1] (the positive),
    negative_index/tokens [b, sampled] (uniform draws), candidate_q / negative_q (their
    candidate_probabilities)} with label 0 (the positive's column)."""
    n_items = len(probabilities)
    q_table = tf.constant(probabilities)
    ds = tf.data.Dataset.from_tensor_slices((
        tf.RaggedTensor.from_row_lengths(tf.constant([x for h in history for x in h],
                                                     tf.int32), [len(h) for h in history]),
        tf.constant(positives, tf.int32)))
    if training:
        ds = ds.shuffle(min(shuffle_buffer, max(len(positives), 1)), seed=seed,
                        reshuffle_each_iteration=True)

    def example(hist, positive):
        positive = positive[tf.newaxis]
        drawn = tf.random.uniform([sampled], 0, n_items, tf.int32)
        return ({"history_index": hist,
                 "history_tokens": tf.gather(item_tokens, hist).to_tensor(pad_id),
                 "candidate_index": positive,
                 "candidate_tokens": tf.gather(item_tokens, positive).to_tensor(pad_id),
                 "candidate_q": tf.gather(q_table, positive),
                 "negative_index": drawn,
                 "negative_tokens": tf.gather(item_tokens, drawn).to_tensor(pad_id),
                 "negative_q": tf.gather(q_table, drawn)}, tf.constant(0))

    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, padding_values=(
        {"history_index": -1, "history_tokens": pad_id, "candidate_index": -1,
         "candidate_tokens": pad_id, "candidate_q": 1.0, "negative_index": -1,
         "negative_tokens": pad_id, "negative_q": 1.0}, 0))
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(positives) // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)
