"""Whole-bank ranking metrics and hand-off threshold calibration.

Ranks are computed against every candidate in the bank, never only a batch. Ties count
against the true candidate (pessimistic rank), so a model that scores everything equally
gets chance-level numbers, not perfect ones.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_KS = (1, 3, 5, 10)


def true_ranks(scores: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true candidate: 1 + candidates scoring at least as high
    (other than itself). scores: [queries, bank]; true_index: [queries]."""
    scores = np.asarray(scores, np.float64)
    true_index = np.asarray(true_index, np.int64)
    true_scores = scores[np.arange(len(scores)), true_index][:, None]
    return (scores >= true_scores).sum(axis=1).astype(np.int64)  # includes itself


def ranking_metrics(scores: np.ndarray, true_index: np.ndarray,
                    ks: Sequence[int] = DEFAULT_KS) -> dict:
    """top1_accuracy, recall@k for each k, MRR, examples and bank size."""
    scores = np.asarray(scores)
    if len(scores) == 0:
        return {"examples": 0}
    ranks = true_ranks(scores, true_index)
    out = {"top1_accuracy": float(np.mean(ranks == 1))}
    for k in ks:
        out[f"recall@{k}"] = float(np.mean(ranks <= k))
    out["mrr"] = float(np.mean(1.0 / ranks))
    out["examples"] = int(len(ranks))
    out["bank_size"] = int(scores.shape[1])
    return out


def precision_coverage(top_scores: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
    """Answering only when the top score >= threshold: the share answered (coverage) and
    the share of those answers that are right (precision; 1.0 when nothing is answered)."""
    top_scores = np.asarray(top_scores, np.float64)
    correct = np.asarray(correct, bool)
    answered = top_scores >= threshold
    n = int(answered.sum())
    return {"threshold": float(threshold),
            "coverage": float(n / len(top_scores)) if len(top_scores) else 0.0,
            "precision": float(correct[answered].mean()) if n else 1.0,
            "answered": n, "examples": int(len(top_scores))}


def calibrate_threshold(top_scores: np.ndarray, correct: np.ndarray,
                        target_precision: float) -> dict:
    """The lowest threshold (most coverage) whose answered set reaches `target_precision`.

    Candidate thresholds are the observed top scores. If no threshold reaches the target,
    the threshold is set above every score (everything is handed off) and `reached` is
    False, so a weak model fails safe instead of answering wrongly.
    """
    top_scores = np.asarray(top_scores, np.float64)
    correct = np.asarray(correct, bool)
    if len(top_scores) == 0:
        raise ValueError("cannot calibrate a threshold on an empty set")
    order = np.argsort(-top_scores, kind="stable")
    sorted_scores, sorted_correct = top_scores[order], correct[order]
    # Precision of answering the first i+1 highest-scoring questions.
    precision = np.cumsum(sorted_correct) / np.arange(1, len(order) + 1)
    best = None
    for i in range(len(order)):
        # A threshold equal to this score also answers every tie, so judge at a tie's end.
        if i + 1 < len(order) and sorted_scores[i + 1] == sorted_scores[i]:
            continue
        if precision[i] >= target_precision:
            best = i
    if best is None:
        threshold = float(np.nextafter(sorted_scores[0], np.inf))
        result = precision_coverage(top_scores, correct, threshold)
        return {**result, "target_precision": float(target_precision), "reached": False}
    result = precision_coverage(top_scores, correct, float(sorted_scores[best]))
    return {**result, "target_precision": float(target_precision), "reached": True}


def tradeoff_table(top_scores: np.ndarray, correct: np.ndarray,
                   targets: Sequence[float] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)) -> list[dict]:
    """Coverage and precision at the threshold calibrated for each target precision, plus
    answering everything (threshold -inf)."""
    # threshold None: answer everything (kept JSON-safe, unlike -inf).
    rows = [{**precision_coverage(top_scores, correct, -np.inf), "threshold": None,
             "target_precision": None}]
    for target in targets:
        rows.append(calibrate_threshold(top_scores, correct, target))
    return rows


def format_ranking(name: str, metrics: dict) -> str:
    """One line of ranking metrics: top-1, recall@k, MRR."""
    if not metrics.get("examples"):
        return f"{name}: no examples"
    recalls = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("recall@"))
    return (f"{name}: top-1 {metrics['top1_accuracy']:.4f}  {recalls}  MRR {metrics['mrr']:.4f}"
            f"  ({metrics['examples']} questions, bank of {metrics['bank_size']})")


def format_tradeoff(rows: list[dict]) -> str:
    lines = [f"  {'target':>8}{'threshold':>11}{'coverage':>10}{'precision':>11}"]
    for r in rows:
        target = "all" if r["target_precision"] is None else f"{r['target_precision']:.2f}"
        threshold = "none" if r["threshold"] is None else f"{r['threshold']:.4f}"
        mark = "" if r.get("reached", True) else "  (not reached: hand off all)"
        lines.append(f"  {target:>8}{threshold:>11}{r['coverage']:>10.4f}"
                     f"{r['precision']:>11.4f}{mark}")
    return "\n".join(lines)


def out_of_scope_metrics(scores: np.ndarray, true_index: np.ndarray, oos_index: int,
                         threshold: float) -> dict:
    """Hand-off quality when one class means "out of scope" (CLINC150's protocol, plus the
    threshold): in-scope accuracy (argmax is the right in-scope answer), out-of-scope recall
    (out-of-scope questions handed off: predicted out of scope or best score below the
    threshold) and in-scope coverage (in-scope questions answered, not handed off)."""
    predicted, top = scores.argmax(axis=1), scores.max(axis=1)
    handoff = (predicted == oos_index) | (top < threshold)
    in_scope = true_index != oos_index
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    return {
        "in_scope_accuracy": float((predicted == true_index)[in_scope].mean()) if n_in else 0.0,
        "out_of_scope_recall": float(handoff[~in_scope].mean()) if n_out else 0.0,
        "in_scope_coverage": float((~handoff)[in_scope].mean()) if n_in else 0.0,
        "in_scope_accuracy_answered": float(
            ((predicted == true_index) & ~handoff)[in_scope].mean()) if n_in else 0.0,
        "in_scope": n_in, "out_of_scope": n_out, "threshold": float(threshold)}
