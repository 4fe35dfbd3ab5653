"""Per-topic time windows of scored texts, and surge detection against a rolling baseline.

Pure Python over already-scored records, so the logic is testable without a model:
records go in (any order within the allowed lateness), closed windows and alerts come out.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import statistics
from collections import defaultdict, deque
from typing import Iterator, Optional


@dataclasses.dataclass
class Scored:
    timestamp: float  # seconds since the epoch
    topic: str
    text: str
    negative: bool
    p_negative: float
    score: float  # p(positive) - p(negative), in [-1, 1]


@dataclasses.dataclass
class SurgeConfig:
    window_seconds: float = 3600.0
    baseline_windows: int = 24  # rolling baseline: this many previous windows of the topic
    min_baseline_windows: int = 3  # no alerts before the baseline has this many windows
    # zscore: counts by robust z (median / MAD), shares by binomial z against the baseline
    # median share | ratio: observed / baseline median
    method: str = "zscore"
    threshold: float = 3.5  # z-score, or ratio for method=ratio
    metric: str = "either"  # count | share | either: what must exceed the baseline
    min_count: int = 5  # never alert on fewer negative texts than this in the window
    cooldown_windows: int = 3  # after an alert, the topic is quiet for this many windows
    lateness_seconds: float = 600.0  # records older than the watermark by more are "late"
    examples: int = 3  # most negative texts quoted in an alert


@dataclasses.dataclass
class Window:
    topic: str
    start: float
    end: float
    volume: int = 0
    negatives: int = 0
    score_sum: float = 0.0
    worst: list = dataclasses.field(default_factory=list)  # heap of (p_negative, text)

    @property
    def negative_share(self) -> float:
        return self.negatives / self.volume if self.volume else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.volume if self.volume else 0.0

    def add(self, r: Scored, keep: int) -> None:
        self.volume += 1
        self.negatives += int(r.negative)
        self.score_sum += r.score
        item = (r.p_negative, r.text)
        if len(self.worst) < keep:
            heapq.heappush(self.worst, item)
        elif keep:
            heapq.heappushpop(self.worst, item)


def _robust_z(value: float, history: list[float], floor: float) -> float:
    """(value - median) / (1.4826 * MAD), the MAD floored at `floor` so a flat baseline
    does not turn any small change into a huge score."""
    median = statistics.median(history)
    mad = statistics.median(abs(h - median) for h in history)
    return (value - median) / max(1.4826 * mad, floor)


def _ratio(value: float, history: list[float], floor: float) -> float:
    return value / max(statistics.median(history), floor)


class SurgeDetector:
    """Feeds scored records, emits (closed window, alert or None) in time order per topic."""

    def __init__(self, config: SurgeConfig):
        self.cfg = config
        self.open: dict[tuple[str, float], Window] = {}
        self.history: dict[str, deque] = defaultdict(
            lambda: deque(maxlen=config.baseline_windows))
        self.quiet_until: dict[str, float] = {}
        self.last_closed: dict[str, float] = {}
        self.watermark = float("-inf")
        self.late = 0

    def window_start(self, ts: float) -> float:
        w = self.cfg.window_seconds
        return (ts // w) * w

    def add(self, r: Scored) -> bool:
        """Adds a record; False (and counted in `late`) if its window already closed."""
        start = self.window_start(r.timestamp)
        if r.timestamp < self.watermark or start <= self.last_closed.get(r.topic, float("-inf")):
            self.late += 1
            return False
        key = (r.topic, start)
        if key not in self.open:
            self.open[key] = Window(r.topic, start, start + self.cfg.window_seconds)
        self.open[key].add(r, self.cfg.examples)
        self.watermark = max(self.watermark, r.timestamp - self.cfg.lateness_seconds)
        return True

    def close_ready(self, flush: bool = False) -> Iterator[tuple[Window, Optional[dict]]]:
        """Closes windows that end before the watermark (all windows when flush=True),
        filling gaps with empty windows so the baseline sees quiet periods too (at most
        `baseline_windows` of them: an older empty window could never reach the baseline,
        and one far-off record must not write years of them)."""
        ready = sorted((k for k, w in self.open.items() if flush or w.end <= self.watermark),
                       key=lambda k: (k[1], k[0]))
        for key in ready:
            yield from self.close(self.open.pop(key))

    def close(self, window: Window) -> Iterator[tuple[Window, Optional[dict]]]:
        """Judges a finished window of its topic (after the empty windows of any gap since
        the topic's last one); windows of one topic must come in time order."""
        topic = window.topic
        previous = self.last_closed.get(topic)
        if previous is not None:
            gap = max(previous + self.cfg.window_seconds,
                      window.start - self.cfg.baseline_windows * self.cfg.window_seconds)
            while gap < window.start:
                yield from self._close(Window(topic, gap, gap + self.cfg.window_seconds))
                gap += self.cfg.window_seconds
        yield from self._close(window)

    def topic_state(self, topic: str) -> dict:
        """What `close` remembers of one topic, as plain data (a stateful pipeline step
        keeps it between windows)."""
        return {"history": list(self.history[topic]), "last_closed": self.last_closed.get(topic),
                "quiet_until": self.quiet_until.get(topic)}

    def restore_topic(self, topic: str, state: dict) -> None:
        self.history[topic] = deque(state["history"], maxlen=self.cfg.baseline_windows)
        for name in ("last_closed", "quiet_until"):
            if state[name] is not None:
                getattr(self, name)[topic] = state[name]

    def _close(self, window: Window):
        topic = window.topic
        self.last_closed[topic] = window.start
        history = list(self.history[topic])
        alert = self._judge(window, history)
        self.history[topic].append((window.negatives, window.negative_share, window.volume))
        yield window, alert

    def _judge(self, window: Window, history: list) -> Optional[dict]:
        cfg = self.cfg
        if (len(history) < cfg.min_baseline_windows or window.negatives < cfg.min_count
                or window.volume == 0
                or window.start < self.quiet_until.get(window.topic, float("-inf"))):
            return None
        counts = [h[0] for h in history]
        shares = [h[1] for h in history if h[2] > 0] or [0.0]
        if cfg.method == "ratio":
            scores = {"count": _ratio(window.negatives, counts, 1.0),
                      "share": _ratio(window.negative_share, shares, 0.05)}
        else:
            # Counts: robust z-score (median / MAD, MAD floored at one text). Shares: a
            # binomial z-score against the baseline median share, because a share's noise
            # depends on the window's volume (5 of 7 is common, 20 of 24 is not).
            p0 = min(max(statistics.median(shares), 0.01), 0.99)
            share_scale = max(math.sqrt(p0 * (1 - p0) / window.volume), 0.02)
            scores = {"count": _robust_z(window.negatives, counts, 1.0),
                      "share": (window.negative_share - p0) / share_scale}
        metrics = ["count", "share"] if cfg.metric == "either" else [cfg.metric]
        fired = [m for m in metrics if scores[m] >= cfg.threshold]
        if not fired:
            return None
        self.quiet_until[window.topic] = window.end + cfg.cooldown_windows * cfg.window_seconds
        return {
            "topic": window.topic,
            "window_start": window.start,
            "window_end": window.end,
            "metrics": fired,
            "method": cfg.method,
            "scores": {m: round(scores[m], 3) for m in metrics},
            "observed": {"volume": window.volume, "negatives": window.negatives,
                         "negative_share": round(window.negative_share, 4)},
            "baseline": {"windows": len(history),
                         "median_negatives": statistics.median(counts),
                         "median_negative_share": round(statistics.median(shares), 4)},
            "examples": [text for _, text in sorted(window.worst, reverse=True)],
        }
