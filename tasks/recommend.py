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

import dataclasses
import re
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

import tasks
from tasks.base import Task
from tfapp.backbone import backbone_inputs, pooled_output
from tfapp.callbacks import EpochMetrics
from tfapp.data import read_rows, seeded_split, texts_only_dataset
from tfapp.errors import ConfigError, DataError
from tfapp.trainer import say

SPLITS = ("train", "validation", "test")
SAMPLES = Path(__file__).parent / "samples"
CANDIDATE = re.compile(r"^(\S+)-([01])$")
BAD_ID_CHARS = re.compile(r"[,;|]")


@dataclasses.dataclass
class RecommendConfig:
    # Items: None with the built-in sample (tasks/samples/recommend_items.tsv).
    items_file: Optional[str] = None
    item_id_column: str = "item_id"
    # Joined with ". " (empty values skipped) into the text the model reads. Serving
    # clients send item text composed the same way.
    item_text_columns: list[str] = dataclasses.field(
        default_factory=lambda: ["title", "category", "body"])
    item_max_length: int = 48  # word pieces per item text
    # Impressions (data.train_file etc.): MIND shape.
    impression_id_column: str = "impression_id"
    user_column: str = "user_id"
    history_column: str = "history"  # space-separated clicked item ids, oldest first
    candidates_column: str = "impressions"  # space-separated ITEM-1 / ITEM-0
    side_feature_columns: list[str] = dataclasses.field(default_factory=list)  # numeric
    unknown_items: str = "skip"  # skip (drop the reference, count, report) | fail
    no_click_impressions: str = "skip"  # skip (count, report) | fail
    max_history: int = 20
    loss: str = "listwise"  # listwise (1 clicked vs K non-clicked, softmax) | pointwise (BCE)
    negatives: int = 4  # K
    scorer: str = "dot"  # dot | mlp
    mlp_units: int = 128
    embedding_dim: int = 256
    attention_units: int = 128
    head_dropout: float = 0.1
    ndcg_ks: list[int] = dataclasses.field(default_factory=lambda: [5, 10])


@dataclasses.dataclass
class Impressions:
    ids: list[str]
    history: list[list[int]]  # item indices, the last max_history clicks
    candidates: list[list[int]]
    clicks: list[list[int]]
    side: np.ndarray  # [n, features] float32
    source: str

    def subset(self, idx, source: str) -> "Impressions":
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Impressions(pick(self.ids), pick(self.history), pick(self.candidates),
                           pick(self.clicks), self.side[idx], source)

    def __len__(self) -> int:
        return len(self.ids)


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
                 **kwargs):
        super().__init__(**kwargs)
        self.item_encoder = item_encoder
        # float32 on top of a mixed-precision encoder: attention softmax and scores.
        self.user_pooling = AttentionPooling(cfg.attention_units, name="user_attention",
                                             dtype="float32")
        self.scorer = Scorer(cfg.scorer, cfg.mlp_units, len(cfg.side_feature_columns),
                             name="scorer", dtype="float32")
        self.pad_id = pad_id

    def encode_tokens(self, token_ids, training=False):
        mask = tf.cast(tf.not_equal(token_ids, self.pad_id), tf.int32)
        out = self.item_encoder({"token_ids": token_ids, "padding_mask": mask,
                                 "segment_ids": tf.zeros_like(token_ids)}, training=training)
        return tf.cast(out, tf.float32)

    def score_vectors(self, history, history_mask, candidates, side):
        user = self.user_pooling(history, history_mask)
        return self.scorer(user, candidates, side)

    def call(self, inputs, training=False):
        h_ids, c_ids = inputs["history_index"], inputs["candidate_index"]
        h_tok, c_tok = inputs["history_tokens"], inputs["candidate_tokens"]
        batch, n_hist, n_cand = tf.shape(h_ids)[0], tf.shape(h_ids)[1], tf.shape(c_ids)[1]
        width = tf.maximum(tf.shape(h_tok)[2], tf.shape(c_tok)[2])
        flat = lambda t: tf.reshape(  # noqa: E731
            tf.pad(t, [[0, 0], [0, 0], [0, width - tf.shape(t)[2]]],
                   constant_values=self.pad_id), [-1, width])
        tokens = tf.concat([flat(h_tok), flat(c_tok)], axis=0)
        index = tf.concat([tf.reshape(h_ids, [-1]), tf.reshape(c_ids, [-1])], axis=0)
        valid = index >= 0
        # Every distinct item in the batch is encoded once, for histories and candidates.
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
        per_slot = tf.gather(vectors, slot)  # invalid slots read item 0; masked below
        dim = tf.shape(vectors)[1]
        split = batch * n_hist
        history = tf.reshape(per_slot[:split], [batch, n_hist, dim])
        candidates = tf.reshape(per_slot[split:], [batch, n_cand, dim])
        return self.score_vectors(history, h_ids >= 0, candidates, inputs["side"])


class ServingRecommender(tf.Module):
    """Export root: raw item texts in, vectors and scores out; needs no Python
    pre-processing. Empty strings pad histories and candidate lists."""

    def __init__(self, model: RecommendModel, packer, n_side: int):
        super().__init__(name="recommender")
        self.model = model
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
        self.score = tf.function(self._score, input_signature=[
            tf.TensorSpec(text_2d.shape, tf.string, "history"),
            tf.TensorSpec(text_2d.shape, tf.string, "candidates"), *side])

    def _vectors(self, texts):
        """[n] texts -> [n, dim], each distinct text encoded once."""
        unique, position = tf.unique(texts)
        vectors = self.model.encode_tokens(self._packer(unique)["token_ids"])
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


@tasks.register
class RecommendTask(Task):
    name = "recommend"
    Config = RecommendConfig

    def __init__(self, config):
        super().__init__(config)
        self.item_ids: list[str] = []
        self.item_texts: list[str] = []
        self.skipped: dict[str, list] = {}
        p = self.params
        checks = [
            (p.unknown_items in ("skip", "fail"), "recommend.unknown_items must be skip or fail"),
            (p.no_click_impressions in ("skip", "fail"),
             "recommend.no_click_impressions must be skip or fail"),
            (p.loss in ("listwise", "pointwise"), "recommend.loss must be listwise or pointwise"),
            (p.scorer in ("dot", "mlp"), "recommend.scorer must be dot or mlp"),
            (p.negatives >= 1, "recommend.negatives must be >= 1"),
            (p.max_history >= 1, "recommend.max_history must be >= 1"),
            (p.item_max_length >= 8, "recommend.item_max_length must be >= 8"),
            (bool(p.item_text_columns), "recommend.item_text_columns must name a column"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    # --- data -------------------------------------------------------------------------
    def sample_file(self) -> Path:
        return SAMPLES / "recommend_impressions.tsv"

    def _load_items(self) -> None:
        p = self.params
        if p.items_file is None and self.config.data.train_file is None:
            p.items_file = str(SAMPLES / "recommend_items.tsv")
        if p.items_file is None:
            raise ConfigError("recommend.items_file is required with your own impressions")
        rows = read_rows(p.items_file, [p.item_id_column, *p.item_text_columns],
                         self.config.data.format)
        first: dict[str, int] = {}
        self.item_ids, self.item_texts = [], []
        for row, values in rows:
            item_id = values[p.item_id_column].strip()
            if not item_id:
                raise DataError(p.items_file, "empty item id", row, p.item_id_column)
            if item_id in first:
                raise DataError(p.items_file, f"duplicate item id '{item_id}' (first at row "
                                              f"{first[item_id]})", row, p.item_id_column)
            text = item_text(values, p.item_text_columns)
            if not text:
                raise DataError(p.items_file, f"item '{item_id}' has no text",
                                row, p.item_text_columns[0])
            first[item_id] = row
            self.item_ids.append(item_id)
            self.item_texts.append(text)

    def _reference(self, path, row, field, item_id, index, counts) -> Optional[int]:
        if BAD_ID_CHARS.search(item_id):
            raise DataError(path, f"malformed item reference '{item_id}' (ids are separated "
                                  f"by spaces)", row, field)
        if item_id in index:
            return index[item_id]
        if self.params.unknown_items == "fail":
            raise DataError(path, f"unknown item id '{item_id}' (not in "
                                  f"{self.params.items_file})", row, field)
        counts.setdefault("unknown item references", []).append((row, field, item_id))
        return None

    def _read_impressions(self, path) -> Impressions:
        p = self.params
        columns = [p.impression_id_column, p.user_column, p.history_column,
                   p.candidates_column, *p.side_feature_columns]
        rows = read_rows(path, columns, self.config.data.format)
        index = {item_id: i for i, item_id in enumerate(self.item_ids)}
        skipped: dict[str, list] = {}
        out = Impressions([], [], [], [], np.zeros([0, len(p.side_feature_columns)],
                                                   np.float32), str(path))
        side_rows = []
        for row, values in rows:
            history = []
            for item_id in values[p.history_column].split():
                k = self._reference(path, row, p.history_column, item_id, index, skipped)
                if k is not None:
                    history.append(k)
            candidates, clicks = [], []
            for token in values[p.candidates_column].split():
                match = CANDIDATE.match(token)
                if not match:
                    raise DataError(path, f"malformed candidate '{token}' (expected ITEM-1 "
                                          f"or ITEM-0)", row, p.candidates_column)
                k = self._reference(path, row, p.candidates_column, match[1], index, skipped)
                if k is not None:
                    candidates.append(k)
                    clicks.append(int(match[2]))
            side = []
            for column in p.side_feature_columns:
                try:
                    side.append(float(values[column]))
                except ValueError:
                    raise DataError(path, f"not a number: '{values[column]}'", row,
                                    column) from None
            if not candidates:
                skipped.setdefault("impressions without candidates", []).append(
                    (row, p.candidates_column, ""))
                continue
            if not any(clicks):
                if p.no_click_impressions == "fail":
                    raise DataError(path, "no clicked candidate (expected at least one "
                                          "ITEM-1)", row, p.candidates_column)
                skipped.setdefault("impressions without a click", []).append(
                    (row, p.candidates_column, ""))
                continue
            out.ids.append(values[p.impression_id_column])
            out.history.append(history[-p.max_history:])
            out.candidates.append(candidates)
            out.clicks.append(clicks)
            side_rows.append(side)
        if side_rows:
            out.side = np.array(side_rows, np.float32).reshape(len(side_rows), -1)
        for what, where in skipped.items():
            row, field, value = where[0]
            say(f"{path}: skipped {len(where)} {what} (first: row {row}, field '{field}'"
                + (f", '{value}')" if value else ")"))
        self.skipped[str(path)] = {what: len(where) for what, where in skipped.items()}
        if not out.ids:
            raise DataError(path, "no usable impressions (each needs a clicked candidate)")
        return out

    def load_splits(self) -> dict[str, Impressions]:
        self._load_items()
        d = self.config.data
        files = {"train": d.train_file or str(self.sample_file()),
                 "validation": d.validation_file, "test": d.test_file}
        data = {s: self._read_impressions(path) for s, path in files.items() if path}
        fractions = [0.0 if (s != "train" and files[s]) else f for s, f in zip(SPLITS, d.split)]
        if sum(fractions[1:]) > 0:
            total = sum(fractions)
            full = data["train"]
            # Split by impression; stratify by nothing (keys all equal), seeded.
            parts = seeded_split([0] * len(full), [f / total for f in fractions],
                                 self.config.seed)
            for split, idx in zip(SPLITS, parts):
                if split == "train" or not files[split]:
                    data[split] = full.subset(idx, f"{full.source} ({split} split)")
        for split in SPLITS:
            data.setdefault(split, Impressions([], [], [], [], np.zeros(
                [0, len(self.params.side_feature_columns)], np.float32), "none"))
        if len(data["validation"]) == 0:
            raise ConfigError("no validation impressions: set data.validation_file or give "
                              "the validation split a non-zero fraction in data.split")
        return data

    def read_file(self, path: str) -> Impressions:
        if not self.item_ids:
            self._load_items()
        return self._read_impressions(path)

    def texts(self, examples: Impressions) -> list[str]:
        """The distinct item texts this split refers to."""
        used = sorted({i for rows in (examples.history, examples.candidates)
                       for row in rows for i in row})
        return [self.item_texts[i] for i in used]

    def text_packer(self, packer):
        return self._item_packer(packer)

    def _item_packer(self, packer):
        from tfapp.backbone import TextPacker

        return TextPacker(packer.tokenizer, min(self.params.item_max_length,
                                                packer.max_seq_length))

    def training_size(self, imps: Impressions) -> int:
        if self.params.loss == "pointwise":
            return sum(len(c) for c in imps.candidates)
        # One example per click, in impressions that also have a non-click to contrast.
        return sum(sum(c) for c in imps.clicks if sum(c) < len(c))

    def dataset(self, examples: Impressions, packer, batch_size: int,
                training: bool) -> tf.data.Dataset:
        p = self.params
        item_tokens = self._item_packer(packer).ragged_ids(tf.constant(self.item_texts))
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

    # --- model ------------------------------------------------------------------------
    def build_model(self, loaded) -> keras.Model:
        if not self.item_ids:
            self._load_items()
        inputs = backbone_inputs()
        pooled = pooled_output(loaded.backbone, inputs, self.config.backbone.pooling)
        pooled = keras.layers.Dropout(self.params.head_dropout, name="head_dropout")(pooled)
        vector = keras.layers.Dense(self.params.embedding_dim, name="item_projection",
                                    dtype="float32")(pooled)
        encoder = keras.Model(inputs, vector, name="item_encoder")
        model = RecommendModel(encoder, self.params, loaded.tokenizer.token_to_id("[PAD]"),
                               name="recommender")
        ids = tf.constant([[[1, 2, 3]]], tf.int32)
        model({"history_index": tf.constant([[0]]), "history_tokens": ids,
               "candidate_index": tf.constant([[1]]), "candidate_tokens": ids,
               "side": tf.zeros([1, len(self.params.side_feature_columns)])})
        return model

    def compile_args(self) -> dict:
        if self.params.loss == "pointwise":
            return {"loss": keras.losses.BinaryCrossentropy(from_logits=True),
                    "metrics": [keras.metrics.AUC(from_logits=True, name="pointwise_auc")]}
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name="listwise_accuracy")]}

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
        return [EpochMetrics(lambda model: self.impression_logs(model, validation, packer))]

    # --- evaluation -------------------------------------------------------------------
    def item_vectors(self, model: RecommendModel, packer) -> np.ndarray:
        """[items, dim]: every catalogue item encoded once."""
        ds = texts_only_dataset(self.item_texts, self._item_packer(packer),
                                self.config.train.global_batch_size)
        return np.asarray(model.item_encoder.predict(ds, verbose=0), np.float32)

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
        from tfapp.ranking import impression_metrics

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
        return self.impression_report(model, examples, packer)

    def format_metrics(self, metrics: dict) -> str:
        ndcg = "  ".join(f"nDCG@{k} {metrics[f'ndcg@{k}']:.4f}" for k in self.params.ndcg_ks)
        return (f"recommend: AUC {metrics['auc']:.4f}  MRR {metrics['mrr']:.4f}  {ndcg}  "
                f"({metrics['impressions']} impressions, {metrics['candidates']} candidates)")

    # --- serving ----------------------------------------------------------------------
    def serving_root(self, model, packer):
        root = ServingRecommender(model, self._item_packer(packer),
                                  len(self.params.side_feature_columns))
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
                "encode_user": {"history": history}}

    def model_card_lines(self, splits: dict) -> list[str]:
        p = self.params
        lines = [f"- items: {len(self.item_ids)} from {p.items_file}; item text = "
                 f"{' + '.join(p.item_text_columns)} joined with '. '",
                 f"- model: {p.loss} loss (K={p.negatives}), {p.scorer} scorer, attention "
                 f"pooling over the last {p.max_history} clicks"]
        for split in SPLITS:
            imps = splits[split]
            lines.append(f"- {split}: {len(imps)} impressions from {imps.source}")
        for source, counts in self.skipped.items():
            for what, n in counts.items():
                lines.append(f"- skipped in {source}: {n} {what}")
        return lines


def item_text(values: dict, columns: list[str]) -> str:
    """The text the model reads for an item: the columns' non-empty values joined by '. '."""
    parts = [values[c].strip().rstrip(".") for c in columns if values[c].strip()]
    return ". ".join(parts)
