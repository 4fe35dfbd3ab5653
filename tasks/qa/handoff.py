"""Which confidence the hand-off threshold applies to (qa.handoff_score).

softmax   the top intent probability (retrieval: the top answer's softmax over the bank)
centroid  cosine similarity of the question's embedding to the nearest intent centroid of
          the in-scope training questions' embeddings
nearest   cosine similarity to the nearest single in-scope training question

The embedding scores are both "the largest cosine similarity to a reference set", so the
export holds one reference matrix and computes either the same way. The predicted intent
is always the classifier's; only the hand-off decision changes."""
from __future__ import annotations

from typing import Optional

import numpy as np

from tasks.qa.data import HANDOFF_ONLY, QAConfig

EMBEDDING_SCORES = ("centroid", "nearest")


def resolved_score(params: QAConfig) -> str:
    """qa.handoff_score with `auto` resolved: nearest in intent mode, softmax in retrieval."""
    if params.handoff_score != "auto":
        return params.handoff_score
    return "nearest" if params.mode == "intent" else "softmax"


def reference_set(score: str, embeddings: np.ndarray, answers: np.ndarray,
                  out_of_scope: Optional[int]) -> np.ndarray:
    """[references, dim] unit-length rows the confidence is measured against: the in-scope
    training embeddings (nearest) or their per-intent centroids (centroid). Rounded to
    float16, as the export stores them, so calibration sees the served values."""
    if score not in EMBEDDING_SCORES:
        raise ValueError(f"handoff score {score!r} has no reference set")
    answers = np.asarray(answers)
    keep = (answers != HANDOFF_ONLY) & (answers != (HANDOFF_ONLY if out_of_scope is None
                                                     else out_of_scope))
    rows, labels = np.asarray(embeddings, np.float32)[keep], answers[keep]
    if not len(rows):
        raise ValueError("no in-scope training question to measure hand-off distances to")
    if score == "centroid":
        rows = np.stack([rows[labels == c].mean(axis=0) for c in np.unique(labels)])
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    else:  # repeated training questions add nothing to a maximum
        rows = np.unique(rows.astype(np.float16), axis=0)
    return rows.astype(np.float16).astype(np.float32)


def confidence(probabilities: np.ndarray, embeddings: Optional[np.ndarray],
               reference: Optional[np.ndarray]) -> np.ndarray:
    """[questions] confidence: the top probability without a reference set, else the
    largest cosine similarity to it (computed in blocks, as big sets would not fit)."""
    if reference is None:
        return np.asarray(probabilities).max(axis=1)
    out = np.empty(len(embeddings), np.float32)
    for start in range(0, len(embeddings), 1024):
        block = np.asarray(embeddings[start:start + 1024], np.float32)
        out[start:start + 1024] = (block @ reference.T).max(axis=1)
    return out
