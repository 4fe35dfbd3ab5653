"""An FAQ answer bank and the SavedModel root that answers questions from it.

The bank (ids, texts and, for retrieval models, precomputed embeddings) is stored in the
SavedModel's variables, so a served model needs nothing else. `AnswerBankModule` takes any
encoder object with tf.functions `embed(text) -> [batch, dim]` (and, for intent models,
`class_scores(text) -> [batch, classes]`): the Keras model at training time, or the encoder
restored from an earlier export when `tfapp.qa_index` swaps the bank without retraining.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfapp.core.datasets import read_rows
from tfapp.core.errors import DataError

TEXT_SPEC = tf.TensorSpec([None], tf.string)


@dataclasses.dataclass
class AnswerBank:
    ids: list[str]
    texts: list[str]
    source: str

    def index(self) -> dict[str, int]:
        return {answer_id: i for i, answer_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def read_answer_bank(path, id_column: str, text_column: str, fmt: str = "auto") -> AnswerBank:
    """Reads and validates an answers file: unique, non-empty ids and non-empty texts."""
    rows = read_rows(path, [id_column, text_column], fmt)
    first_row: dict[str, int] = {}
    ids, texts = [], []
    for row, values in rows:
        answer_id = values[id_column].strip()
        if not answer_id:
            raise DataError(path, "empty answer id", row, id_column)
        if answer_id in first_row:
            raise DataError(path, f"duplicate answer id '{answer_id}' (first at row "
                                  f"{first_row[answer_id]})", row, id_column)
        if not values[text_column].strip():
            raise DataError(path, f"empty answer text for '{answer_id}'", row, text_column)
        first_row[answer_id] = row
        ids.append(answer_id)
        texts.append(values[text_column].strip())
    return AnswerBank(ids, texts, str(path))


def embed_texts(embed_fn, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Runs `embed_fn` over texts in batches; [len(texts), dim] float32."""
    parts = [np.asarray(embed_fn(tf.constant(texts[i:i + batch_size])), np.float32)
             for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts)


class AnswerBankModule(tf.Module):
    """SavedModel root: `answer(question)` returns the top-k answers with scores and a
    hand-off flag; `encode(text)` returns embeddings.

    Scores are probabilities over the whole bank: the intent head's softmax, or for
    retrieval a softmax of cosine similarity / temperature. `confidence` is the best score,
    or with a hand-off reference set (qa.handoff_score centroid / nearest) the question's
    largest cosine similarity to it. `handoff` is true when the confidence is below the
    calibrated threshold, or the best answer is the out-of-scope id.
    """

    def __init__(self, encoder, bank: AnswerBank, embeddings, threshold: float,
                 top_k: int, temperature: float, target_precision: float = 0.0,
                 out_of_scope_id: str = "", handoff_reference=None):
        super().__init__(name="answer_bank")
        self.encoder = encoder
        self.bank_ids = tf.Variable(bank.ids, trainable=False, name="bank_ids")
        self.bank_texts = tf.Variable(bank.texts, trainable=False, name="bank_texts")
        self.retrieval = embeddings is not None
        if self.retrieval:
            self.bank_embeddings = tf.Variable(np.asarray(embeddings, np.float32),
                                               trainable=False, name="bank_embeddings")
        self.threshold = tf.Variable(float(threshold), trainable=False, dtype=tf.float32,
                                     name="handoff_threshold")
        self.target_precision = tf.Variable(float(target_precision), trainable=False,
                                            dtype=tf.float32, name="target_precision")
        self.temperature = tf.Variable(float(temperature), trainable=False, dtype=tf.float32,
                                       name="temperature")
        self.top_k = tf.Variable(min(int(top_k), len(bank)), trainable=False, name="top_k")
        # "" for none; a question whose best answer is this id is handed off.
        self.out_of_scope_id = tf.Variable(out_of_scope_id, trainable=False,
                                           name="out_of_scope_id")
        self._k = min(int(top_k), len(bank))
        self.with_reference = handoff_reference is not None
        if self.with_reference:  # float16: half the size, and what calibration measured
            self.handoff_reference = tf.Variable(
                np.asarray(handoff_reference, np.float16), trainable=False,
                name="handoff_reference")

    def scores(self, question):
        """[batch, bank] probabilities over the bank."""
        if self.retrieval:
            similarity = tf.matmul(self.encoder.embed(question), self.bank_embeddings,
                                   transpose_b=True)
            return tf.nn.softmax(similarity / self.temperature, axis=-1)
        return self.encoder.class_scores(question)

    def scores_and_confidence(self, question):
        """([batch, bank] probabilities, [batch] hand-off confidence)."""
        if not self.with_reference:
            scores = self.scores(question)
            return scores, tf.reduce_max(scores, axis=-1)
        scores, embedding = self.encoder.scores_and_embedding(question)
        similarity = tf.matmul(embedding, tf.cast(self.handoff_reference, tf.float32),
                               transpose_b=True)
        return scores, tf.reduce_max(similarity, axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question")])
    def answer(self, question):
        scores, confidence = self.scores_and_confidence(question)
        top = tf.math.top_k(scores, k=self._k)
        ids = tf.gather(self.bank_ids, top.indices)
        out_of_scope = tf.logical_and(tf.strings.length(self.out_of_scope_id) > 0,
                                      tf.equal(ids[:, 0], self.out_of_scope_id))
        return {"answer_ids": ids,
                "answer_texts": tf.gather(self.bank_texts, top.indices),
                "scores": top.values, "confidence": confidence,
                "handoff": tf.logical_or(confidence < self.threshold, out_of_scope)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def encode(self, text):
        return {"embedding": self.encoder.embed(text)}

    def signatures(self) -> dict:
        return {"serving_default": self.answer, "encode": self.encode}


def example_inputs() -> dict:
    """Sample inputs per signature, for export checks and warmup requests."""
    questions = np.array(["How do I reset my password?", "My card was stolen yesterday!",
                          "Ünïcode and a very long question " + "about my account " * 100, ""],
                         dtype=object)
    return {"serving_default": {"question": questions}, "encode": {"text": questions}}


def load_exported(path: Path):
    """Loads an export written by AnswerBankModule; raises DataError if it is not one."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise DataError(path, "not a SavedModel directory (no saved_model.pb)")
    loaded = tf.saved_model.load(str(path))
    if not hasattr(loaded, "encoder") or not hasattr(loaded, "bank_ids"):
        raise DataError(path, "not a QA export (it has no answer bank)")
    return loaded
