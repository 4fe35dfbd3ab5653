"""tfapp.monitor --engine beam: the Beam pipeline gives the in-process engine's windows,
alerts and counts on generated streams (out of order, late beyond the lateness, future
dates, duplicates, malformed lines), TestStream pins its watermark and allowed-lateness
behaviour, and the CLI runs it on an export."""
from __future__ import annotations

import csv
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from test_monitor import HOUR, T0, KeywordScorer, _write_stream

from tasks.sentiment.beam_monitor import in_windows, run_beam_monitor
from tasks.sentiment.opinion_monitor import Outputs, run_monitor
from tasks.sentiment.stream import StreamFields, StreamReader
from tasks.sentiment.surge import Scored, SurgeConfig, SurgeDetector

from conftest import REPO, run_cli

LOCAL = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def keyword_score(record):
    return record, KeywordScorer()([record.text])[0]


def _stream(tmp_path):
    """Three topics over 40 hours with a surge, plus every kind of trouble."""
    lines = _write_stream(None, range(40), surge_hour=25)
    lines += [line.replace('"banks"', '"rates"').replace('"id": "', '"id": "r')
              for line in _write_stream(None, range(0, 40, 3), surge_hour=30)]
    lines.insert(10, "garbage")
    lines.insert(15, '{"id": "x", "timestamp": "not a time", "text": "loss"}')
    lines.insert(16, '{"id": "y", "timestamp": 1, "text": "  "}')
    lines.insert(20, lines[19])  # a duplicate id
    lines.insert(30, lines[31].replace('"text": "', '"text": "changed '))  # same id, differs
    lines.append(json.dumps({"id": "late", "timestamp": T0, "text": "loss", "topic": "banks"}))
    lines.append(json.dumps({"id": "old", "timestamp": T0 + 2 * HOUR, "text": "loss loss",
                             "topic": "rates"}))
    lines.append(json.dumps({"id": "nt", "timestamp": T0 + 29 * HOUR, "text": "steady"}))
    lines.append(json.dumps({"id": "fut", "timestamp": 4102444800, "text": "loss"}))  # 2100
    lines.append('{"id": "cut", "timestamp": ')  # a last line without its end
    stream = tmp_path / "s.jsonl"
    stream.write_text("\n".join(lines), encoding="utf-8")
    return stream


def _outputs(out):
    with open(out / "windows.csv", encoding="utf-8", newline="") as f:
        windows = sorted(map(tuple, csv.reader(f)))
    alerts = sorted((json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()),
                    key=lambda a: (a["window_start"], a["topic"]))
    return windows, alerts


@pytest.mark.parametrize("cfg", [SurgeConfig(), SurgeConfig(method="ratio", threshold=2.0,
                                                            window_seconds=2 * HOUR,
                                                            cooldown_windows=1)],
                         ids=["zscore", "ratio-2h"])
def test_the_beam_pipeline_gives_the_in_process_windows_alerts_and_counts(tmp_path, cfg):
    stream = _stream(tmp_path)
    ours = run_monitor(KeywordScorer(), StreamReader(stream, StreamFields()),
                       SurgeDetector(cfg), Outputs(tmp_path / "inprocess"), batch_size=16,
                       follow=False, max_latency=1, poll_interval=0.01, idle_exit=None,
                       say=lambda m: None)
    beam_summary = run_beam_monitor(str(stream), StreamFields(), cfg,
                                    "Keywords" >> beam.Map(keyword_score),
                                    Outputs(tmp_path / "beam"), LOCAL, say=lambda m: None)
    windows, alerts = _outputs(tmp_path / "inprocess")
    assert (windows, alerts) == _outputs(tmp_path / "beam")
    assert alerts and len(windows) > 40
    for key in ("lines", "scored", "skipped", "alerts"):
        assert beam_summary[key] == ours[key], key
    assert ours["skipped"] == {"malformed": 2, "bad_timestamp": 1, "missing_text": 1,
                               "duplicate": 2, "future": 1}
    # no record lost or scored twice
    assert beam_summary["scored"] + sum(beam_summary["skipped"].values()) \
        == beam_summary["lines"]
    assert (tmp_path / "beam" / "negative_share.png").is_file()


def _scored(ts, negative=False):
    return TimestampedValue(("banks", Scored(ts, "banks", f"t{ts}", negative,
                                             0.9 if negative else 0.1, 0.0)), ts)


def test_teststream_watermark_fires_windows_and_allowed_lateness_refires_then_drops():
    cfg = SurgeConfig(window_seconds=HOUR, lateness_seconds=600)
    stream = (BeamTestStream()
              .advance_watermark_to(T0)
              .add_elements([_scored(T0 + 100), _scored(T0 + 200, True), _scored(T0 + 300)])
              .advance_watermark_to(T0 + HOUR + 1)  # the first window fires on time
              .add_elements([_scored(T0 + 400, True)])  # late, within the lateness: re-fires
              .advance_watermark_to(T0 + HOUR + 700)  # the first window expires
              .add_elements([_scored(T0 + 500, True)])  # beyond the lateness: dropped
              .add_elements([_scored(T0 + HOUR + 50)])
              .advance_watermark_to_infinity())
    with BeamTestPipeline(options=PipelineOptions(streaming=True)) as p:
        panes = (in_windows(p | stream, cfg)
                 | beam.Map(lambda kv: (kv[1][0].start, kv[1][0].volume,
                                        kv[1][0].negatives, kv[1][1])))
        assert_that(panes, equal_to([(T0, 3, 1, False), (T0, 4, 2, True),
                                     (T0 + HOUR, 1, 0, False)]))


@pytest.mark.integration
def test_monitor_cli_with_the_beam_engine_matches_the_in_process_one(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    model = run_dir / "export" / "sentiment"
    stream = REPO / "tasks" / "samples" / "sentiment_stream.jsonl"
    results = {}
    for engine in ("inprocess", "beam"):
        out = tmp_path / engine
        result = run_cli("tfapp.monitor", "--model", model, "--input", stream, "--out", out,
                         "--engine", engine, *(["--direct_num_workers=2"]
                                               if engine == "beam" else []))
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        windows, alerts = _outputs(out)
        results[engine] = (summary["lines"], summary["scored"], summary["skipped"],
                           [w[:5] for w in windows], [(a["topic"], a["window_start"])
                                                      for a in alerts])
    assert results["beam"] == results["inprocess"]
    bad = run_cli("tfapp.monitor", "--model", model, "--input", stream, "--engine", "beam",
                  "--follow")
    assert bad.returncode == 2 and "--follow" in bad.stderr.strip().splitlines()[-1]


def test_teststream_surge_step_judges_each_window_once_in_time_order():
    from tasks.sentiment.beam_monitor import judged
    from tasks.sentiment.stream import Record

    def pair(ts, negative=False):
        record = Record(int(ts), ts, f"t{ts}", "banks", None, None)
        result = {"label": "negative" if negative else "neutral",
                  "p_negative": 0.9 if negative else 0.1, "score": 0.0, "topic": None}
        return TimestampedValue((record, result), ts)

    cfg = SurgeConfig(window_seconds=HOUR, lateness_seconds=600)
    stream = (BeamTestStream()
              .advance_watermark_to(T0)
              .add_elements([pair(T0 + 3 * HOUR + 10), pair(T0 + 100), pair(T0 + 200, True)])
              .advance_watermark_to(T0 + HOUR + 1)
              .add_elements([pair(T0 + 300, True)])  # a late pane of the first window
              .advance_watermark_to(T0 + 5 * HOUR)  # the last window's timer fires
              .advance_watermark_to_infinity())
    with BeamTestPipeline(options=PipelineOptions(streaming=True)) as p:
        closed = (judged(p | stream, cfg)
                  | beam.Map(lambda c: (c[0].start, c[0].volume, c[1] is None)))
        # the first window as it closed on time, the quiet hours between as empty windows
        assert_that(closed, equal_to([(T0, 2, True), (T0 + HOUR, 0, True),
                                      (T0 + 2 * HOUR, 0, True), (T0 + 3 * HOUR, 1, True)]))


def test_a_csv_stream_header_is_checked_before_the_pipeline_starts(tmp_path):
    from tfapp.core.errors import DataError

    bad = tmp_path / "bad.csv"
    bad.write_text("\ufeffwhen,body\n2026-11-03T00:00:00Z,hello\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 1: header lacks 'timestamp' or 'text'"):
        StreamReader(bad, StreamFields()).check_header()
    good = tmp_path / "good.csv"
    good.write_text("timestamp,text\n2026-11-03T00:00:00Z,hello\n", encoding="utf-8")
    StreamReader(good, StreamFields()).check_header()
    StreamReader(_stream(tmp_path), StreamFields()).check_header()  # JSONL: nothing to check
