"""Paired comparisons of two recipes trained with the same seeds: per data set the mean
paired difference with a 95% t-interval, and pooled over a family of data sets the mean of
the per-set differences with a bootstrap interval over sets and seeds."""
from __future__ import annotations

import math
import statistics

import numpy as np


def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile (scipy, which scikit-learn already brings)."""
    from scipy import stats

    return float(stats.t.ppf(p, dof))


def paired(ours: list[float], theirs: list[float]) -> dict:
    """Mean, std and 95% t-interval of ours - theirs over seeds (in the values' units)."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError("paired values need the same seeds on both sides")
    diffs = [a - b for a, b in zip(ours, theirs)]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return {"mean": mean, "std": 0.0, "low": math.nan, "high": math.nan, "diffs": diffs}
    std = statistics.stdev(diffs)
    half = t_quantile(0.975, len(diffs) - 1) * std / math.sqrt(len(diffs))
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "diffs": diffs}


def pooled(per_set_diffs: list[list[float]], resamples: int = 10000, seed: int = 0) -> dict:
    """The mean over data sets of each set's mean paired difference, with a 95% bootstrap
    interval: each resample draws the sets with replacement, then each drawn set's seeds
    with replacement."""
    if not per_set_diffs or any(not d for d in per_set_diffs):
        raise ValueError("every data set needs at least one paired difference")
    mean = statistics.fmean(statistics.fmean(d) for d in per_set_diffs)
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(d, float) for d in per_set_diffs]
    stats = np.empty(resamples)
    for b in range(resamples):
        sets = rng.integers(0, len(arrays), len(arrays))
        stats[b] = np.mean([arrays[s][rng.integers(0, len(arrays[s]), len(arrays[s]))].mean()
                            for s in sets])
    low, high = np.percentile(stats, [2.5, 97.5])
    return {"mean": mean, "low": float(low), "high": float(high), "sets": len(arrays)}
