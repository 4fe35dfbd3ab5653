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


def balanced_threshold(top_scores: np.ndarray, correct: np.ndarray, out_of_scope: np.ndarray,
                       predicted_out_of_scope: np.ndarray) -> dict:
    """The threshold that maximises in-scope answered accuracy + out-of-scope recall.

    Both terms are rates within their own class, so the choice does not depend on how
    many out-of-scope questions the calibration set happens to hold (CLINC150's validation
    has 3%, its test 18%), unlike a precision target. A question is handed off when its
    top score is below the threshold or its best answer is the out-of-scope one. Ties go
    to the lowest threshold (most answered)."""
    top_scores = np.asarray(top_scores, np.float64)
    correct, oos = np.asarray(correct, bool), np.asarray(out_of_scope, bool)
    said_oos = np.asarray(predicted_out_of_scope, bool)
    if not oos.any() or oos.all():
        raise ValueError("balanced calibration needs in-scope and out-of-scope questions")
    candidates = np.concatenate([[-np.inf], np.unique(top_scores)])
    # Answered (score >= t) counts via sorted scores: O(n log n) over every candidate.
    hit = np.sort(top_scores[~oos & correct & ~said_oos])
    caught_anyway = int((oos & said_oos).sum())
    open_oos = np.sort(top_scores[oos & ~said_oos])
    answered_right = len(hit) - np.searchsorted(hit, candidates, side="left")
    handed_off = caught_anyway + np.searchsorted(open_oos, candidates, side="left")
    accuracy = answered_right / int((~oos).sum())
    recall = handed_off / int(oos.sum())
    best = int(np.argmax(accuracy + recall))  # first maximum: the lowest threshold
    threshold = float(candidates[best])
    return {**precision_coverage(top_scores, correct, threshold),
            "objective": "balanced", "in_scope_accuracy_answered": float(accuracy[best]),
            "out_of_scope_recall": float(recall[best]), "reached": True}


def calibrate_handoff(scores: np.ndarray, answers: np.ndarray, out_of_scope_index,
                      target_precision: float, confidence: np.ndarray | None = None) -> dict:
    """The hand-off threshold for [questions, bank] validation scores: balanced when an
    out-of-scope answer index is given and validation holds both kinds of question, else
    the lowest threshold reaching `target_precision`. The threshold applies to
    `confidence` ([questions]; default: the top score)."""
    predicted = scores.argmax(axis=1)
    correct = predicted == answers
    top = scores.max(axis=1) if confidence is None else np.asarray(confidence)
    if out_of_scope_index is not None:
        out_of_scope = answers == out_of_scope_index
        if out_of_scope.any() and not out_of_scope.all():
            return {**balanced_threshold(top, correct, out_of_scope,
                                         predicted == out_of_scope_index),
                    "target_precision": float(target_precision)}
    return {**calibrate_threshold(top, correct, target_precision),
            "objective": "precision"}


def describe_calibration(c: dict) -> str:
    """One line on how the hand-off threshold was chosen and what it did on validation."""
    score = f" on the {c['handoff_score']} score" if c.get("handoff_score") else ""
    if c.get("objective") == "balanced":
        return (f"hand-off threshold {c['threshold']:.4f}{score}: balanced on validation (in-scope "
                f"answered accuracy {c['in_scope_accuracy_answered']:.4f}, out-of-scope recall "
                f"{c['out_of_scope_recall']:.4f}, coverage {c['coverage']:.4f})")
    return (f"hand-off threshold {c['threshold']:.4f}{score}: target precision "
            f"{c['target_precision']}, validation precision {c['precision']:.4f} at coverage "
            f"{c['coverage']:.4f}"
            + ("" if c["reached"] else " (target NOT reached: all handed off)"))


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
                         threshold: float, confidence: np.ndarray | None = None) -> dict:
    """Hand-off quality when one class means "out of scope" (CLINC150's protocol, plus the
    threshold): in-scope accuracy (argmax is the right in-scope answer), out-of-scope recall
    (out-of-scope questions handed off: predicted out of scope or best score below the
    threshold) and in-scope coverage (in-scope questions answered, not handed off). The
    threshold applies to `confidence` ([questions]; default: the best score)."""
    predicted = scores.argmax(axis=1)
    top = scores.max(axis=1) if confidence is None else np.asarray(confidence)
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
