"""The recommend task's export root: raw item texts in, vectors and scores out."""
from __future__ import annotations

import tensorflow as tf

from tasks.recommend.model import RecommendModel


class ServingRecommender(tf.Module):
    """Export root: raw item texts in, vectors and scores out; needs no Python
    pre-processing. Empty strings pad histories and candidate lists."""

    def __init__(self, model: RecommendModel, packer, n_side: int,
                 known_texts: list[str] = (), id_vectors=None):
        super().__init__(name="recommender")
        self.model = model
        # recommend.item_id_embedding / item_category_columns: an item whose text is a
        # catalogue item's gets that item's id and category vectors added (id_vectors);
        # any other text is scored from its text alone.
        self.with_ids = id_vectors is not None
        if self.with_ids:
            self.id_vectors = tf.Variable(tf.constant(id_vectors, tf.float32),
                                          trainable=False, name="known_item_id_vectors")
            self.known_index = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(known_texts)), tf.range(len(known_texts), dtype=tf.int64)),
                default_value=-1)
        self.tokenizer = packer.tokenizer
        self._packer = packer
        self.n_side = n_side
        text_2d = tf.TensorSpec([None, None], tf.string)
        side = [tf.TensorSpec([None, n_side], tf.float32, name="side_features")] \
            if n_side else []
        self.encode_items = tf.function(
            self._encode_items, input_signature=[tf.TensorSpec([None], tf.string, "item_text")])
        self.encode_user = tf.function(
            self._encode_user, input_signature=[tf.TensorSpec([None, None], tf.string,
                                                              "history")])
        self.score_user = tf.function(self._score_user, input_signature=[
            tf.TensorSpec([None, None], tf.float32, "user_vector"),
            tf.TensorSpec([None, None, None], tf.float32, "item_vectors")])
        self.score = tf.function(self._score, input_signature=[
            tf.TensorSpec(text_2d.shape, tf.string, "history"),
            tf.TensorSpec(text_2d.shape, tf.string, "candidates"), *side])

    def _vectors(self, texts):
        """[n] texts -> [n, dim], each distinct text encoded once."""
        unique, position = tf.unique(texts)
        vectors = self.model.encode_tokens(self._packer(unique)["token_ids"])
        if self.with_ids:
            index = self.known_index.lookup(unique)
            vectors += tf.where((index >= 0)[:, tf.newaxis],
                                tf.gather(self.id_vectors, tf.maximum(index, 0)), 0.0)
        return tf.gather(vectors, position)

    def _grid(self, texts):
        """[b, n] texts -> ([b, n, dim] vectors, [b, n] mask of non-empty texts)."""
        shape = tf.shape(texts)
        vectors = self._vectors(tf.reshape(texts, [-1]))
        vectors = tf.reshape(vectors, [shape[0], shape[1], tf.shape(vectors)[-1]])
        return vectors, tf.strings.length(texts) > 0

    def _encode_items(self, item_text):
        return {"item_vector": self._vectors(item_text)}

    def _encode_user(self, history):
        vectors, mask = self._grid(history)
        return {"user_vector": self.model.user_pooling(vectors, mask)}

    def _score_user(self, user_vector, item_vectors):
        """Scores [b, n] of items [b, n, dim] for users already pooled [b, dim] (no side
        features): what the catalogue's brute-force retrieval ranks by."""
        side = tf.zeros([tf.shape(user_vector)[0], self.n_side], tf.float32)
        return self.model.scorer(user_vector, item_vectors, side)

    def _score(self, history, candidates, side_features=None):
        h, h_mask = self._grid(history)
        c, c_mask = self._grid(candidates)
        if side_features is None:
            side_features = tf.zeros([tf.shape(history)[0], 0], tf.float32)
        scores = self.model.score_vectors(h, h_mask, c, side_features)
        return {"scores": tf.where(c_mask, scores, 0.0)}

    def signatures(self) -> dict:
        return {"serving_default": self.score, "score": self.score,
                "encode_items": self.encode_items, "encode_user": self.encode_user}
