"""The recommend task's Keras model: item tower on the shared backbone, attention-pooled
user vector, dot or MLP scorer."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tasks.recommend.data import RecommendConfig
from tasks.recommend.in_batch import in_batch_logits
from tfapp.core.backbone import model_inputs


class AttentionPooling(keras.layers.Layer):
    """Additive attention over a masked sequence of vectors: softmax(v . tanh(W h)).
    Rows with nothing to attend to get the learned `empty` vector (cold users)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        dim = input_shape[-1]
        self.proj = keras.layers.Dense(self.units, activation="tanh", name="attention_proj",
                                       dtype="float32")
        self.proj.build(input_shape)
        self.query = keras.layers.Dense(1, use_bias=False, name="attention_query",
                                        dtype="float32")
        self.query.build((*input_shape[:-1], self.units))
        self.empty = self.add_weight(name="cold_user", shape=(dim,), initializer="zeros")

    def call(self, vectors, mask):
        mask = tf.cast(mask, tf.bool)
        logits = tf.squeeze(self.query(self.proj(vectors)), -1)
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
        weights = tf.nn.softmax(logits, axis=-1) * tf.cast(mask, logits.dtype)
        pooled = tf.einsum("bh,bhd->bd", weights, vectors)
        has_history = tf.reduce_any(mask, axis=-1, keepdims=True)
        return tf.where(has_history, pooled, tf.cast(self.empty, pooled.dtype)[tf.newaxis])


class Scorer(keras.layers.Layer):
    """user . item, or an MLP over [user, item, user * item, side features]."""

    def __init__(self, kind: str, units: int, n_side: int, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.units, self.n_side = kind, units, n_side
        if kind == "mlp":
            self.hidden = keras.layers.Dense(units, activation="relu", name="mlp_hidden",
                                             dtype="float32")
            self.out = keras.layers.Dense(1, name="mlp_out", dtype="float32")
        elif n_side:
            self.side = keras.layers.Dense(1, use_bias=False, name="side_weights",
                                           dtype="float32")

    def call(self, user, items, side):
        """user [B, D], items [B, C, D], side [B, F] -> scores [B, C]."""
        if self.kind == "mlp":
            count = tf.shape(items)[1]
            u = tf.repeat(user[:, tf.newaxis], count, axis=1)
            s = tf.repeat(side[:, tf.newaxis], count, axis=1)
            x = tf.concat([u, items, u * items, s], axis=-1)
            return tf.squeeze(self.out(self.hidden(x)), -1)
        scores = tf.einsum("bd,bcd->bc", user, items)
        if self.n_side:  # a per-impression offset: matters for pointwise calibration
            scores += self.side(side)
        return scores


class RecommendModel(keras.Model):
    """Training/evaluation model over item token ids; see the module docstring."""

    ROWS_MULTIPLE = 32
    LENGTH_MULTIPLE = 8

    def __init__(self, item_encoder: keras.Model, cfg: RecommendConfig, pad_id: int,
                 n_items: int = 0, categories: list = (), n_categories: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.item_encoder = item_encoder
        # float32 on top of a mixed-precision encoder: attention softmax and scores.
        self.user_pooling = AttentionPooling(cfg.attention_units, name="user_attention",
                                             dtype="float32")
        self.scorer = Scorer(cfg.scorer, cfg.mlp_units, len(cfg.side_feature_columns),
                             name="scorer", dtype="float32")
        self.pad_id = pad_id
        # recommend.history_cache: training reads history item vectors from this table.
        self.history_cache = self.add_weight(
            shape=(n_items, cfg.embedding_dim), initializer="zeros", trainable=False,
            name="history_cache", dtype="float32") if cfg.history_cache else None
        # recommend.item_id_embedding: id vectors of the items seen in training (known).
        self.id_dropout = cfg.id_dropout
        self.id_embedding = None
        if cfg.item_id_embedding:
            self.id_embedding = keras.layers.Embedding(
                n_items, cfg.embedding_dim, embeddings_initializer="zeros",
                name="item_id_embedding", dtype="float32")
            self.id_embedding.build((None,))
            self.known_items = self.add_weight(shape=(n_items,), initializer="zeros",
                                               trainable=False, name="known_items",
                                               dtype="float32")
        # recommend.item_category_columns: each item's category ids (0 pads), fixed by the
        # items file; their learned vectors' mean is added to the item's.
        self.category_embedding = None
        if n_categories:
            width = max(1, max(len(c) for c in categories))
            table = np.zeros([n_items, width], np.int32)
            for i, ids in enumerate(categories):
                table[i, :len(ids)] = ids
            self.item_category_table = self.add_weight(
                shape=table.shape, initializer=keras.initializers.Constant(table),
                trainable=False, name="item_category_table", dtype="int32")
            self.category_embedding = keras.layers.Embedding(
                n_categories + 1, cfg.embedding_dim, embeddings_initializer="zeros",
                name="item_category_embedding", dtype="float32")
            self.category_embedding.build((None,))
        # recommend.text_encoder frozen: the backbone does not train, so each item's pooled
        # backbone output is computed once (FeatureTableFill) and training steps run only
        # the head over this table: no backbone pass per step.
        self.frozen_text = cfg.text_encoder == "frozen"
        if self.frozen_text:
            features = item_encoder.get_layer("head_dropout").input
            self.text_features = keras.Model(item_encoder.input, features,
                                             name="item_text_features")
            self.feature_table = self.add_weight(
                shape=(n_items, int(features.shape[-1])), initializer="zeros",
                trainable=False, name="item_feature_table", dtype="float32")

    def encode_tokens(self, token_ids, training=False):
        mask = tf.cast(tf.not_equal(token_ids, self.pad_id), tf.int32)
        out = self.item_encoder(model_inputs(token_ids, mask), training=training)
        return tf.cast(out, tf.float32)

    def score_vectors(self, history, history_mask, candidates, side):
        user = self.user_pooling(history, history_mask)
        return self.scorer(user, candidates, side)

    def with_extras(self, vectors, index, training=False):
        """Text vectors [..., dim] of items `index` plus their category vectors' mean
        (recommend.item_category_columns) and the id vectors of known items (kept with
        probability 1 - id_dropout in training); unchanged without either."""
        if self.category_embedding is not None:
            cats = tf.gather(self.item_category_table, tf.maximum(index, 0))
            present = tf.cast(cats > 0, tf.float32) * tf.cast(index >= 0, tf.float32)[
                ..., tf.newaxis]
            summed = tf.reduce_sum(tf.cast(self.category_embedding(cats), tf.float32)
                                   * present[..., tf.newaxis], axis=-2)
            mean = summed / tf.maximum(tf.reduce_sum(present, -1), 1.0)[..., tf.newaxis]
            vectors = tf.cast(vectors, tf.float32) + mean
        if self.id_embedding is None:
            return vectors
        ids = tf.maximum(index, 0)
        # Casts: under a mixed policy Keras reads float32 variables in the compute dtype.
        keep = tf.cast(tf.gather(self.known_items, ids), tf.float32) * tf.cast(
            index >= 0, tf.float32)
        if training and self.id_dropout > 0:
            keep *= tf.cast(tf.random.uniform(tf.shape(ids)) >= self.id_dropout, tf.float32)
        return (tf.cast(vectors, tf.float32)
                + tf.cast(self.id_embedding(ids), tf.float32) * keep[..., tf.newaxis])

    def table_vectors(self, index, training=False):
        """Item vectors from the frozen feature table (recommend.text_encoder frozen): the
        item encoder's head over each item's precomputed pooled backbone output."""
        features = tf.gather(self.feature_table, tf.maximum(index, 0))
        dropout = self.item_encoder.get_layer("head_dropout")
        projection = self.item_encoder.get_layer("item_projection")
        return tf.cast(projection(dropout(features, training=training)), tf.float32)

    def call(self, inputs, training=False):
        if "negative_index" in inputs:
            return self._in_batch(inputs, training)
        h_ids, c_ids = inputs["history_index"], inputs["candidate_index"]
        h_tok, c_tok = inputs["history_tokens"], inputs["candidate_tokens"]
        if self.frozen_text:  # the table is a weight: restored runs have theirs
            history, candidates = (self.table_vectors(h_ids, training),
                                   self.table_vectors(c_ids, training))
        elif training and self.history_cache is not None:
            # History items come from the table filled at each epoch start (no gradient
            # through them); only candidates are encoded, with gradients.
            history = tf.gather(self.history_cache, tf.maximum(h_ids, 0))
            (candidates,) = self._encode_slots([(c_ids, c_tok)], training)
        else:
            history, candidates = self._encode_slots([(h_ids, h_tok), (c_ids, c_tok)],
                                                     training)
        history = self.with_extras(history, h_ids, training)
        candidates = self.with_extras(candidates, c_ids, training)
        return self.score_vectors(history, h_ids >= 0, candidates, inputs["side"])

    def _in_batch(self, inputs, training):
        """recommend.loss in_batch: [batch, 1 + candidates] logits (tasks/recommend/in_batch.py)."""
        h_ids, p_ids, n_ids = (inputs["history_index"], inputs["candidate_index"],
                               inputs["negative_index"])
        parts = [(p_ids, inputs["candidate_tokens"]), (n_ids, inputs["negative_tokens"])]
        if self.frozen_text:
            history, positives, negatives = (self.table_vectors(i, training)
                                             for i in (h_ids, p_ids, n_ids))
        elif training and self.history_cache is not None:
            history = tf.gather(self.history_cache, tf.maximum(h_ids, 0))
            positives, negatives = self._encode_slots(parts, training)
        else:
            history, positives, negatives = self._encode_slots(
                [(h_ids, inputs["history_tokens"]), *parts], training)
        history = self.with_extras(history, h_ids, training)
        positives = self.with_extras(positives, p_ids, training)
        negatives = self.with_extras(negatives, n_ids, training)
        user = self.user_pooling(history, h_ids >= 0)
        dim = tf.shape(positives)[-1]
        candidates = tf.concat([positives[:, 0], tf.reshape(negatives, [-1, dim])], axis=0)
        ids = tf.concat([p_ids[:, 0], tf.reshape(n_ids, [-1])], axis=0)
        q = tf.concat([inputs["candidate_q"][:, 0], tf.reshape(inputs["negative_q"], [-1])],
                      axis=0)
        side = tf.zeros([tf.shape(user)[0], self.scorer.n_side])
        return in_batch_logits(self.scorer, user, side, candidates, ids, q, p_ids[:, 0])

    def _encode_slots(self, parts, training):
        """[(index [b, n], tokens [b, n, len])] -> one [b, n, dim] vector grid per part;
        every distinct item in the batch is encoded once."""
        width = tf.reduce_max(tf.stack([tf.shape(tok)[2] for _, tok in parts]))
        flat = lambda t: tf.reshape(  # noqa: E731
            tf.pad(t, [[0, 0], [0, 0], [0, width - tf.shape(t)[2]]],
                   constant_values=self.pad_id), [-1, width])
        tokens = tf.concat([flat(tok) for _, tok in parts], axis=0)
        index = tf.concat([tf.reshape(ids, [-1]) for ids, _ in parts], axis=0)
        valid = index >= 0
        unique, position = tf.unique(tf.boolean_mask(index, valid))
        valid_tokens = tf.boolean_mask(tokens, valid)
        first = tf.math.unsorted_segment_min(tf.range(tf.size(position)), position,
                                             tf.size(unique))
        # Round the encoder's batch up (repeating an item; the copies are never read) and
        # its length up (padding), so steps reuse a few shapes: on CPU every new shape
        # costs new oneDNN kernels.
        count = tf.size(first)
        rows = -(-count // self.ROWS_MULTIPLE) * self.ROWS_MULTIPLE
        first = tf.concat([first, tf.fill([rows - count], first[0])], axis=0)
        item_tokens = tf.gather(valid_tokens, first)
        longest = tf.reduce_max(tf.reduce_sum(
            tf.cast(tf.not_equal(item_tokens, self.pad_id), tf.int32), axis=1))
        length = -(-longest // self.LENGTH_MULTIPLE) * self.LENGTH_MULTIPLE
        item_tokens = tf.pad(item_tokens, [[0, 0], [0, tf.maximum(length - width, 0)]],
                             constant_values=self.pad_id)[:, :length]
        vectors = self.encode_tokens(item_tokens, training=training)[:count]
        slot = tf.scatter_nd(tf.where(valid), position, tf.shape(index, tf.int64))
        per_slot = tf.gather(vectors, slot)  # invalid slots read item 0; masked later
        dim = tf.shape(vectors)[1]
        grids, start = [], 0
        for ids, _ in parts:
            size = tf.size(ids)
            grids.append(tf.reshape(per_slot[start:start + size],
                                    [tf.shape(ids)[0], tf.shape(ids)[1], dim]))
            start += size
        return grids


class HistoryCacheRefresh(keras.callbacks.Callback):
    """At the start of every epoch, re-encodes the whole catalogue with the current weights
    into the model's history cache (recommend.history_cache)."""

    def __init__(self, item_vectors):
        super().__init__()
        self.item_vectors = item_vectors  # model -> [items, dim] numpy

    def on_epoch_begin(self, epoch, logs=None):
        self.model.history_cache.assign(self.item_vectors(self.model))


class FeatureTableFill(keras.callbacks.Callback):
    """Before training, fills the model's frozen feature table with every catalogue item's
    pooled backbone output (recommend.text_encoder frozen)."""

    def __init__(self, item_features):
        super().__init__()
        self.item_features = item_features  # model -> [items, hidden] numpy

    def on_train_begin(self, logs=None):
        self.model.feature_table.assign(self.item_features(self.model))


class KnownItemsFill(keras.callbacks.Callback):
    """Before training, marks the items seen in training (recommend.item_id_embedding)."""

    def __init__(self, known):
        super().__init__()
        self.known = known  # () -> [items] 0/1 numpy

    def on_train_begin(self, logs=None):
        self.model.known_items.assign(self.known())
