"""Leave-last-out evaluation of the recommend task on an interaction log, with two
baselines computed in the same run: each held-out positive ranked against its sampled
negatives (HR@10, nDCG@k, MRR, AUC) and against the whole catalogue (recall@10/50, the
user's earlier positives excluded), for the model, *popularity* (training-period positive
counts) and *zero-shot text* (the untrained backbone's mean-pooled item embeddings, user =
mean of the history's, cosine), plus the collaborative baselines of
tasks.recommend.collaborative (item-kNN, BPR matrix factorisation). Cold items: held-out
positives with no training interaction, where popularity cannot help."""
from __future__ import annotations

import numpy as np

from tasks.recommend.ranking_metrics import impression_metrics

CATALOGUE_KS = (10, 50)
HIT_K = 10


def positive_rank(scores: np.ndarray, positive: int) -> float:
    """1-based rank of candidate `positive` among `scores`; ties share their average rank."""
    others = np.delete(scores, positive)
    return 1.0 + float((others > scores[positive]).sum()) + 0.5 * float(
        (others == scores[positive]).sum())


def ranking_report(imps, catalogue_scores: np.ndarray, ks) -> dict:
    """Sampled-candidate and whole-catalogue metrics from [impressions, items] scores.
    Each impression's first candidate is its held-out positive."""
    sampled = [catalogue_scores[i, c] for i, c in enumerate(imps.candidates)]
    out = impression_metrics(imps.clicks, sampled, ks)
    out[f"hr@{HIT_K}"] = float(np.mean([positive_rank(s, 0) <= HIT_K for s in sampled]))
    ranks = []
    for i, (history, candidates) in enumerate(zip(imps.history, imps.candidates)):
        scores = catalogue_scores[i].astype(np.float64).copy()
        scores[[h for h in history if h != candidates[0]]] = -np.inf  # already seen
        ranks.append(positive_rank(scores, candidates[0]))
    ranks = np.array(ranks)
    out["catalogue"] = {f"recall@{k}": float(np.mean(ranks <= k)) for k in CATALOGUE_KS}
    return out


def popularity_scores(imps, popularity: np.ndarray) -> np.ndarray:
    return np.tile(popularity.astype(np.float64), (len(imps), 1))


def zero_shot_scores(imps, item_vectors: np.ndarray) -> np.ndarray:
    """Cosine between each item and the mean of the user's history items (unit vectors);
    an empty history scores every item 0."""
    unit = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True),
                                     1e-12)
    users = np.stack([unit[h].mean(axis=0) if h else np.zeros(unit.shape[1], unit.dtype)
                      for h in imps.history])
    return users @ unit.T


def cold_hit_rate(imps, catalogue_scores: np.ndarray, popularity: np.ndarray) -> dict:
    """HR@10 over the impressions whose positive had no training interaction."""
    cold = [i for i, c in enumerate(imps.candidates) if popularity[c[0]] == 0]
    if not cold:
        return {"impressions": 0}
    hits = [positive_rank(catalogue_scores[i, imps.candidates[i]], 0) <= HIT_K for i in cold]
    return {"impressions": len(cold), f"hr@{HIT_K}": float(np.mean(hits))}


def interaction_report(imps, model_scores, popularity, zero_shot_vectors, ks,
                       more_baselines=None) -> dict:
    """The model's report with `baselines` and `cold_items` (each also for the baselines);
    `more_baselines`: {name: [impressions, items] scores} (the collaborative ones)."""
    out = ranking_report(imps, model_scores, ks)
    baselines = {"popularity": popularity_scores(imps, popularity),
                 "zero_shot_text": zero_shot_scores(imps, zero_shot_vectors),
                 **(more_baselines or {})}
    out["cold_items"] = {"model": cold_hit_rate(imps, model_scores, popularity)}
    out["baselines"] = {}
    for name, scores in baselines.items():
        out["baselines"][name] = ranking_report(imps, scores, ks)
        out["cold_items"][name] = cold_hit_rate(imps, scores, popularity)
    return out


def format_interaction_report(m: dict, ks) -> str:
    """Model and baselines side by side."""
    header = (f"{'':16}HR@{HIT_K:<4}" + "".join(f"nDCG@{k:<4}" for k in ks)
              + "MRR     AUC     " + "".join(f"R@{k:<6}" for k in CATALOGUE_KS)
              + f"cold HR@{HIT_K}")
    lines = [header]
    rows = {"model": m, **m.get("baselines", {})}
    for name, r in rows.items():
        cold = m["cold_items"][name].get(f"hr@{HIT_K}")
        lines.append(f"{name:<16}{r[f'hr@{HIT_K}']:<8.4f}"
                     + "".join(f"{r[f'ndcg@{k}']:<9.4f}" for k in ks)
                     + f"{r['mrr']:<8.4f}{r['auc']:<8.4f}"
                     + "".join(f"{r['catalogue'][f'recall@{k}']:<8.4f}" for k in CATALOGUE_KS)
                     + ("-" if cold is None else f"{cold:.4f}"))
    lines.append(f"({m['impressions']} held-out positives, {m['candidates']} candidates; "
                 f"{m['cold_items']['model']['impressions']} cold)")
    return "\n".join(lines)
