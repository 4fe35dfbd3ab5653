"""The recommend task's scoring and evaluation (a mixin of RecommendTask): item vectors
from the item encoder (or the frozen feature table), hybrid id vectors, per-impression and
whole-catalogue metrics beside the popularity, zero-shot text and collaborative baselines."""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tasks.recommend.data import Impressions
from tasks.recommend.evaluation import format_interaction_report, interaction_report
from tasks.recommend.model import RecommendModel
from tasks.recommend.ranking_metrics import impression_metrics
from tfapp.core.backbone import backbone_inputs, load_backbone, pooled_output
from tfapp.core.datasets import texts_only_dataset


class RecommendScoring:
    """Scores of a trained RecommendModel, and the task's test report."""

    def item_vectors(self, model: RecommendModel, packer, with_extras: bool = True) -> np.ndarray:
        """[items, dim]: every catalogue item encoded once (frozen text encoder: the item
        head over the feature table, the same function without the backbone pass), plus
        their id and category vectors (recommend.item_id_embedding, item_category_columns)
        unless not `with_extras`."""
        index = tf.range(len(self.item_ids))
        if model.frozen_text:
            vectors = model.table_vectors(index).numpy()
        else:
            ds = texts_only_dataset(self.item_texts, self._item_packer(packer),
                                    self.config.trainer.global_batch_size)
            vectors = np.asarray(model.item_encoder.predict(ds, verbose=0), np.float32)
        return model.with_extras(tf.constant(vectors), index).numpy() if with_extras else vectors

    def item_features(self, model: RecommendModel, packer) -> np.ndarray:
        """[items, hidden]: every catalogue item's pooled backbone output (frozen mode)."""
        ds = texts_only_dataset(self.item_texts, self._item_packer(packer),
                                self.config.trainer.global_batch_size)
        return np.asarray(model.text_features.predict(ds, verbose=0), np.float32)

    def score_impressions(self, model: RecommendModel, imps: Impressions, packer,
                          vectors: Optional[np.ndarray] = None, batch: int = 256) -> list:
        """Per impression, the candidates' scores in file order."""
        vectors = self.item_vectors(model, packer) if vectors is None else vectors
        dim = vectors.shape[1]
        scores = []
        for start in range(0, len(imps), batch):
            hist = imps.history[start:start + batch]
            cand = imps.candidates[start:start + batch]
            n_h = max(1, max(len(h) for h in hist))
            n_c = max(len(c) for c in cand)
            h = np.zeros([len(hist), n_h, dim], np.float32)
            mask = np.zeros([len(hist), n_h], bool)
            c = np.zeros([len(cand), n_c, dim], np.float32)
            for i, (hi, ci) in enumerate(zip(hist, cand)):
                h[i, :len(hi)] = vectors[hi]
                mask[i, :len(hi)] = True
                c[i, :len(ci)] = vectors[ci]
            out = model.score_vectors(tf.constant(h), tf.constant(mask), tf.constant(c),
                                      tf.constant(imps.side[start:start + batch]))
            out = out.numpy()
            scores += [out[i, :len(ci)] for i, ci in enumerate(cand)]
        return scores

    def impression_report(self, model, imps: Impressions, packer) -> dict:
        scores = self.score_impressions(model, imps, packer)
        usable = [i for i, y in enumerate(imps.clicks) if 0 < sum(y) < len(y)]
        out = impression_metrics([imps.clicks[i] for i in usable], [scores[i] for i in usable],
                                 self.params.ndcg_ks)
        # All-clicked impressions have no AUC; say how many were left out.
        out["impressions_without_a_non_click"] = len(imps) - len(usable)
        return out

    def evaluate(self, model, examples: Impressions, packer) -> dict:
        if len(examples) == 0:
            return {}
        if self.interactions:
            return interaction_report(
                examples, self.catalogue_scores(model, examples, packer), self.popularity,
                self.zero_shot_vectors(packer), self.params.ndcg_ks,
                self.collaborative_scores(examples))
        return self.impression_report(model, examples, packer)

    def catalogue_scores(self, model: RecommendModel, imps: Impressions, packer,
                         batch: int = 32) -> np.ndarray:
        """[impressions, items]: the model's score of every catalogue item per user."""
        vectors = self.item_vectors(model, packer)
        every = [list(range(len(vectors)))]
        every_imps = Impressions(imps.ids, imps.history, every * len(imps), every * len(imps),
                                 imps.side, imps.source)
        return np.stack(self.score_impressions(model, every_imps, packer, vectors, batch))

    def collaborative_scores(self, imps: Impressions) -> dict:
        """{baseline: [impressions, items] scores}: item-kNN and BPR matrix factorisation
        of the training interactions (the factorisation is trained once per task)."""
        from tasks.recommend.collaborative import item_knn_scores, mf_scores, train_bpr

        n_items = len(self.item_ids)
        if self._mf is None:
            self._mf = train_bpr(self.train_positives, n_items, self.config.seed)
        return {"item_knn": item_knn_scores(imps, self.train_positives, n_items),
                "bpr_mf": mf_scores(imps, self._mf)}

    def zero_shot_vectors(self, packer) -> np.ndarray:
        """Item embeddings of the untrained backbone, mean-pooled (computed once)."""
        if self._zero_shot is None:
            b = self.config.backbone
            loaded = load_backbone(b.name, b.exact_gelu, None)
            inputs = backbone_inputs()
            encoder = keras.Model(inputs, pooled_output(loaded.backbone, inputs, "mean"))
            ds = texts_only_dataset(self.item_texts, self._item_packer(packer),
                                    self.config.trainer.global_batch_size)
            self._zero_shot = np.asarray(encoder.predict(ds, verbose=0), np.float32)
        return self._zero_shot

    def format_metrics(self, metrics: dict) -> str:
        if "baselines" in metrics:
            return format_interaction_report(metrics, self.params.ndcg_ks)
        ndcg = "  ".join(f"nDCG@{k} {metrics[f'ndcg@{k}']:.4f}" for k in self.params.ndcg_ks)
        return (f"recommend: AUC {metrics['auc']:.4f}  MRR {metrics['mrr']:.4f}  {ndcg}  "
                f"({metrics['impressions']} impressions, {metrics['candidates']} candidates)")

