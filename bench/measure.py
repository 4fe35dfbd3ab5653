"""Throughput and latency summaries shared by the benchmark harnesses."""
from __future__ import annotations

import statistics

import numpy as np


def rates(timed: list, seconds: float) -> dict:
    examples = sum(int(x["token_ids"].shape[0]) for x, *_ in timed)
    real = sum(int(x["padding_mask"].numpy().sum()) for x, *_ in timed)
    padded = sum(int(np.prod(x["token_ids"].shape)) for x, *_ in timed)
    return {"examples_per_s": round(examples / seconds, 1),
            "real_tokens_per_s": round(real / seconds, 1),
            "padded_tokens": padded, "seconds": round(seconds, 2), "steps": len(timed)}


def latency(samples: list[float]) -> dict:
    ms = sorted(1000 * s for s in samples)
    return {"p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2)}
