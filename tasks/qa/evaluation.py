"""The QA task's scoring, hand-off calibration and evaluation against the whole bank (a
mixin of QATask: it uses the task's params, bank and encoder)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from tasks.qa.data import HANDOFF_ONLY, Examples
from tasks.qa.handoff import EMBEDDING_SCORES, confidence, reference_set, resolved_score
from tasks.qa.ranking import (
    calibrate_handoff,
    format_ranking,
    format_tradeoff,
    out_of_scope_metrics,
    precision_coverage,
    ranking_metrics,
    tradeoff_table,
)
from tfapp.core.datasets import texts_only_dataset
from tfapp.core.windows import predict_texts


class QAEvaluation:
    """Scores [questions, bank], the hand-off confidence, calibration and test metrics."""

    calibration: Optional[dict] = None
    _reference: Optional[tuple] = None  # (model, [references, dim]) of qa.handoff_score
    _train: Optional[Examples] = None  # the training examples the references come from

    def embed(self, model, texts: list[str], packer) -> np.ndarray:
        return self._encoded(model, texts, packer)["embedding"]

    def _encoded(self, model, texts: list[str], packer) -> dict:
        """{"embedding"[, "intent"]} for `texts`, from one pass through the encoder."""
        batch = self.config.trainer.global_batch_size
        out = dict(predict_texts(self._encoder_of(model), packer, texts, batch,
                                 texts_only_dataset))
        embedding = np.asarray(out["embedding"], np.float32)
        if packer.window_stride:  # pooled windows: back to unit length, as the export does
            embedding /= np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
        out["embedding"] = embedding
        return out

    def bank_scores(self, model, questions: list[str], packer) -> np.ndarray:
        """[questions, bank] probabilities over the whole bank, as the export computes them."""
        self._ensure_bank()
        if self.retrieval:
            q = self.embed(model, questions, packer)
            a = self.embed(model, self.bank.texts, packer)
            return tf.nn.softmax(q @ a.T / self.params.temperature, axis=-1).numpy()
        logits = predict_texts(model, packer, questions, self.config.trainer.global_batch_size,
                               texts_only_dataset)
        return tf.nn.softmax(logits, axis=-1).numpy()

    def handoff_score(self) -> str:
        """The score the threshold applies to: the calibration's (a run calibrated before
        qa.handoff_score existed was calibrated on softmax), else qa.handoff_score's."""
        if self.calibration is not None:
            return self.calibration.get("handoff_score", "softmax")
        return resolved_score(self.params)

    def handoff_reference(self, model, packer) -> Optional[np.ndarray]:
        """The reference embeddings of the hand-off score for `model` (None for softmax):
        computed from the training questions once per model."""
        score = self.handoff_score()
        if self.retrieval or score not in EMBEDDING_SCORES:
            return None
        if self._reference is None or self._reference[0] is not model:
            train = self._train if self._train is not None else self.load_splits()["train"]
            reference = reference_set(score, self.embed(model, train.questions, packer),
                                      train.answers, self._oos_index())
            self._reference = (model, reference)
        return self._reference[1]

    def scored(self, model, questions: list[str], packer) -> tuple[np.ndarray, np.ndarray]:
        """([questions, bank] probabilities, [questions] hand-off confidence)."""
        reference = self.handoff_reference(model, packer)
        if reference is None:
            scores = self.bank_scores(model, questions, packer)
            return scores, confidence(scores, None, None)
        out = self._encoded(model, questions, packer)
        scores = tf.nn.softmax(np.asarray(out["intent"], np.float32), axis=-1).numpy()
        return scores, confidence(scores, out["embedding"], reference)

    def calibrate(self, model, validation: Examples, packer) -> dict:
        scores, confidences = self.scored(model, validation.questions, packer)
        p = self.params
        oos = self._oos_index() if p.threshold_objective != "precision" else None
        result = calibrate_handoff(scores, validation.answers, oos, p.target_precision,
                                   confidences)
        reference = self.handoff_reference(model, packer)
        return {**result, "handoff_score": self.handoff_score(),
                **({"reference_size": len(reference)} if reference is not None else {}),
                "calibrated_on": validation.source}

    def set_calibration(self, calibration: dict) -> None:
        self.calibration = calibration

    def evaluate(self, model, examples: Examples, packer) -> dict:
        if len(examples) == 0:
            return {}
        scores, top = self.scored(model, examples.questions, packer)
        correct = scores.argmax(axis=1) == examples.answers
        known = examples.answers != HANDOFF_ONLY  # ranked: questions that have an answer
        out = {"ranking": ranking_metrics(scores[known], examples.answers[known],
                                          self.params.recall_ks),
               "tradeoff": tradeoff_table(top, correct)}
        if self.calibration is not None:
            out["handoff"] = precision_coverage(top, correct, self.calibration["threshold"])
        if self.params.out_of_scope_label:
            threshold = self.calibration["threshold"] if self.calibration else 0.0
            out["out_of_scope"] = out_of_scope_metrics(scores, examples.answers,
                                                       self._oos_index(), threshold, top)
        return out

    def format_metrics(self, metrics: dict) -> str:
        lines = [format_ranking(self.params.mode, metrics["ranking"])]
        if "handoff" in metrics:
            h = metrics["handoff"]
            lines.append(f"hand-off at threshold {h['threshold']:.4f} "
                         f"({self.handoff_score()}): answers {h['coverage']:.1%} of "
                         f"questions with precision {h['precision']:.4f}, hands off "
                         f"{1 - h['coverage']:.1%}")
        if "out_of_scope" in metrics:
            o = metrics["out_of_scope"]
            lines.append(f"out of scope: in-scope accuracy {o['in_scope_accuracy']:.4f}, "
                         f"out-of-scope recall {o['out_of_scope_recall']:.4f}, in-scope "
                         f"coverage {o['in_scope_coverage']:.4f} ({o['in_scope']} in scope, "
                         f"{o['out_of_scope']} out of scope)")
        lines += ["precision / coverage trade-off:", format_tradeoff(metrics["tradeoff"])]
        return "\n".join(lines)
