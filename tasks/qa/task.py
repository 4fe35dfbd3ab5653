"""Customer-service QA: answer a customer's question from an FAQ bank, or hand off to a human.

Two modes on the shared backbone (qa.mode):
  retrieval  a dual encoder: question and answer texts go through the same backbone, are
             pooled, projected and L2-normalised, and trained with in-batch negatives
             (softmax over the batch's distinct answers at a temperature), optionally with
             hard negatives from the data. The bank can be replaced after training
             (python -m tfapp.qa_index) because answers are embedded, not classified.
  intent     a classification head over N intents / answer templates.

Both are evaluated against the whole bank (top-1, recall@k, MRR), and both calibrate a
hand-off threshold on validation data to reach a target precision.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tasks.qa.answer_bank import (
    AnswerBank,
    AnswerBankModule,
    embed_texts,
    example_inputs,
    read_answer_bank,
)
from tasks.qa.data import HANDOFF_ONLY, Examples, QAConfig, in_scope, read_examples
from tasks.qa.evaluation import QAEvaluation
from tasks.qa.model import BankProjector, DualEncoder, KerasTextEncoder
from tasks.qa.ranking import describe_calibration, ranking_metrics
from tfapp.core import run_layout as layout
from tfapp.core.backbone import backbone_inputs, pooled_output
from tfapp.core.datasets import read_rows, text_dataset
from tfapp.core.errors import ConfigError, DataError
from tfapp.core.log import say
from tfapp.core.losses import sparse_classification_loss
from tfapp.core.task_callbacks import EpochMetrics
from tfapp.core.task_contract import (
    SPLITS,
    Calibrated,
    ClassLogits,
    Task,
    Transferable,
    register,
)

SAMPLES = Path(__file__).parents[1] / "samples"


@register
class QATask(QAEvaluation, Task, Calibrated, ClassLogits, Transferable):
    name = "qa"
    Config = QAConfig

    def __init__(self, config):
        super().__init__(config)
        self.bank: Optional[AnswerBank] = None
        self.calibration: Optional[dict] = None
        self._train: Optional[Examples] = None

    @property
    def retrieval(self) -> bool:
        return self.params.mode == "retrieval"

    # --- data -------------------------------------------------------------------------
    def sample_file(self) -> Path:
        return SAMPLES / "qa_train.csv"

    def _files(self) -> dict[str, Optional[str]]:
        d = self.config.data
        if d.train_file is None:  # the built-in sample has its own held-out paraphrases
            return {split: getattr(d, f"{split}_file") or str(SAMPLES / f"qa_{split}.csv")
                    for split in SPLITS}
        return {"train": d.train_file, "validation": d.validation_file, "test": d.test_file}

    def _load_bank(self) -> Optional[AnswerBank]:
        """Reads the answers file (resolving the sample's) into self.bank; None in intent
        mode without one."""
        p = self.params
        if p.answers_file is None and self.config.data.train_file is None:
            p.answers_file = str(SAMPLES / "qa_answers.csv")
        if p.answers_file is None:
            if self.retrieval:
                raise ConfigError("qa.answers_file is required in retrieval mode (a file "
                                  "with columns qa.answers_id_column, qa.answers_text_column)")
            return None
        return read_answer_bank(p.answers_file, p.answers_id_column, p.answers_text_column,
                                self.config.data.format)

    def _columns(self) -> list[str]:
        p = self.params
        return [p.question_column, p.answer_id_column] + (
            [p.hard_negatives_column] if p.hard_negatives_column else [])

    def _handoff_only(self, index: dict[str, int]) -> bool:
        """qa.out_of_scope_label names no class or answer (a support bot's training data
        usually has no out-of-scope rows): its questions exist only in evaluation data and
        are handed off by the threshold alone."""
        oos = self.params.out_of_scope_label
        return oos is not None and oos not in index

    def _oos_index(self) -> Optional[int]:
        """The out-of-scope answer index: a class, HANDOFF_ONLY, or None (no label)."""
        oos = self.params.out_of_scope_label
        if oos is None:
            return None
        return self.bank.index().get(oos, HANDOFF_ONLY)

    def _examples(self, path, rows, index: dict[str, int], known: str,
                  evaluation: bool = True) -> Examples:
        return read_examples(path, rows, self.params, index, known,
                             handoff_only=evaluation and self._handoff_only(index))

    def _resolve_bank(self, train_rows) -> tuple[dict[str, int], str]:
        """Sets self.bank (the candidates answers are ranked against) and, in intent mode,
        the intent list; returns (id -> index, a description for errors)."""
        p = self.params
        bank = self._load_bank()
        if self.retrieval:
            self.bank = bank
            return bank.index(), f"the answers file {bank.source}"
        if p.intents is None:
            p.intents = list(bank.ids) if bank else sorted(
                {v[p.answer_id_column].strip() for _, v in train_rows})
        texts = dict(zip(bank.ids, bank.texts)) if bank else {}
        missing = [i for i in p.intents if bank and i not in texts]
        if missing:
            raise DataError(bank.source, f"intent '{missing[0]}' has no answer text (every "
                                         f"intent needs a row)", field=p.answers_id_column)
        self.bank = AnswerBank(list(p.intents), [texts.get(i, i) for i in p.intents],
                               bank.source if bank else "intent names")
        known = f"the answers file {bank.source}" if bank else "qa.intents"
        return self.bank.index(), known

    def load_splits(self) -> dict[str, Examples]:
        files = self._files()
        raw = {s: read_rows(path, self._columns(), self.config.data.format)
               for s, path in files.items() if path}
        index, known = self._resolve_bank(raw["train"])
        oos = self.params.out_of_scope_label
        examples = {s: self._examples(files[s], rows, index, known, evaluation=s != "train")
                    for s, rows in raw.items()}
        if self._handoff_only(index):
            if not any((ex.answers == HANDOFF_ONLY).any() for ex in examples.values()):
                raise ConfigError(f"qa.out_of_scope_label '{oos}' is not one of the {known}'s "
                                  f"answer ids, and no validation or test question has it")
            say(f"qa.out_of_scope_label '{oos}' is not one of the {known}'s answer ids: "
                f"'{oos}' questions in validation and test are handed off by the threshold "
                f"alone, calibrated on validation's in-scope and '{oos}' questions")
        splits = self.complete_splits(
            examples, files, stratify=lambda ex: ex.answers,
            empty=lambda: Examples([], np.zeros(0, np.int32), [], "none"),
            why_validation=" (the hand-off threshold is calibrated on it)")
        if self.params.threshold_objective == "balanced":
            # Checked before training, not when calibrating after it.
            validation = splits["validation"]
            out_of_scope = validation.answers == index.get(oos, HANDOFF_ONLY)
            if not out_of_scope.any() or out_of_scope.all():
                raise DataError(validation.source, f"qa.threshold_objective=balanced needs "
                                f"both in-scope and '{oos}' questions in validation")
        self._train = splits["train"]  # the hand-off's reference questions (qa.handoff_score)
        return splits

    def _ensure_bank(self) -> None:
        if self.bank is None:  # a restored run: rebuild the bank from its saved config
            self._resolve_bank([])

    def read_file(self, path: str) -> Examples:
        self._ensure_bank()
        rows = read_rows(path, self._columns(), self.config.data.format)
        known = "the answer bank " + self.bank.source
        return self._examples(path, rows, self.bank.index(), known)

    def texts(self, examples: Examples) -> list[str]:
        return examples.questions

    def example_texts(self, examples: Examples) -> list[str]:
        return examples.questions

    def dataset(self, examples: Examples, packer, batch_size: int,
                training: bool) -> tf.data.Dataset:
        d = self.config.data
        examples = in_scope(examples)  # hand-off-only questions have no class to learn
        if not self.retrieval:
            return text_dataset(examples.questions, examples.answers, packer, batch_size,
                                training=training, seed=self.config.seed,
                                bucket_boundaries=d.bucket_boundaries,
                                shuffle_buffer=d.shuffle_buffer, cache=d.cache,
                                static_shapes=d.static_shapes)
        return self._pair_dataset(examples, packer, batch_size, training)

    def _pair_dataset(self, examples: Examples, packer, batch_size: int,
                      training: bool) -> tf.data.Dataset:
        """(question, answer, sampled hard negative) token ids per row; targets are zeros
        because DualEncoder puts each question's own answer in logit column 0."""
        bank_tokens = packer.ragged_ids(tf.constant(self.bank.texts))
        negatives = tf.ragged.constant(examples.negatives, dtype=tf.int32, ragged_rank=1) \
            if any(examples.negatives) else tf.RaggedTensor.from_row_lengths(
                tf.zeros([0], tf.int32), tf.zeros([len(examples)], tf.int64))
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(examples.questions), examples.answers, negatives))
        seed = self.config.seed

        def tokenize(questions, answers, negs):
            q = packer.ragged_ids(questions)
            return q.to_tensor(packer.pad_id), q.row_lengths(), answers, negs

        ds = ds.batch(256).map(tokenize).unbatch()
        if self.config.data.cache:
            ds = ds.cache()
        if training:
            ds = ds.shuffle(min(self.config.data.shuffle_buffer, max(len(examples), 1)),
                            seed=seed, reshuffle_each_iteration=True)

        def pick(q, n, answer, negs):
            count = tf.size(negs)
            choice = tf.random.uniform([], 0, tf.maximum(count, 1), tf.int32)
            negative = tf.cond(count > 0, lambda: negs[choice], lambda: tf.constant(-1))
            neg_tokens = tf.cond(negative >= 0, lambda: bank_tokens[tf.maximum(negative, 0)],
                                 lambda: tf.zeros([0], tf.int32))
            return ({"question": q[:n], "answer": bank_tokens[answer], "answer_index": answer,
                     "negative": neg_tokens, "negative_index": negative}, tf.constant(0))

        ds = ds.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
        pad = packer.pad_id
        ds = ds.padded_batch(batch_size, padding_values=(
            {"question": pad, "answer": pad, "answer_index": 0, "negative": pad,
             "negative_index": 0}, 0))
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(examples) // batch_size)))
        return ds.prefetch(tf.data.AUTOTUNE)

    # --- model ------------------------------------------------------------------------
    def _encoder(self, loaded) -> keras.Model:
        inputs = backbone_inputs()
        pooled = pooled_output(loaded.backbone, inputs, self.config.backbone.pooling)
        pooled = keras.layers.Dropout(self.params.head_dropout, name="head_dropout")(pooled)
        if self.retrieval:
            projected = keras.layers.Dense(self.params.embedding_dim, name="projection",
                                           dtype="float32")(pooled)
            embedding = keras.layers.UnitNormalization(name="embedding", dtype="float32")(
                projected)
            return keras.Model(inputs, {"embedding": embedding}, name="qa_encoder")
        logits = keras.layers.Dense(len(self.params.intents), name="intent",
                                    dtype="float32")(pooled)
        embedding = keras.layers.UnitNormalization(name="embedding", dtype="float32")(pooled)
        return keras.Model(inputs, {"intent": logits, "embedding": embedding},
                           name="qa_intent_encoder")

    def build_model(self, loaded) -> keras.Model:
        self._ensure_bank()
        encoder = self._encoder(loaded)
        if not self.retrieval:
            return keras.Model(encoder.input, encoder.output["intent"], name="qa_intent")
        pad_id = loaded.tokenizer.token_to_id("[PAD]")
        model = DualEncoder(encoder, self.params.temperature, pad_id, name="qa_dual_encoder")
        # Build the variables now, so weights can be loaded into a restored run.
        ids = tf.constant([[1, 2, 3]], tf.int32)
        model({"question": ids, "answer": ids, "answer_index": tf.constant([0]),
               "negative": ids, "negative_index": tf.constant([-1])})
        return model

    def _encoder_of(self, model: keras.Model) -> keras.Model:
        """The text -> {embedding[, intent]} model inside a training model."""
        if self.retrieval:
            return model.encoder
        return keras.Model(model.input, {"intent": model.output,
                                          "embedding": self._intent_embedding(model)},
                           name="qa_intent_encoder")

    @staticmethod
    def _intent_embedding(model: keras.Model):
        """The unit-length question embedding under the intent head; for a model that
        averages several intent models (levers.ensemble), the unit-length mean of theirs."""
        if "head_dropout" in [layer.name for layer in model.layers]:
            return keras.layers.UnitNormalization(name="embedding", dtype="float32")(
                model.get_layer("head_dropout").output)
        inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        parts = [keras.Model(m.input, keras.layers.UnitNormalization(dtype="float32")(
            m.get_layer("head_dropout").output))(model.input) for m in inner]
        return keras.layers.UnitNormalization(name="embedding", dtype="float32")(
            keras.layers.Average(dtype="float32")(parts))

    def compile_args(self) -> dict:
        name = "in_batch_accuracy" if self.retrieval else "accuracy"
        return {"loss": sparse_classification_loss(self.config.trainer.label_smoothing),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name=name)]}

    def transfer_columns(self) -> tuple[str, str]:
        return self.params.question_column, self.params.answer_id_column

    def for_intermediate(self, section) -> None:
        # An intent classifier on the file's intents (out-of-scope rows, if any, are one);
        # a retrieval run keeps only the backbone it tuned.
        section.intents = section.out_of_scope_label = section.hard_negatives_column = None
        section.mode, section.answers_file = "intent", None

    def class_labels(self) -> Optional[list[str]]:
        return None if self.retrieval or self.bank is None else list(self.bank.ids)

    def example_classes(self, examples) -> np.ndarray:
        return np.asarray(examples.answers)

    def consistency_outputs(self) -> list:
        return [] if self.retrieval else [None]  # in-batch softmax: no fixed classes

    def monitor(self) -> tuple[str, str]:
        return "val_mrr", "max"

    def summary_keys(self) -> list[str]:
        ks = [f"val_recall_at_{k}" for k in self.params.recall_ks if k in (1, 5)]
        return ["loss", "val_loss", "val_top1_accuracy", *ks, "val_mrr"]

    def bank_logs(self, model, validation: Examples, packer) -> dict:
        """Whole-bank validation metrics as epoch-log entries (val_top1_accuracy,
        val_recall_at_K, val_mrr)."""
        validation = in_scope(validation)
        scores = self.bank_scores(model, validation.questions, packer)
        metrics = ranking_metrics(scores, validation.answers, self.params.recall_ks)
        logs = {"val_top1_accuracy": metrics["top1_accuracy"], "val_mrr": metrics["mrr"]}
        logs.update({f"val_recall_at_{k}": metrics[f"recall@{k}"]
                     for k in self.params.recall_ks})
        return logs

    def callbacks(self, run_dir: Path, validation: Examples, packer) -> list:
        out = [EpochMetrics(lambda model: self.bank_logs(model, validation, packer))]
        if self.retrieval:
            out.append(BankProjector(self, layout.logs_dir(run_dir, "projector"), packer))
        return out

    # --- serving ----------------------------------------------------------------------
    def serving_root(self, model, packer):
        self._ensure_bank()
        encoder = KerasTextEncoder(self._encoder_of(model), packer,
                                   with_classes=not self.retrieval)
        embeddings = (embed_texts(encoder.embed, self.bank.texts)
                      if self.retrieval else None)
        threshold = self.calibration["threshold"] if self.calibration else 0.0
        root = AnswerBankModule(encoder, self.bank, embeddings, threshold, self.params.top_k,
                                self.params.temperature, self.params.target_precision,
                                self.params.out_of_scope_label or "",
                                self.handoff_reference(model, packer))
        return root, root.signatures()

    def example_inputs(self) -> dict:
        return example_inputs()

    def model_card_lines(self, splits: dict) -> list[str]:
        p = self.params
        lines = [f"- mode: {p.mode}" + (f" (embedding {p.embedding_dim}, temperature "
                                         f"{p.temperature})" if self.retrieval else ""),
                 f"- answer bank: {len(self.bank)} answers from {self.bank.source}"]
        if self.calibration:
            lines.append("- " + describe_calibration(self.calibration))
        for split in SPLITS:
            ex = splits[split]
            lines.append(f"- {split}: {len(ex)} questions from {ex.source}, "
                         f"{len(set(ex.answers.tolist()))} distinct answers")
        return lines
