"""Financial sentiment: label a news sentence negative / neutral / positive, and optionally
its topic with a second head on the same backbone."""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Optional, Union

import keras
import numpy as np
import tensorflow as tf

from tfapp.core import run_layout as layout
from tfapp.core.backbone import backbone_inputs, pooled_output
from tfapp.core.datasets import read_rows, text_dataset, texts_only_dataset
from tfapp.core.errors import ConfigError, DataError
from tfapp.core.losses import classification_loss
from tfapp.core.metrics import classification_report, format_report
from tfapp.core.serving_api import CLASSIFY_METHOD, text_examples
from tfapp.core.task_callbacks import ClassificationReport
from tfapp.core.task_contract import (
    SPLITS,
    ClassLogits,
    Refittable,
    Task,
    Transferable,
    model_serving_root,
    register,
)
from tfapp.core.task_contract import Examples as BaseExamples
from tfapp.core.windows import call_on_texts, predict_texts


@dataclasses.dataclass
class SentimentConfig:
    text_column: str = "text"
    label_column: str = "label"
    # None: the sorted set of labels in the training file.
    labels: Optional[list[str]] = dataclasses.field(
        default_factory=lambda: ["negative", "neutral", "positive"])
    # Second head; set to null to train sentiment only.
    topic_column: Optional[str] = "topic"
    topic_labels: Optional[list[str]] = None  # None: from the training file
    topic_loss_weight: float = 0.5
    # None | "balanced" (inverse class frequency) | {label: weight}
    class_weights: Union[str, dict[str, float], None] = None
    head_dropout: float = 0.1
    max_misclassified_logged: int = 20

    def problems(self) -> list[str]:
        out = []
        for key, labels in (("labels", self.labels), ("topic_labels", self.topic_labels)):
            if labels is None:
                continue
            repeated = [label for label in labels if labels.count(label) > 1]
            if repeated:
                out.append(f"{key}: '{repeated[0]}' appears more than once")
            elif len(labels) < 2:
                out.append(f"{key}: {len(labels)} label(s) {labels}; a classifier needs at "
                           f"least two (null learns them from the training file)")
        cw = self.class_weights
        if isinstance(cw, str) and cw != "balanced":
            out.append(f"class_weights: expected 'balanced' or a mapping label: weight, "
                       f"got '{cw}'")
        if not 0 <= self.head_dropout < 1:
            out.append("head_dropout must be in [0, 1)")
        if self.topic_loss_weight < 0:
            out.append("topic_loss_weight must be >= 0")
        return out


@dataclasses.dataclass
class Examples(BaseExamples):
    texts: list[str]
    labels: np.ndarray  # int class ids
    topics: Optional[np.ndarray]
    source: str


@register
class SentimentTask(Task, Refittable, ClassLogits, Transferable):
    name = "sentiment"
    Config = SentimentConfig

    # --- data -------------------------------------------------------------------------
    def sample_file(self) -> Path:
        return Path(__file__).parents[1] / "samples" / "sentiment.csv"

    def _heads(self) -> list[str]:
        return ["sentiment"] + (["topic"] if self.params.topic_column else [])

    def _columns(self) -> list[str]:
        p = self.params
        return [p.text_column, p.label_column] + ([p.topic_column] if p.topic_column else [])

    def _raw(self, path) -> list[tuple[int, dict]]:
        rows = read_rows(path, self._columns(), self.config.data.format)
        p = self.params
        for row, values in rows:
            if not values[p.text_column].strip():
                raise DataError(path, "empty text", row, p.text_column)
            for column in self._columns()[1:]:
                if not values[column].strip():
                    raise DataError(path, "empty label", row, column)
        return rows

    @staticmethod
    def _encode(path, rows, column: str, vocab: list[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(vocab)}
        ids = np.empty(len(rows), np.int32)
        for k, (row, values) in enumerate(rows):
            label = values[column].strip()
            if label not in index:
                raise DataError(path, f"unknown label '{label}' (expected one of "
                                      f"{', '.join(vocab)})", row, column)
            ids[k] = index[label]
        return ids

    def _examples(self, path, rows) -> Examples:
        p = self.params
        return Examples(
            texts=[values[p.text_column] for _, values in rows],
            labels=self._encode(path, rows, p.label_column, p.labels),
            topics=(self._encode(path, rows, p.topic_column, p.topic_labels)
                    if p.topic_column else None),
            source=str(path))

    def load_splits(self) -> dict[str, Examples]:
        p, d = self.params, self.config.data
        train_path = d.train_file or str(self.sample_file())
        files = {"train": train_path, "validation": d.validation_file, "test": d.test_file}
        raw = {split: self._raw(path) for split, path in files.items() if path}
        # Label vocabularies not fixed in the config come from the training file; they are
        # written back into the config so the saved run can rebuild the same heads.
        if p.labels is None:
            p.labels = sorted({v[p.label_column].strip() for _, v in raw["train"]})
        if p.topic_column and p.topic_labels is None:
            p.topic_labels = sorted({v[p.topic_column].strip() for _, v in raw["train"]})
        for column in self._columns()[1:]:
            present = sorted({v[column].strip() for _, v in raw["train"]})
            if len(present) < 2:
                raise DataError(train_path, f"only {len(present)} distinct value(s) "
                                            f"({', '.join(present) or 'none'}) in the training "
                                            f"data; a classifier needs at least two", field=column)
        self._check_class_weights()
        examples = {split: self._examples(files[split], rows) for split, rows in raw.items()}
        return self.complete_splits(
            examples, files, stratify=lambda ex: ex.labels,
            empty=lambda: Examples([], np.zeros(0, np.int32), None, "none"))

    def read_file(self, path: str) -> Examples:
        return self._examples(path, self._raw(path))

    def _check_class_weights(self) -> None:
        cw = self.params.class_weights
        if isinstance(cw, dict):
            unknown = [k for k in cw if k not in self.params.labels]
            if unknown:
                raise ConfigError(f"sentiment.class_weights: unknown label '{unknown[0]}' "
                                  f"(labels: {', '.join(self.params.labels)})")

    def class_weight_vector(self, train: Examples) -> np.ndarray:
        """Per-class loss weights (ones unless class_weights is set)."""
        n = len(self.params.labels)
        cw = self.params.class_weights
        if cw == "balanced":
            counts = np.bincount(train.labels, minlength=n).astype(float)
            return np.where(counts > 0, len(train) / (n * np.maximum(counts, 1)), 0.0)
        if isinstance(cw, dict):
            return np.array([cw.get(label, 1.0) for label in self.params.labels], float)
        return np.ones(n)

    def combine(self, train: Examples, validation: Examples) -> Examples:
        topics = (None if train.topics is None
                  else np.concatenate([train.topics, validation.topics]))
        return Examples(train.texts + validation.texts,
                        np.concatenate([train.labels, validation.labels]), topics,
                        f"{train.source} + {validation.source}")

    def texts(self, examples: Examples) -> list[str]:
        return examples.texts

    def example_texts(self, examples: Examples) -> list[str]:
        return examples.texts

    def _targets(self, ex: Examples) -> dict:
        y = {"sentiment": np.eye(len(self.params.labels), dtype=np.float32)[ex.labels]}
        if self.params.topic_column:
            y["topic"] = np.eye(len(self.params.topic_labels), dtype=np.float32)[ex.topics]
        return y

    def dataset(self, examples: Examples, packer, batch_size: int,
                training: bool) -> tf.data.Dataset:
        weights = None
        if training:  # class weights enter as per-example loss weights on the sentiment head
            cw = self.class_weight_vector(examples)
            weights = {h: np.ones(len(examples), np.float32) for h in self._heads()}
            weights["sentiment"] = cw[examples.labels].astype(np.float32)
        d = self.config.data
        return text_dataset(examples.texts, self._targets(examples), packer, batch_size,
                            sample_weights=weights, training=training, seed=self.config.seed,
                            bucket_boundaries=d.bucket_boundaries, shuffle_buffer=d.shuffle_buffer,
                            cache=d.cache, static_shapes=d.static_shapes)

    # --- model ------------------------------------------------------------------------
    def build_model(self, loaded) -> keras.Model:
        inputs = backbone_inputs()
        pooled = pooled_output(loaded.backbone, inputs, self.config.backbone.pooling)
        pooled = keras.layers.Dropout(self.params.head_dropout, name="head_dropout")(pooled)
        sizes = {"sentiment": len(self.params.labels)}
        if self.params.topic_column:
            sizes["topic"] = len(self.params.topic_labels)
        # Logits stay float32 under mixed precision so softmax and the loss are stable.
        outputs = {head: keras.layers.Dense(n, name=head, dtype="float32")(pooled)
                   for head, n in sizes.items()}
        return keras.Model(inputs, outputs, name="sentiment_classifier")

    def compile_args(self) -> dict:
        heads = self._heads()
        return {
            "loss": {h: classification_loss(self.config.trainer.label_smoothing) for h in heads},
            "loss_weights": {h: (1.0 if h == "sentiment" else self.params.topic_loss_weight)
                             for h in heads},
            # F1Score with threshold=None takes the argmax, so logits are fine.
            "metrics": {h: [keras.metrics.CategoricalAccuracy(name="accuracy"),
                            keras.metrics.F1Score(average="macro", name="macro_f1")]
                        for h in heads},
        }

    def _key(self, head: str, metric: str) -> str:
        # Keras prefixes metric names with the output name only for multi-output models.
        return f"{head}_{metric}" if len(self._heads()) > 1 else metric

    def consistency_outputs(self) -> list:
        return self._heads()

    # --- intermediate-task transfer ---------------------------------------------------
    def transfer_columns(self) -> tuple[str, str]:
        return self.params.text_column, self.params.label_column

    def for_intermediate(self, section) -> None:
        section.labels = None
        section.topic_column = section.topic_labels = section.class_weights = None

    def class_labels(self) -> Optional[list[str]]:
        return list(self.params.labels) if self.params.labels else None

    def example_classes(self, examples) -> np.ndarray:
        return np.asarray(examples.labels)

    def monitor(self) -> tuple[str, str]:
        return "val_" + self._key("sentiment", "macro_f1"), "max"

    def summary_keys(self) -> list[str]:
        keys = ["loss", "val_loss"]
        for h in self._heads():
            keys += ["val_" + self._key(h, "accuracy"), "val_" + self._key(h, "macro_f1")]
        return keys

    def callbacks(self, run_dir: Path, validation: Examples, packer) -> list:
        batch = self.config.trainer.global_batch_size
        # Shortest first: batches of similar length pad little (the report is order-free).
        order = packer.length_order(validation.texts)
        texts = [validation.texts[i] for i in order]
        inputs = texts_only_dataset(texts, packer, batch).cache()
        label_sets = {"sentiment": (validation.labels, self.params.labels)}
        if self.params.topic_column:
            label_sets["topic"] = (validation.topics, self.params.topic_labels)
        return [ClassificationReport(layout.logs_dir(run_dir), inputs, texts, np.asarray(y)[order],
                                     labels, head, self.params.max_misclassified_logged)
                for head, (y, labels) in label_sets.items()]

    # --- evaluation and serving -------------------------------------------------------
    def evaluate(self, model: keras.Model, examples: Examples, packer) -> dict:
        if len(examples) == 0:
            return {}
        logits = predict_texts(model, packer, examples.texts,
                               self.config.trainer.global_batch_size, texts_only_dataset)
        out = {"sentiment": classification_report(
            examples.labels, logits["sentiment"].argmax(axis=1), self.params.labels)}
        if self.params.topic_column:
            out["topic"] = classification_report(
                examples.topics, logits["topic"].argmax(axis=1), self.params.topic_labels)
        return out

    def format_metrics(self, metrics: dict) -> str:
        return "\n".join(format_report(head, report) for head, report in metrics.items())

    def serving_root(self, model, packer):
        return model_serving_root(model, packer, self.serving_signatures)

    def serving_signatures(self, model: keras.Model, packer) -> dict:
        heads = {"sentiment": self.params.labels}
        if self.params.topic_column:
            heads["topic"] = self.params.topic_labels

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            logits = call_on_texts(lambda x: model(x, training=False), packer, text)
            out = {}
            for head, labels in heads.items():
                prefix = "" if head == "sentiment" else f"{head}_"
                probs = tf.nn.softmax(tf.cast(logits[head], tf.float32), axis=-1)
                names = tf.constant(labels)
                out[f"{prefix}probabilities"] = probs
                out[f"{prefix}label"] = tf.gather(names, tf.argmax(probs, axis=-1))
                out[f"{prefix}score"] = tf.reduce_max(probs, axis=-1)
                # Class names per row, so row-format (instances) clients can read them.
                out[f"{prefix}classes"] = tf.tile(names[tf.newaxis], [tf.shape(text)[0], 1])
            return out

        text_column = self.params.text_column

        # TF Serving's Classify API: serialized tf.Example in (text under the configured
        # text column), `classes` and `scores` out.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(inputs):
            features = tf.io.parse_example(
                inputs, {text_column: tf.io.FixedLenFeature([], tf.string)})
            out = serve(features[text_column])
            return {"classes": out["classes"], "scores": out["probabilities"]}

        return {"serving_default": serve, "classify": classify}

    def signature_methods(self) -> dict:
        return {"classify": CLASSIFY_METHOD}

    def example_inputs(self) -> dict:
        texts = [
            "Shares of Northwind Bank jumped 9% after earnings beat estimates.",
            "The central bank left interest rates unchanged, as expected.",
            "Helix Pharma cut its full-year revenue guidance after sales fell 12%.",
            "Ünïcode and a very long sentence " + "about markets " * 200,
        ]
        return {"serving_default": {"text": np.array(texts, dtype=object)},
                "classify": {"inputs": text_examples(texts, self.params.text_column)}}

    def model_card_lines(self, splits: dict) -> list[str]:
        lines = [f"- labels: {', '.join(self.params.labels)}"]
        if self.params.topic_column:
            lines.append(f"- topic labels: {', '.join(self.params.topic_labels)}")
        for split in SPLITS:
            ex = splits[split]
            counts = Counter(self.params.labels[i] for i in ex.labels)
            lines.append(f"- {split}: {len(ex)} examples from {ex.source} "
                         f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")
        return lines
