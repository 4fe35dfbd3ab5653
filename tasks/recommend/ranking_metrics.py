"""Per-impression ranking metrics (AUC, MRR, nDCG@k), as in the MIND benchmark: each
impression's candidates are ranked on their own, then metrics are averaged."""
from __future__ import annotations

import numpy as np


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks in ascending order, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def impression_auc(labels, scores) -> float:
    """ROC AUC of one impression (Mann-Whitney U; tied scores count half)."""
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one clicked and one non-clicked candidate")
    ranks = _average_ranks(np.asarray(scores, np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def impression_mrr(labels, scores) -> float:
    """MIND's MRR: the mean of 1/rank over the impression's clicked candidates."""
    labels = np.asarray(labels, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    return float((labels[order] / np.arange(1, len(labels) + 1)).sum() / labels.sum())


def impression_ndcg(labels, scores, k: int) -> float:
    """nDCG@k with gains 2^rel - 1 and log2(rank + 1) discounts."""
    labels = np.asarray(labels, np.float64)
    discounts = 1 / np.log2(np.arange(2, len(labels) + 2))

    def dcg(order):
        gains = (2 ** labels[order] - 1)[:k]
        return float((gains * discounts[:k][: len(gains)]).sum())

    ideal = dcg(np.argsort(-labels, kind="stable"))
    return dcg(np.argsort(-np.asarray(scores, np.float64), kind="stable")) / ideal


def impression_metrics(labels: list, scores: list, ks=(5, 10)) -> dict:
    """Means over impressions of AUC, MRR and nDCG@k; impressions need >= 1 click and
    >= 1 non-click (the caller filters and reports the others)."""
    if not labels:
        return {"impressions": 0}
    out = {"auc": float(np.mean([impression_auc(y, s) for y, s in zip(labels, scores)])),
           "mrr": float(np.mean([impression_mrr(y, s) for y, s in zip(labels, scores)]))}
    for k in ks:
        out[f"ndcg@{k}"] = float(np.mean([impression_ndcg(y, s, k)
                                          for y, s in zip(labels, scores)]))
    out["impressions"] = len(labels)
    out["candidates"] = int(sum(len(y) for y in labels))
    return out
