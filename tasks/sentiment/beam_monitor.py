"""The opinion monitor as an Apache Beam pipeline (`tfapp.monitor --engine beam`): the
stream's records parsed and validated by the monitor's own rules, deduplicated by id,
scored by a transform the caller supplies (RunInference over the export), counted in
event-time fixed windows per topic with the configured allowed lateness, and judged by the
surge rule in a stateful step per topic (its rolling baseline kept in Beam state, windows
taken in time order on an event-time timer). Windows and alerts come out as the in-process
engine writes them."""
from __future__ import annotations

import dataclasses
import heapq
import json
import tempfile
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms import trigger
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.utils.windowed_value import PaneInfoTiming

from tasks.sentiment.opinion_monitor import iso
from tasks.sentiment.stream import StreamFields, StreamReader
from tasks.sentiment.surge import Scored, SurgeConfig, SurgeDetector, Window

NAMESPACE = "tfapp_monitor"
MAX_FUTURE_SECONDS = 86400.0  # as the in-process engine: a mistyped year is left out


def count(name: str, n: int = 1) -> None:
    beam.metrics.Metrics.counter(NAMESPACE, name).inc(n)


class ReadStream(beam.DoFn):
    """A stream file → its valid records, in file order; every skipped line counted by
    its reason (malformed, invalid_utf8, missing_text, ...) and dates more than a day
    ahead of `now` counted as future."""

    def __init__(self, fields: StreamFields, now: float | None = None):
        self.fields, self.now = fields, now

    def process(self, path: str):
        limit = (self.now if self.now is not None else time.time()) + MAX_FUTURE_SECONDS
        for record, reason in StreamReader(path, self.fields).poll(final=True):
            count("lines")
            if record is None:
                count(reason)
            elif record.timestamp > limit:
                count("future")
            else:
                yield record


def first_of_each_id(item):
    """(id, records) → the record that came first; the others counted as duplicates."""
    _, records = item
    records = sorted(records, key=lambda r: r.line)
    if len(records) > 1:
        count("duplicate", len(records) - 1)
    yield records[0]


def scored_record(item) -> beam.window.TimestampedValue:
    """(stream record, monitor fields of its score) → a Scored under its topic, stamped
    with its event time."""
    record, result = item
    count("scored")
    topic = record.topic or result["topic"] or "all"
    scored = Scored(record.timestamp, topic, record.text, result["label"] == "negative",
                    result["p_negative"], result["score"])
    return beam.window.TimestampedValue((topic, scored), record.timestamp)


class WindowStats(beam.CombineFn):
    """Volume, negatives, score sum and the most negative texts of one topic's window."""

    def __init__(self, examples: int):
        self.examples = examples

    def create_accumulator(self):
        return Window("", 0.0, 0.0)

    def add_input(self, acc: Window, scored: Scored) -> Window:
        acc.add(scored, self.examples)
        return acc

    def merge_accumulators(self, accs):
        merged = Window("", 0.0, 0.0)
        for acc in accs:
            merged.volume += acc.volume
            merged.negatives += acc.negatives
            merged.score_sum += acc.score_sum
            merged.worst = heapq.nlargest(self.examples, merged.worst + acc.worst)
        heapq.heapify(merged.worst)
        return merged

    def extract_output(self, acc: Window) -> Window:
        return acc


def in_windows(scored, cfg: SurgeConfig):
    """Keyed, timestamped Scored records → (topic, Window) per event-time fixed window.
    A window fires when the watermark passes its end; records up to the allowed lateness
    behind the watermark fire it again with the late ones included (accumulating), later
    ones are dropped."""
    def stamped(item, w=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        topic, acc = item
        out = dataclasses.replace(acc, topic=topic, start=float(w.start), end=float(w.end),
                                  worst=list(acc.worst))
        return topic, (out, pane.timing == PaneInfoTiming.LATE)

    return (scored
            | "FixedWindows" >> beam.WindowInto(
                beam_window.FixedWindows(cfg.window_seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=cfg.lateness_seconds)
            | "WindowStats" >> beam.CombinePerKey(WindowStats(cfg.examples))
            | "Stamp" >> beam.Map(stamped))


class SurgeStep(beam.DoFn):
    """Per topic, in time order: each finished window (and the empty windows of a gap)
    judged against the topic's rolling baseline by SurgeDetector. Windows wait in a bag
    until the watermark passes their end; the baseline lives in Beam state. A late pane
    (a window already judged, fired again by records within the allowed lateness) is
    counted, not judged twice."""

    PENDING = BagStateSpec("pending", PickleCoder())
    BASELINE = ReadModifyWriteStateSpec("baseline", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, cfg: SurgeConfig):
        self.cfg = cfg

    def process(self, item, pending=beam.DoFn.StateParam(PENDING),
                flush=beam.DoFn.TimerParam(FLUSH)):
        _, (window, late) = item
        if late:
            count("late_panes")
            return
        pending.add(window)
        # One timer per topic: it waits for the earliest pending window's end.
        flush.set(min(w.end for w in pending.read()))

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, fire=beam.DoFn.TimestampParam,
                 pending=beam.DoFn.StateParam(PENDING),
                 baseline=beam.DoFn.StateParam(BASELINE),
                 flush=beam.DoFn.TimerParam(FLUSH)):
        windows = sorted(pending.read(), key=lambda w: w.start)
        ready = [w for w in windows if w.end <= fire.micros / 1e6]
        later = windows[len(ready):]
        pending.clear()
        for w in later:
            pending.add(w)
        if later:
            flush.set(min(w.end for w in later))
        detector = SurgeDetector(self.cfg)
        state = baseline.read()
        if state is not None:
            detector.restore_topic(key, state)
        for window in ready:
            if window.start <= detector.last_closed.get(key, float("-inf")):
                count("late_panes")
                continue
            for closed, alert in detector.close(window):
                yield closed, alert
        baseline.write(detector.topic_state(key))


def build(pipeline, path: str, fields: StreamFields, cfg: SurgeConfig, score,
          now: float | None = None):
    """The monitor's transforms on `pipeline`; returns the PCollection of (Window, alert or
    None). `score` turns stream Records into (Record, {label, p_negative, score, topic})."""
    records = (pipeline
               | "Stream" >> beam.Create([path])
               | "Read" >> beam.ParDo(ReadStream(fields, now)))
    return judged(deduplicated(records) | "Score" >> score, cfg)


def deduplicated(records):
    """The first record of each id in file order; records without an id all pass."""
    return (records
            | "ById" >> beam.Map(lambda r: (r.id if r.id is not None else f"\0line {r.line}",
                                            r))
            | "SameId" >> beam.GroupByKey()
            | "First" >> beam.FlatMap(first_of_each_id))


def judged(scored_pairs, cfg: SurgeConfig):
    """(Record, score fields) pairs → (Window, alert or None) per closed window."""
    stamped = scored_pairs | "EventTime" >> beam.Map(scored_record)
    return (in_windows(stamped, cfg)
            | "Global" >> beam.WindowInto(beam_window.GlobalWindows())
            | "Surge" >> beam.ParDo(SurgeStep(cfg)))


def monitor_fields(label: str, probabilities: dict, topic: str | None) -> dict:
    """What the monitor keeps of a sentiment export's outputs for one text."""
    p_negative = probabilities["negative"]
    return {"label": label, "p_negative": float(p_negative),
            "score": float(probabilities.get("positive", 0.0) - p_negative), "topic": topic}


def _window_json(item) -> str:
    window, alert = item
    return json.dumps({"window": dataclasses.asdict(window), "alert": alert},
                      ensure_ascii=False)


def _window_of(line: str) -> tuple[Window, dict | None]:
    item = json.loads(line)
    w = item["window"]
    return Window(**{**w, "worst": [tuple(x) for x in w["worst"]]}), item["alert"]


def run_beam_monitor(path: str, fields: StreamFields, cfg: SurgeConfig, score, outputs,
                     options: list[str], now: float | None = None, say=print) -> dict:
    """Runs the pipeline with Beam `options` and writes its windows and alerts through
    `outputs` (opinion_monitor.Outputs: alerts.jsonl, windows.csv, TensorBoard, chart) in
    time order; returns the summary, with read = scored + every skip counted."""
    from apache_beam.options.pipeline_options import PipelineOptions

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pipeline = beam.Pipeline(options=PipelineOptions(options))
        (build(pipeline, path, fields, cfg, score, now)
         | "JSON" >> beam.Map(_window_json)
         | "Write" >> beam.io.WriteToText(str(Path(tmp) / "windows"), file_name_suffix=".jsonl"))
        result = pipeline.run()
        result.wait_until_finish()
        seconds = time.perf_counter() - start
        closed = [_window_of(line) for part in sorted(Path(tmp).glob("windows*.jsonl"))
                  for line in part.read_text(encoding="utf-8").splitlines() if line]
    for window, alert in sorted(closed, key=lambda c: (c[0].start, c[0].topic)):
        outputs.window(window, alert)
        if alert:
            say(f"ALERT {alert['topic']} {iso(alert['window_start'])}: "
                f"{alert['observed']['negatives']} negative of "
                f"{alert['observed']['volume']} ({', '.join(alert['metrics'])})")
    counts = {}
    for c in result.metrics().query(beam.metrics.MetricsFilter())["counters"]:
        if c.key.metric.namespace == NAMESPACE:
            counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + c.committed
    scored = counts.pop("scored", 0)
    lines = counts.pop("lines", 0)
    summary = {"lines": lines, "scored": scored,
               "skipped": {k: v for k, v in sorted(counts.items()) if v},
               "alerts": len(outputs.alerts), "engine": "beam",
               "texts_per_second": round(scored / seconds, 1) if seconds else None}
    outputs.close(summary)
    return summary
