"""The monitor against records and options that used to derail it: far-future and
millisecond timestamps, non-finite times, a last line without its newline, byte-order
marks, quoted multi-line CSV fields, copytruncate rotation, out-of-order files, empty
streams, re-runs into the same --out and option values that crashed or disabled alerting."""
import json
import math

import pytest
from test_monitor import HOUR, T0, KeywordScorer, _write_stream

from tasks.sentiment.opinion_monitor import Outputs, run_monitor
from tasks.sentiment.stream import StreamFields, StreamReader, parse_timestamp
from tasks.sentiment.surge import Scored, SurgeConfig, SurgeDetector

from conftest import run_cli


def _monitor(tmp_path, text: str, name="s.jsonl", follow=False, **cfg):
    stream = tmp_path / name
    stream.write_text(text, encoding="utf-8")
    said = []
    summary = run_monitor(KeywordScorer(), StreamReader(stream, StreamFields()),
                          SurgeDetector(SurgeConfig(**cfg)), Outputs(tmp_path / "out"),
                          batch_size=16, follow=follow, max_latency=1, poll_interval=0.01,
                          idle_exit=0.05 if follow else None, say=said.append)
    return summary, said


def _alerts(tmp_path):
    text = (tmp_path / "out" / "alerts.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_one_record_dated_2099_is_counted_and_derails_nothing(tmp_path):
    lines = _write_stream(None, range(30), surge_hour=25)
    lines.insert(5, json.dumps({"id": "x", "timestamp": "2099-01-01T00:00:00Z",
                                "text": "loss", "topic": "banks"}))
    summary, said = _monitor(tmp_path, "\n".join(lines) + "\n")
    assert summary["skipped"] == {"future": 1}
    assert summary["scored"] == len(lines) - 1
    assert [a["window_start"] for a in _alerts(tmp_path)] == ["2026-11-03T01:00:00Z"]
    assert len((tmp_path / "out" / "windows.csv").read_text().splitlines()) == 1 + 30
    assert any("1 records dated more than a day ahead" in m for m in said)


def test_timestamps_in_milliseconds_and_non_finite_ones():
    assert parse_timestamp(T0 * 1000) == T0 and parse_timestamp(str(int(T0 * 1000))) == T0
    for bad in (math.inf, -math.inf, math.nan, "nan", "inf", "1e400"):
        assert parse_timestamp(bad) is None


def test_non_finite_timestamps_are_skipped_with_a_summary(tmp_path):
    lines = _write_stream(None, range(3))
    lines += ['{"id": "a", "timestamp": Infinity, "text": "loss"}',
              '{"id": "b", "timestamp": NaN, "text": "loss"}',
              json.dumps({"id": "c", "timestamp": T0 * 1000 + 5, "text": "loss ms"})]
    summary, _ = _monitor(tmp_path, "\n".join(lines) + "\n")
    assert summary["skipped"] == {"bad_timestamp": 2}
    assert summary["scored"] == len(lines) - 2  # the millisecond record is kept


def test_last_line_without_newline_is_scored(tmp_path):
    lines = _write_stream(None, range(2))
    summary, _ = _monitor(tmp_path, "\n".join(lines))  # no trailing newline
    assert summary["scored"] == len(lines)
    (tmp_path / "f").mkdir()
    following, _ = _monitor(tmp_path / "f", "\n".join(lines), follow=True)
    assert following["scored"] == len(lines)


def test_byte_order_marks_lose_nothing(tmp_path):
    jsonl = "\ufeff" + "\n".join(_write_stream(None, range(1))) + "\n"
    summary, _ = _monitor(tmp_path, jsonl)
    assert summary["scored"] == 6 and summary["skipped"] == {}
    (tmp_path / "c").mkdir()
    csv_text = ("\ufeffid,timestamp,text,topic\n1,2026-11-02T00:00:00Z,loss one,a\n"
                "1,2026-11-02T00:01:00Z,loss again,a\n2,2026-11-02T00:02:00Z,fine,a\n")
    summary, _ = _monitor(tmp_path / "c", csv_text, name="s.csv")
    assert summary["scored"] == 2 and summary["skipped"] == {"duplicate": 1}


def test_quoted_multiline_csv_field_is_one_record(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('timestamp,text,topic\n2026-11-02T00:00:00Z,"first line\nsecond, line",a\n'
                    '2026-11-02T00:01:00Z,plain,a\n2026-11-02T00:02:00Z,"never closed,a\n')
    reader = StreamReader(path, StreamFields())
    items = reader.poll(final=True)
    assert [r.text if r else reason for r, reason in items] == [
        "first line\nsecond, line", "plain", "malformed"]


def test_copytruncate_rotation_is_followed(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(_write_stream(None, range(1))) + "\n")
    reader = StreamReader(path, StreamFields())
    assert len(reader.poll()) == 6
    path.write_text("\n".join(_write_stream(None, [1], start_id=100)[:2]) + "\n")  # rotated
    items = reader.poll()
    assert [r.id for r, _ in items] == ["100", "101"] and reader.rotations == 1


def test_a_file_out_of_order_is_analysed_whole(tmp_path):
    # Written topic by topic within each day: hours of one topic, then the other's.
    lines = []
    for topic in ("banks", "rates"):
        for line in _write_stream(None, range(30), surge_hour=25 if topic == "banks" else None,
                                  start_id=0 if topic == "banks" else 10_000):
            lines.append(line.replace('"banks"', f'"{topic}"'))
    summary, said = _monitor(tmp_path, "\n".join(lines) + "\n")
    assert summary["skipped"] == {} and summary["scored"] == len(lines)
    assert [(a["topic"], a["window_start"]) for a in _alerts(tmp_path)] == [
        ("banks", "2026-11-03T01:00:00Z")]
    assert not any("WARNING" in m for m in said)


def test_late_records_while_following_are_reported_loudly(tmp_path):
    lines = _write_stream(None, range(5))
    lines += [json.dumps({"id": f"old{i}", "timestamp": T0, "text": "x"}) for i in range(10)]
    summary, said = _monitor(tmp_path, "\n".join(lines) + "\n", follow=True)
    assert summary["skipped"] == {"late": 10}
    assert any(m.startswith("WARNING: 10 of 40 scored records") for m in said)


def test_empty_stream_says_so_and_claims_no_chart(tmp_path):
    summary, said = _monitor(tmp_path, "not json\n\n")
    assert summary["scored"] == 0
    assert any(m.startswith("no record was scored (1 lines: 1 malformed)") for m in said)
    assert not (tmp_path / "out" / "negative_share.png").exists()


def test_rerun_into_the_same_out_does_not_double_tensorboard_series(tmp_path):
    text = "\n".join(_write_stream(None, range(3))) + "\n"
    _monitor(tmp_path, text)
    _monitor(tmp_path, text)
    assert len(list((tmp_path / "out" / "logs").glob("events.out.tfevents*"))) == 1


def test_long_gaps_and_min_count_zero_do_not_blow_up():
    far = [Scored(T0 - 10 * 365 * 86400, "x", "t", True, 0.9, -0.8),
           *[Scored(T0 + h * HOUR + i, "x", "loss", True, 0.9, -0.8)
             for h in range(5) for i in range(3)]]
    det = SurgeDetector(SurgeConfig(min_count=0, baseline_windows=4, min_baseline_windows=1))
    closed = []
    for r in far:
        det.add(r)
        closed += list(det.close_ready())
    closed += list(det.close_ready(flush=True))
    # Ten years of quiet hours become at most a baseline's worth of empty windows.
    assert len(closed) <= 1 + 4 + 5


@pytest.mark.parametrize("args, message", [
    (["--threshold", "nan"], "--threshold must be a finite number > 0"),
    (["--baseline-windows", "0"], "--baseline-windows must be >= 1"),
    (["--baseline-windows", "-1"], "--baseline-windows must be >= 1"),
    (["--window", "0"], "--window must be longer than 0"),
    (["--min-count", "-1"], "--min-count must be >= 0"),
    (["--min-baseline-windows", "30"], "--min-baseline-windows must be in [1, --baseline"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_bad_monitor_options_are_one_line_errors(tmp_path, args, message):
    stream = tmp_path / "s.jsonl"
    stream.write_text("\n".join(_write_stream(None, range(1))) + "\n")
    result = run_cli("tfapp.monitor", "--model", tmp_path / "no-model", "--input", stream,
                     "--out", tmp_path / "out", *args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
