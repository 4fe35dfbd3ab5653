"""The opinion monitor's engine (run by `python -m tfapp.monitor`): scores a stream of texts
with an exported sentiment(/topic) model, aggregates per topic in event-time windows, and
raises an alert when a window's negative volume or share surges above its rolling
baseline. Writes alerts.jsonl, windows.csv, negative_share.png, summary.json and
TensorBoard scalars."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import tfapp  # noqa: F401
from tasks.sentiment.stream import StreamReader
from tasks.sentiment.surge import Scored, SurgeDetector, Window
from tfapp.core.errors import ConfigError, TfappError
from tfapp.core.markdown import code_block

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '15m', '1h' or '2d'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise ConfigError(f"bad duration '{text}' (use e.g. 30s, 15m, 1h, 2d)")
    return float(match[1]) * _UNITS[match[2] or "s"]


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat().replace("+00:00", "Z")


class Scorer:
    """Batches of texts → labels and probabilities through the exported serving_default."""

    def __init__(self, export_dir: Path):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        from tfapp.core.export_layout import resolve_export

        self.tf = tf
        self.export = resolve_export(export_dir)
        self.fn = tf.saved_model.load(str(self.export)).signatures["serving_default"]
        outputs = self.fn.structured_outputs
        for key in ("probabilities", "classes"):
            if key not in outputs:
                raise TfappError(f"{self.export}: serving_default has no '{key}' output; "
                                 f"monitoring needs a sentiment export")
        self.has_topic = "topic_label" in outputs

    def __call__(self, texts: list[str]) -> list[dict]:
        out = self.fn(text=self.tf.constant(texts))
        classes = [c.decode() for c in out["classes"].numpy()[0]]
        if "negative" not in classes:
            raise TfappError(f"{self.export}: classes {classes} have no 'negative'")
        neg, pos = classes.index("negative"), classes.index("positive") \
            if "positive" in classes else None
        probs = out["probabilities"].numpy()
        labels = [b.decode() for b in out["label"].numpy()]
        topics = ([b.decode() for b in out["topic_label"].numpy()] if self.has_topic
                  else [None] * len(texts))
        return [{"label": labels[i], "p_negative": float(probs[i, neg]),
                 "score": float((probs[i, pos] if pos is not None else 0) - probs[i, neg]),
                 "topic": topics[i]} for i in range(len(texts))]


class Outputs:
    """Streams windows and alerts to disk as they close; chart and summary at the end."""

    def __init__(self, out_dir: Path):
        import tensorflow as tf

        self.tf = tf
        self.dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        # A re-run into the same --out replaces the earlier run's outputs; its TensorBoard
        # events would otherwise be read as a second copy of every series.
        shutil.rmtree(out_dir / "logs", ignore_errors=True)
        (out_dir / "negative_share.png").unlink(missing_ok=True)
        self.alerts_file = open(out_dir / "alerts.jsonl", "w", encoding="utf-8")
        self.windows_file = open(out_dir / "windows.csv", "w", encoding="utf-8", newline="")
        self.windows_csv = csv.writer(self.windows_file)
        self.windows_csv.writerow(["window_start", "window_end", "topic", "volume",
                                   "negatives", "negative_share", "mean_score", "alert"])
        self.writer = tf.summary.create_file_writer(str(out_dir / "logs"))
        self.series: dict[str, list] = {}
        self.alerts: list[dict] = []

    def window(self, w: Window, alert) -> None:
        self.windows_csv.writerow([iso(w.start), iso(w.end), w.topic, w.volume, w.negatives,
                                   f"{w.negative_share:.4f}", f"{w.mean_score:.4f}",
                                   int(alert is not None)])
        self.windows_file.flush()
        self.series.setdefault(w.topic, []).append((w.start, w.negative_share, w.volume))
        with self.writer.as_default(step=int(w.start)):
            self.tf.summary.scalar(f"negative_share/{w.topic}", w.negative_share)
            self.tf.summary.scalar(f"volume/{w.topic}", w.volume)
            self.tf.summary.scalar(f"mean_score/{w.topic}", w.mean_score)
        if alert is not None:
            record = {**alert, "window_start": iso(alert["window_start"]),
                      "window_end": iso(alert["window_end"])}
            self.alerts.append(record)
            self.alerts_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.alerts_file.flush()
            with self.writer.as_default(step=int(w.start)):
                self.tf.summary.text(f"alerts/{w.topic}",
                                     code_block(json.dumps(record, indent=1)))

    def close(self, summary: dict) -> None:
        from tfapp.core.rundir import write_json

        self.alerts_file.close()
        self.windows_file.close()
        self.writer.flush()
        write_json(self.dir / "summary.json", summary)
        if self.series:
            self._chart()

    def _chart(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from tfapp.core.rundir import atomic_write_bytes

        fig, ax = plt.subplots(figsize=(10, 4.5))
        for topic, points in sorted(self.series.items()):
            times = [dt.datetime.fromtimestamp(p[0], dt.timezone.utc) for p in points]
            ax.plot(times, [p[1] for p in points], label=topic, linewidth=1.2)
        for alert in self.alerts:
            t = dt.datetime.fromisoformat(alert["window_start"].replace("Z", "+00:00"))
            ax.scatter([t], [alert["observed"]["negative_share"]], marker="v", s=90,
                       color="red", zorder=5)
            ax.annotate(f"alert: {alert['topic']}", (t, alert["observed"]["negative_share"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=8, color="red")
        ax.set_ylabel("negative share")
        ax.set_ylim(0, 1.05)
        ax.set_title("Negative share per topic (red: alerts)")
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        atomic_write_bytes(self.dir / "negative_share.png", buf.getvalue())


# Records dated more than this ahead of the machine's clock are counted as "future" and
# left out: one mistyped year must not move every window (and the lateness watermark).
MAX_FUTURE_SECONDS = 86400.0
LOUD_LATE_SHARE = 0.05


def run_monitor(scorer, reader: StreamReader, detector: SurgeDetector, outputs: Outputs, *,
                batch_size: int, follow: bool, max_latency: float, poll_interval: float,
                idle_exit: float | None, say=print) -> dict:
    """The monitoring loop; returns the run summary. Ctrl-C ends it cleanly.

    A file read once (no `follow`) is analysed as a whole: its records are sorted by time
    first, so their order in the file does not matter and nothing is late. When following,
    records older than the watermark by more than the allowed lateness are counted late."""
    counts: Counter = Counter()
    seen_ids: set = set()
    pending: list = []
    pending_since = None
    scored = 0
    scoring_seconds = 0.0
    last_data = time.monotonic()

    def score_pending():
        nonlocal pending, pending_since, scored, scoring_seconds
        if not pending:
            return
        # Records enter the windows in time order (a whole file: all of them; when
        # following: each batch), scored batch_size at a time.
        pending.sort(key=lambda r: r.timestamp)
        if len(pending) > batch_size:
            whole = pending
            for i in range(0, len(whole), batch_size):
                pending = whole[i:i + batch_size]
                score_pending()
            return
        start = time.perf_counter()
        results = scorer([r.text for r in pending])
        scoring_seconds += time.perf_counter() - start
        scored += len(pending)
        for record, result in zip(pending, results):
            topic = record.topic or result["topic"] or "all"
            accepted = detector.add(Scored(record.timestamp, topic, record.text,
                                           result["label"] == "negative",
                                           result["p_negative"], result["score"]))
            if not accepted:
                counts["late"] += 1
        pending, pending_since = [], None
        for window, alert in detector.close_ready():
            outputs.window(window, alert)
            if alert:
                say(f"ALERT {alert['topic']} {iso(alert['window_start'])}: "
                    f"{alert['observed']['negatives']} negative of "
                    f"{alert['observed']['volume']} ({', '.join(alert['metrics'])})")

    # Ctrl-C / SIGTERM ask the loop to stop at the next safe point instead of raising
    # inside a TensorFlow call (which can leave the runtime hung); everything read so far
    # is then scored and written.
    stop = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))

    def take(items):
        nonlocal pending_since
        for record, reason in items:
            counts["lines"] += 1
            if record is None:
                counts[reason] += 1
                continue
            if record.timestamp > time.time() + MAX_FUTURE_SECONDS:
                counts["future"] += 1
                continue
            if record.id is not None:
                if record.id in seen_ids:
                    counts["duplicate"] += 1
                    continue
                seen_ids.add(record.id)
            pending.append(record)
            pending_since = pending_since or time.monotonic()
            if follow and len(pending) >= batch_size:
                score_pending()

    try:
        while not stop:
            items = reader.poll(final=not follow)
            take(items)
            if items:
                last_data = time.monotonic()
            if not follow:
                break
            if pending and time.monotonic() - pending_since >= max_latency:
                score_pending()
            if idle_exit is not None and time.monotonic() - last_data >= idle_exit:
                break
            if not stop:
                time.sleep(poll_interval)
    except KeyboardInterrupt:
        stop.append(signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop:
        say("interrupted: flushing")
    if follow:  # a last line without its newline is still a record
        take(reader.poll(final=True))
    score_pending()
    for window, alert in detector.close_ready(flush=True):
        outputs.window(window, alert)
    skipped = {k: v for k, v in counts.items() if k != "lines"}
    if counts["late"] > LOUD_LATE_SHARE * max(scored, 1):
        say(f"WARNING: {counts['late']} of {scored} scored records "
            f"({counts['late'] / max(scored, 1):.0%})"
            f" arrived later than the allowed lateness and were left out of their windows; "
            f"raise --lateness, or analyse the file without --follow (sorted by time)")
    if counts["future"]:
        say(f"WARNING: {counts['future']} records dated more than a day ahead of this "
            f"machine's clock were left out (first fix their timestamps)")
    if scored == 0:
        say(f"no record was scored ({counts['lines']} lines: "
            + (", ".join(f"{v} {k}" for k, v in skipped.items()) or "none usable") + ")")
    summary = {"lines": counts["lines"], "scored": scored, "skipped": skipped,
               "alerts": len(outputs.alerts),
               "texts_per_second": round(scored / scoring_seconds, 1) if scoring_seconds else None}
    outputs.close(summary)
    return summary
