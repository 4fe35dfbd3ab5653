"""The QA task's Keras pieces: the dual encoder trained with in-batch negatives, the text
encoder an export keeps, and the answer-bank projector callback."""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from tasks.qa.answer_bank import TEXT_SPEC
from tfapp.core.backbone import model_inputs
from tfapp.core.windows import call_on_texts


class DualEncoder(keras.Model):
    """Training model for retrieval: the shared encoder embeds the questions and the
    batch's distinct answers (plus hard negatives), and returns logits whose column 0 is
    each question's own answer; the other columns are the remaining candidates, with its
    own answer masked out so a repeated answer is never its own negative."""

    def __init__(self, encoder: keras.Model, temperature: float, pad_id: int, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.temperature = temperature
        self.pad_id = pad_id

    def _inputs(self, token_ids):
        return model_inputs(token_ids, tf.cast(tf.not_equal(token_ids, self.pad_id), tf.int32))

    def call(self, inputs, training=False):
        questions = self.encoder(self._inputs(inputs["question"]), training=training)
        q = tf.cast(questions["embedding"], tf.float32)
        answer_ids, negative_ids = inputs["answer"], inputs["negative"]
        width = tf.maximum(tf.shape(answer_ids)[1], tf.shape(negative_ids)[1])
        pad = lambda t: tf.pad(t, [[0, 0], [0, width - tf.shape(t)[1]]],  # noqa: E731
                               constant_values=self.pad_id)
        tokens = tf.concat([pad(answer_ids), pad(negative_ids)], axis=0)
        index = tf.concat([inputs["answer_index"], inputs["negative_index"]], axis=0)
        valid = index >= 0
        tokens, index = tf.boolean_mask(tokens, valid), tf.boolean_mask(index, valid)
        # Each distinct answer is encoded once, however many questions in the batch share it.
        unique, position = tf.unique(index)
        first = tf.math.unsorted_segment_min(tf.range(tf.size(index)), position,
                                             tf.size(unique))
        candidates = tf.gather(tokens, first)
        longest = tf.reduce_max(tf.reduce_sum(
            tf.cast(tf.not_equal(candidates, self.pad_id), tf.int32), axis=1))
        answers = self.encoder(self._inputs(candidates[:, :longest]), training=training)
        a = tf.cast(answers["embedding"], tf.float32)
        logits = tf.matmul(q, a, transpose_b=True) / self.temperature
        own = position[: tf.shape(q)[0]]  # answers come first and are all valid
        positive = tf.gather(logits, own, batch_dims=1)[:, tf.newaxis]
        others = tf.where(tf.one_hot(own, tf.size(unique)) > 0, -1e9, logits)
        return tf.concat([positive, others], axis=1)


class KerasTextEncoder(tf.Module):
    """What the export keeps of a trained model: raw text -> embedding (and intent
    probabilities), with the tokenizer inside the graph."""

    def __init__(self, model: keras.Model, packer, with_classes: bool):
        super().__init__(name="encoder")
        self.model = model
        self.tokenizer = packer.tokenizer
        self._packer = packer
        self.embed = tf.function(self._embed, input_signature=[TEXT_SPEC])
        if with_classes:
            self.class_scores = tf.function(self._class_scores, input_signature=[TEXT_SPEC])
            self.scores_and_embedding = tf.function(self._scores_and_embedding,
                                                    input_signature=[TEXT_SPEC])

    def _outputs(self, text, key):
        return call_on_texts(lambda x: self.model(x, training=False)[key], self._packer, text)

    def _embed(self, text):
        embedding = tf.cast(self._outputs(text, "embedding"), tf.float32)
        # Pooled windows: back to unit length, as every single-window embedding is.
        return tf.math.l2_normalize(embedding, axis=-1) if self._packer.window_stride \
            else embedding

    def _class_scores(self, text):
        return tf.nn.softmax(tf.cast(self._outputs(text, "intent"), tf.float32), axis=-1)

    def _scores_and_embedding(self, text):
        """(intent probabilities, unit-length embedding) from one pass through the model."""
        out = call_on_texts(lambda x: self.model(x, training=False), self._packer, text)
        embedding = tf.cast(out["embedding"], tf.float32)
        if self._packer.window_stride:
            embedding = tf.math.l2_normalize(embedding, axis=-1)
        return tf.nn.softmax(tf.cast(out["intent"], tf.float32), axis=-1), embedding


def tsv_field(text: str) -> str:
    """One TSV field: tabs, carriage returns and line breaks would split rows or columns."""
    return " ".join(text.split())


class BankProjector(keras.callbacks.Callback):
    """At the end of training, writes the answer bank's embeddings with their ids and texts
    for TensorBoard's embedding projector (logs/projector)."""

    def __init__(self, task, log_dir: Path, packer):  # task: the QATask
        super().__init__()
        self.task, self.log_dir, self.packer = task, Path(log_dir), packer

    def on_train_end(self, logs=None):
        from tensorboard.plugins import projector

        bank = self.task.bank
        embeddings = self.task.embed(self.model, bank.texts, self.packer)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "metadata.tsv").write_text(
            "id\tanswer\n" + "".join(f"{tsv_field(i)}\t{tsv_field(t)}\n"
                                     for i, t in zip(bank.ids, bank.texts)),
            encoding="utf-8")
        variable = tf.Variable(embeddings, name="answer_bank")
        tf.train.Checkpoint(embedding=variable).save(str(self.log_dir / "embedding.ckpt"))
        config = projector.ProjectorConfig()
        view = config.embeddings.add()
        view.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
        view.metadata_path = "metadata.tsv"
        projector.visualize_embeddings(str(self.log_dir), config)
