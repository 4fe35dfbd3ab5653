"""Recommendation text scoring: how well does each candidate item's text match what this
user clicked before? A text-aware score for an existing ranker to combine with its own
features.

Item text (the configured item columns joined with ". ") is encoded by the shared backbone
into an item vector; a user vector is attention-pooled from the vectors of the user's last
`max_history` clicked items (a learned vector for users with no history); the score is
user . item, or a small MLP over [user, item, user * item, side features]. Training is
listwise per impression (one clicked candidate against K sampled non-clicked ones of the
same impression, softmax) or pointwise (BCE per candidate). Each distinct item in a batch
is encoded once and shared between histories and candidates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tasks.recommend.candidate_scoring import RecommendScoring
from tasks.recommend.catalogue import CatalogueModule
from tasks.recommend.data import Impressions, RecommendConfig, read_impressions, read_items
from tasks.recommend.in_batch import candidate_probabilities, in_batch_dataset
from tasks.recommend.interactions import read_interactions
from tasks.recommend.model import (
    FeatureTableFill,
    HistoryCacheRefresh,
    KnownItemsFill,
    RecommendModel,
)
from tasks.recommend.signatures import ServingRecommender
from tfapp.core.backbone import backbone_inputs, pooled_output
from tfapp.core.errors import ConfigError
from tfapp.core.log import say
from tfapp.core.task_callbacks import EpochMetrics
from tfapp.core.task_contract import SPLITS, Task, register

SAMPLES = Path(__file__).parents[1] / "samples"


@register
class RecommendTask(RecommendScoring, Task):
    name = "recommend"
    Config = RecommendConfig

    def __init__(self, config):
        super().__init__(config)
        self.item_ids: list[str] = []
        self.item_texts: list[str] = []
        self.item_categories: list[list[int]] = []  # recommend.item_category_columns ids
        self.n_categories = 0
        self.skipped: dict[str, list] = {}
        self.popularity: Optional[np.ndarray] = None  # interactions: training positives
        self._zero_shot: Optional[np.ndarray] = None
        self.train_positives: dict = {}  # interactions: user -> training positives
        self._mf = None  # the BPR factorisation baseline, trained once
        self._positive_counts: Optional[np.ndarray] = None  # in_batch: training clicks per item
        self._known_items: Optional[np.ndarray] = None  # 1 for items seen in training

    # --- data -------------------------------------------------------------------------
    def sample_file(self) -> Path:
        return SAMPLES / "recommend_impressions.tsv"

    def _load_items(self) -> None:
        p = self.params
        if p.items_file is None and self.config.data.train_file is None:
            p.items_file = str(SAMPLES / "recommend_items.tsv")
        if p.items_file is None:
            raise ConfigError("recommend.items_file is required with your own impressions")
        values: list = []
        self.item_ids, self.item_texts = read_items(p, self.config.data.format, values)
        vocabulary = sorted({v for item in values for v in item})
        index = {v: k + 1 for k, v in enumerate(vocabulary)}  # 0 pads
        self.item_categories = [[index[v] for v in item] for item in values]
        self.n_categories = len(vocabulary)

    def _read_impressions(self, path) -> Impressions:
        imps, skipped = read_impressions(path, self.params, self.config.data.format,
                                         self.item_ids, say)
        self.skipped[str(path)] = skipped
        return imps

    @property
    def interactions(self) -> bool:
        return self.params.data_format == "interactions"

    def _read_log(self, path) -> dict[str, Impressions]:
        log = read_interactions(path, self.params, self.config.data.format, self.item_ids,
                                self.config.seed, say)
        self.popularity = log.popularity
        self.train_positives = log.train_positives
        self.skipped[str(path)] = log.skipped
        return log.splits

    def load_splits(self) -> dict[str, Impressions]:
        d = self.config.data
        if self.interactions:
            if d.train_file is None:
                raise ConfigError("recommend.data_format interactions: set data.train_file "
                                  "to the interaction log (user, item, time[, rating])")
            if d.validation_file or d.test_file:
                raise ConfigError("recommend.data_format interactions splits the log by time "
                                  "(leave-last-out): leave data.validation_file and "
                                  "data.test_file unset")
            self._load_items()
            return self._read_log(d.train_file)
        self._load_items()
        files = {"train": d.train_file or str(self.sample_file()),
                 "validation": d.validation_file, "test": d.test_file}
        data = {s: self._read_impressions(path) for s, path in files.items() if path}
        # Split by impression; stratify by nothing (keys all equal), seeded.
        return self.complete_splits(
            data, files, stratify=lambda imps: [0] * len(imps),
            empty=lambda: Impressions([], [], [], [], np.zeros(
                [0, len(self.params.side_feature_columns)], np.float32), "none"))

    def read_file(self, path: str) -> Impressions:
        if not self.item_ids:
            self._load_items()
        if self.interactions:  # a log: its held-out last positives
            return self._read_log(path)["test"]
        return self._read_impressions(path)

    def texts(self, examples: Impressions) -> list[str]:
        """The distinct item texts this split refers to."""
        used = sorted({i for rows in (examples.history, examples.candidates)
                       for row in rows for i in row})
        return [self.item_texts[i] for i in used]

    def text_packer(self, packer):
        return self._item_packer(packer)

    def _item_packer(self, packer):
        return packer.with_length(min(self.params.item_max_length, packer.max_seq_length))

    def training_size(self, imps: Impressions) -> int:
        if self.params.loss == "pointwise":
            return sum(len(c) for c in imps.candidates)
        if self.params.loss == "in_batch":  # one example per click
            return sum(sum(c) for c in imps.clicks)
        # One example per click, in impressions that also have a non-click to contrast.
        return sum(sum(c) for c in imps.clicks if sum(c) < len(c))

    def dataset(self, examples: Impressions, packer, batch_size: int,
                training: bool) -> tf.data.Dataset:
        p = self.params
        item_tokens = self._item_packer(packer).ragged_ids(tf.constant(self.item_texts))
        if training:  # the items whose id vectors can learn (recommend.item_id_embedding)
            seen = [i for rows in (examples.history, examples.candidates) for r in rows
                    for i in r]
            self._known_items = (np.bincount(seen, minlength=len(self.item_ids)) > 0
                                 ).astype(np.float32)
        if p.loss == "in_batch":
            return self._in_batch_dataset(examples, item_tokens, packer, batch_size, training)
        history, cands, labels, side = [], [], [], []
        for i in range(len(examples)):
            clicks = np.array(examples.clicks[i])
            cand = np.array(examples.candidates[i])
            if p.loss == "pointwise":
                for c, y in zip(cand, clicks):
                    history.append(examples.history[i])
                    cands.append([[int(c)]])
                    labels.append([float(y)])  # [1]: matches the [1]-candidate logits
                    side.append(examples.side[i])
            else:
                negatives = cand[clicks == 0].tolist()
                if not negatives:  # all clicked: nothing to contrast the clicks with
                    continue
                for positive in cand[clicks == 1]:
                    history.append(examples.history[i])
                    cands.append([[int(positive)], negatives])
                    labels.append(0)
                    side.append(examples.side[i])
        k = p.negatives
        ragged = lambda rows: tf.ragged.constant(rows, dtype=tf.int32)  # noqa: E731
        ds = tf.data.Dataset.from_tensor_slices((
            tf.RaggedTensor.from_row_lengths(
                tf.constant([x for h in history for x in h], tf.int32),
                [len(h) for h in history]),
            tf.RaggedTensor.from_row_lengths(
                tf.constant([c[0][0] for c in cands], tf.int32), [1] * len(cands)),
            ragged([c[1] if len(c) > 1 else [] for c in cands]) if p.loss == "listwise"
            else tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), [0] * len(cands)),
            np.array(labels, np.float32 if p.loss == "pointwise" else np.int32),
            np.array(side, np.float32).reshape(len(labels), len(p.side_feature_columns))))
        label_pad = tf.constant(0, ds.element_spec[3].dtype)
        if training:
            ds = ds.shuffle(min(self.config.data.shuffle_buffer, max(len(labels), 1)),
                            seed=self.config.seed, reshuffle_each_iteration=True)
        listwise = p.loss == "listwise"

        def example(hist, positive, negatives, label, side_row):
            if listwise:
                # K non-clicked candidates of the same impression: without replacement
                # when it has K, else with replacement.
                n = tf.size(negatives)
                shuffled = tf.random.shuffle(negatives)
                drawn = tf.gather(negatives, tf.random.uniform([k], 0, n, tf.int32))
                chosen = tf.cond(n >= k, lambda: shuffled[:k], lambda: drawn)
                candidates = tf.concat([positive, chosen], axis=0)
            else:
                candidates = positive
            hist_tokens = tf.gather(item_tokens, hist).to_tensor(packer.pad_id)
            cand_tokens = tf.gather(item_tokens, candidates).to_tensor(packer.pad_id)
            return ({"history_index": hist, "history_tokens": hist_tokens,
                     "candidate_index": candidates, "candidate_tokens": cand_tokens,
                     "side": side_row}, label)

        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        pad = packer.pad_id
        ds = ds.padded_batch(batch_size, padding_values=(
            {"history_index": -1, "history_tokens": pad, "candidate_index": -1,
             "candidate_tokens": pad, "side": 0.0}, label_pad))
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(labels) // batch_size)))
        return ds.prefetch(tf.data.AUTOTUNE)

    def _in_batch_dataset(self, examples: Impressions, item_tokens, packer, batch_size: int,
                          training: bool) -> tf.data.Dataset:
        """(history, clicked item) per click; negatives come from the batch (in_batch.py)."""
        history, positives = [], []
        for hist, cands, clicks in zip(examples.history, examples.candidates, examples.clicks):
            for item, clicked in zip(cands, clicks):
                if clicked:
                    history.append(hist)
                    positives.append(int(item))
        if training or self._positive_counts is None:  # the training clicks give every q
            self._positive_counts = np.bincount(positives, minlength=len(self.item_ids))
        q = candidate_probabilities(self._positive_counts, self.params.sampled_negatives)
        return in_batch_dataset(history, positives, item_tokens, q,
                                self.params.sampled_negatives, batch_size, packer.pad_id,
                                self.config.data.shuffle_buffer, self.config.seed, training)

    # --- model ------------------------------------------------------------------------
    def build_model(self, loaded) -> keras.Model:
        if not self.item_ids:
            self._load_items()
        inputs = backbone_inputs()
        if self.params.text_encoder == "frozen":
            loaded.backbone.trainable = False
        pooled = pooled_output(loaded.backbone, inputs, self.config.backbone.pooling)
        pooled = keras.layers.Dropout(self.params.head_dropout, name="head_dropout")(pooled)
        vector = keras.layers.Dense(self.params.embedding_dim, name="item_projection",
                                    dtype="float32")(pooled)
        encoder = keras.Model(inputs, vector, name="item_encoder")
        model = RecommendModel(encoder, self.params, loaded.tokenizer.token_to_id("[PAD]"),
                               n_items=len(self.item_ids), categories=self.item_categories,
                               n_categories=self.n_categories, name="recommender")
        ids = tf.constant([[[1, 2, 3]]], tf.int32)
        model({"history_index": tf.constant([[0]]), "history_tokens": ids,
               "candidate_index": tf.constant([[1]]), "candidate_tokens": ids,
               "side": tf.zeros([1, len(self.params.side_feature_columns)])})
        return model

    def compile_args(self) -> dict:
        if self.params.loss == "pointwise":
            return {"loss": keras.losses.BinaryCrossentropy(from_logits=True),
                    "metrics": [keras.metrics.AUC(from_logits=True, name="pointwise_auc")]}
        name = "in_batch_accuracy" if self.params.loss == "in_batch" else "listwise_accuracy"
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name=name)]}

    def monitor(self) -> tuple[str, str]:
        return "val_auc", "max"

    def summary_keys(self) -> list[str]:
        return ["loss", "val_loss", "val_auc", "val_mrr",
                *(f"val_ndcg_at_{k}" for k in self.params.ndcg_ks)]

    def impression_logs(self, model, validation: Impressions, packer) -> dict:
        """Per-impression validation metrics as epoch-log entries (val_auc, val_mrr,
        val_ndcg_at_K)."""
        metrics = self.impression_report(model, validation, packer)
        keys = ("auc", "mrr", *(f"ndcg@{k}" for k in self.params.ndcg_ks))
        return {"val_" + key.replace("@", "_at_"): metrics[key] for key in keys}

    def callbacks(self, run_dir: Path, validation: Impressions, packer) -> list:
        out = [EpochMetrics(lambda model: self.impression_logs(model, validation, packer))]
        if self.params.history_cache and self.params.text_encoder != "frozen":
            out.append(HistoryCacheRefresh(  # text vectors: the id part is added per step
                lambda model: self.item_vectors(model, packer, with_extras=False)))
        if self.params.item_id_embedding:
            out.append(KnownItemsFill(lambda: self._known_items))
        if self.params.text_encoder == "frozen":
            out.append(FeatureTableFill(lambda model: self.item_features(model, packer)))
        return out

    # --- serving ----------------------------------------------------------------------
    def serving_root(self, model, packer):
        # Catalogue items whose vector is more than their text's (id and category
        # vectors): the export adds that part when it is sent such an item's text.
        extras = None
        if model.id_embedding is not None or model.category_embedding is not None:
            index = tf.range(len(self.item_ids))
            extras = model.with_extras(tf.zeros([len(self.item_ids),
                                                 self.params.embedding_dim]), index).numpy()
        first = {}  # two items with the same text: the export can tell only the first
        for i in (np.flatnonzero(np.abs(extras).sum(axis=1) > 0) if extras is not None
                  else []):
            first.setdefault(self.item_texts[i], int(i))
        known = sorted(first.values())
        base = ServingRecommender(model, self._item_packer(packer),
                                  len(self.params.side_feature_columns),
                                  [self.item_texts[i] for i in known],
                                  extras[known] if known else None)
        root = CatalogueModule(base, self.item_ids, self.item_texts,
                               self.item_vectors(model, packer), self.params.top_k)
        return root, root.signatures()

    def example_inputs(self) -> dict:
        history = np.array([["Rovers beat City in a late comeback. sports", ""],
                            ["", ""]], dtype=object)
        candidates = np.array([["Injury blow for United. sports",
                                "The easiest ramen recipe. food", ""],
                               ["Central bank holds rates. finance", "", ""]], dtype=object)
        score = {"history": history, "candidates": candidates}
        n_side = len(self.params.side_feature_columns)
        if n_side:
            score["side_features"] = np.zeros([2, n_side], np.float32)
        return {"serving_default": score, "score": score,
                "encode_items": {"item_text": candidates[0]},
                "encode_user": {"history": history}, "recommend": {"history": history}}

    def model_card_lines(self, splits: dict) -> list[str]:
        p = self.params
        lines = [f"- items: {len(self.item_ids)} from {p.items_file}; item text = "
                 f"{' + '.join(p.item_text_columns)} joined with '. '",
                 f"- model: {p.loss} loss ("
                 + (f"in-batch negatives + {p.sampled_negatives} sampled per example"
                    if p.loss == "in_batch" else f"K={p.negatives}")
                 + f"), {p.scorer} scorer, attention "
                 f"pooling over the last {p.max_history} clicks"]
        for split in SPLITS:
            imps = splits[split]
            lines.append(f"- {split}: {len(imps)} impressions from {imps.source}")
        for source, counts in self.skipped.items():
            for what, n in counts.items():
                lines.append(f"- skipped in {source}: {n} {what}")
        return lines
