"""The catalogue inside a recommend export: every item's id, text and precomputed vector,
and a `recommend` signature that embeds a new user from their history item texts and
returns the top-k catalogue items by brute force (`tf.math.top_k` over the scores),
leaving out items the history already holds. Re-indexing (python -m tfapp.recommend_index)
swaps the catalogue without retraining: the export's own item encoder embeds the new items."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

CATALOGUE_RECORD = "recommend_catalogue.json"


class CatalogueModule(tf.Module):
    """Export root: `base` (the ServingRecommender, or the one of a loaded export) plus a
    catalogue. `base` needs tf.functions encode_user(history) and score_user(user_vector,
    item_vectors)."""

    def __init__(self, base, item_ids: list[str], item_texts: list[str], vectors: np.ndarray,
                 top_k: int):
        super().__init__(name="catalogue_recommender")
        self.base = base
        self.item_ids = tf.Variable(tf.constant(item_ids), trainable=False, name="item_ids")
        self.item_texts = tf.Variable(tf.constant(item_texts), trainable=False,
                                      name="item_texts")
        self.item_vectors = tf.Variable(tf.constant(vectors, tf.float32), trainable=False,
                                        name="item_vectors")
        self.top_k = tf.Variable(int(top_k), trainable=False, name="top_k", dtype=tf.int32)
        self.recommend = tf.function(self._recommend, input_signature=[
            tf.TensorSpec([None, None], tf.string, "history")])

    def _recommend(self, history):
        """history [b, h] item texts ('' pads) -> the top-k catalogue items per user."""
        user = self.base.encode_user(history)["user_vector"]
        batch = tf.shape(history)[0]
        items = tf.broadcast_to(self.item_vectors[tf.newaxis],
                                [batch, *tf.unstack(tf.shape(self.item_vectors))])
        scores = self.base.score_user(user, items)
        seen = tf.reduce_any(tf.equal(history[:, :, tf.newaxis],
                                      self.item_texts[tf.newaxis, tf.newaxis]), axis=1)
        scores = tf.where(seen, tf.constant(-np.inf, scores.dtype), scores)
        k = tf.minimum(self.top_k, tf.size(self.item_ids))
        top = tf.math.top_k(scores, k=k)
        return {"item_ids": tf.gather(self.item_ids, top.indices),
                "item_texts": tf.gather(self.item_texts, top.indices),
                "scores": top.values}

    def signatures(self) -> dict:
        b = self.base
        return {"serving_default": b.score, "score": b.score, "encode_items": b.encode_items,
                "encode_user": b.encode_user, "recommend": self.recommend}


def embed_items(encode_items, texts: list[str], batch: int = 64) -> np.ndarray:
    """Item vectors from an export's encode_items function, in batches."""
    parts = [encode_items(tf.constant(texts[i:i + batch]))["item_vector"].numpy()
             for i in range(0, len(texts), batch)]
    return np.concatenate(parts).astype(np.float32)


def reindexed_root(source, items_file: str, id_column: str, text_columns: list[str],
                   fmt: str, top_k=None):
    """(export root with the items of `items_file` as its catalogue, example inputs, record)
    for the recommend export at `source`; items are embedded by the export's own encoder."""
    from tasks.recommend.data import RecommendConfig, read_items

    loaded = tf.saved_model.load(str(source))
    if not hasattr(loaded, "base") or not hasattr(loaded, "item_vectors"):
        raise ValueError(f"{source}: not a recommend export with a catalogue")
    p = RecommendConfig(items_file=items_file, item_id_column=id_column,
                        item_text_columns=text_columns)
    ids, texts = read_items(p, fmt)
    vectors = embed_items(loaded.base.encode_items, texts)
    top_k = top_k or int(loaded.top_k.numpy())
    root = CatalogueModule(loaded.base, ids, texts, vectors, top_k)
    history = np.array([[texts[0], ""], ["", ""]], dtype=object)
    examples = {"recommend": {"history": history}, "encode_user": {"history": history},
                "encode_items": {"item_text": np.array(texts[:2], dtype=object)}}
    record = {"source_export": str(source), "items": str(items_file),
              "catalogue_size": len(ids), "top_k": top_k, "text_columns": text_columns}
    return root, examples, record
