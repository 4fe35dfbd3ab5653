import json
import subprocess
import sys
import time

import pytest

from tasks.sentiment.opinion_monitor import Outputs, parse_duration, run_monitor
from tasks.sentiment.stream import StreamFields, StreamReader, parse_timestamp
from tasks.sentiment.surge import Scored, SurgeConfig, SurgeDetector
from tfapp.core.errors import DataError

from conftest import REPO, run_cli

HOUR = 3600.0
T0 = 1_793_577_600.0  # 2026-11-02T00:00:00Z


def flat_records(hours=48, topics=("rates", "banks", "energy"), surge=None):
    """Deterministic stream: 6 texts/hour/topic, 1-2 negative; `surge` = (topic, hours)."""
    out = []
    for h in range(hours):
        for k, topic in enumerate(topics):
            burst = surge and topic == surge[0] and h in surge[1]
            n, neg = (24, 20) if burst else (6, 1 + (h + k) % 2)
            for i in range(n):
                out.append(Scored(T0 + h * HOUR + i * 60, topic, f"{topic} {h} {i}",
                                  i < neg, 0.9 if i < neg else 0.1, -0.8 if i < neg else 0.5))
    return sorted(out, key=lambda r: r.timestamp)


def detect(records, **cfg):
    det = SurgeDetector(SurgeConfig(**cfg))
    closed = []
    for r in records:
        det.add(r)
        closed += list(det.close_ready())
    closed += list(det.close_ready(flush=True))
    return det, closed


@pytest.mark.parametrize("method, threshold", [("zscore", 3.5), ("ratio", 3.0)])
def test_planted_surge_raises_exactly_one_alert(method, threshold):
    _, closed = detect(flat_records(surge=("banks", [30])), method=method, threshold=threshold)
    alerts = [a for _, a in closed if a]
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert alert["topic"] == "banks" and alert["window_start"] == T0 + 30 * HOUR
    assert alert["observed"] == {"volume": 24, "negatives": 20, "negative_share": 0.8333}
    assert alert["baseline"]["windows"] == 24 and len(alert["examples"]) == 3
    assert all(text.startswith("banks 30 ") for text in alert["examples"])


def test_flat_stream_raises_nothing():
    _, closed = detect(flat_records())
    assert not [a for _, a in closed if a]
    assert len(closed) == 48 * 3


def test_cooldown_makes_a_long_surge_one_alert():
    _, closed = detect(flat_records(surge=("energy", [20, 21, 22])), cooldown_windows=3)
    alerts = [a for _, a in closed if a]
    assert [a["window_start"] for a in alerts] == [T0 + 20 * HOUR]
    _, closed = detect(flat_records(surge=("energy", [20, 21, 22])), cooldown_windows=0)
    assert len([a for _, a in closed if a]) == 3


def test_min_count_and_baseline_guard():
    # A surge before the baseline has min_baseline_windows windows is not judged.
    _, closed = detect(flat_records(surge=("rates", [1])), min_baseline_windows=3)
    assert not [a for _, a in closed if a]
    _, closed = detect(flat_records(surge=("rates", [30])), min_count=25)
    assert not [a for _, a in closed if a]


def test_out_of_order_within_lateness_is_kept_and_late_is_counted():
    det = SurgeDetector(SurgeConfig(lateness_seconds=600))
    r = lambda t: Scored(T0 + t, "x", "t", False, 0.1, 0.5)  # noqa: E731
    assert det.add(r(100)) and det.add(r(1000)) and det.add(r(500))  # 500 < 1000 but in time
    assert det.add(r(2 * HOUR))
    assert list(det.close_ready())  # the first hour closed
    assert not det.add(r(200))  # its window already closed
    assert det.late == 1


def test_quiet_hours_become_empty_windows():
    records = [Scored(T0 + h * HOUR, "x", "t", False, 0.1, 0.5) for h in (0, 5)]
    _, closed = detect(records)
    assert [w.volume for w, _ in closed] == [1, 0, 0, 0, 0, 1]


def test_stream_reader_skips_bad_lines_and_waits_for_partial_ones(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(
        b'{"id": "1", "timestamp": "2026-11-02T00:00:00Z", "text": "ok", "topic": "a"}\n'
        b'{"id": "2", "timestamp": "yesterday", "text": "bad time"}\n'
        b'not json\n'
        b'{"id": "3", "timestamp": 1793577600}\n'
        b'{"id": "4", "text": "no time"}\n'
        b'{"id": "5", "timestamp": 1793577600, "text": "caf\xff"}\n'
        b'{"id": "6", "timestamp": 1793577601, "te')
    reader = StreamReader(path, StreamFields())
    items = reader.poll()
    assert [reason for _, reason in items] == [None, "bad_timestamp", "malformed",
                                               "missing_text", "missing_timestamp",
                                               "invalid_utf8"]
    assert items[0][0].timestamp == T0 and items[0][0].topic == "a"
    with open(path, "ab") as f:
        f.write(b'xt": "finished later"}\n')
    (record, reason), = reader.poll()
    assert reason is None and record.text == "finished later" and record.line == 7


def test_csv_stream_and_header_errors(tmp_path):
    good = tmp_path / "s.csv"
    good.write_text('timestamp,text,topic\n2026-11-02T00:00:00,"Stocks fell, sharply",a\n'
                    '2026-11-02T00:01:00,too,many,cells\n')
    items = StreamReader(good, StreamFields()).poll()
    assert items[0][0].text == "Stocks fell, sharply" and items[1] == (None, "malformed")
    bad = tmp_path / "b.csv"
    bad.write_text("time,body\n1,x\n")
    with pytest.raises(DataError, match=r"b.csv: row 1: header lacks 'timestamp' or 'text'"):
        StreamReader(bad, StreamFields()).poll()


def test_parsers():
    assert parse_duration("1h") == 3600 and parse_duration("15m") == 900
    assert parse_duration("90") == 90
    assert parse_timestamp("2026-11-02T00:00:00Z") == T0
    assert parse_timestamp("2026-11-02T01:00:00+01:00") == T0
    assert parse_timestamp(T0) == T0 and parse_timestamp("soon") is None


class KeywordScorer:
    """Stands in for the export: texts containing 'loss' are negative."""

    def __call__(self, texts):
        return [{"label": "negative" if "loss" in t else "neutral",
                 "p_negative": 0.9 if "loss" in t else 0.1,
                 "score": -0.8 if "loss" in t else 0.1, "topic": "model-topic"}
                for t in texts]


def _write_stream(path, hours, surge_hour=None, start_id=0):
    lines = []
    n = start_id
    for h in hours:
        for i in range(24 if h == surge_hour else 6):
            neg = i < (20 if h == surge_hour else 1)
            ts = T0 + h * HOUR + i * 100
            lines.append(json.dumps({"id": str(n), "timestamp": ts, "topic": "banks",
                                     "text": f"bank {'loss' if neg else 'steady'} {n}"}))
            n += 1
    return lines


def test_monitor_loop_end_to_end_with_fake_scorer(tmp_path):
    lines = _write_stream(None, range(30), surge_hour=25)
    lines.insert(10, "garbage")
    lines.insert(20, lines[19])  # duplicate id
    lines.append(json.dumps({"id": "late", "timestamp": T0, "text": "loss", "topic": "banks"}))
    lines.append(json.dumps({"id": "nt", "timestamp": T0 + 29 * HOUR, "text": "steady"}))
    stream = tmp_path / "s.jsonl"
    stream.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    summary = run_monitor(KeywordScorer(), StreamReader(stream, StreamFields()),
                          SurgeDetector(SurgeConfig()), Outputs(out), batch_size=16,
                          follow=False, max_latency=1, poll_interval=0.01, idle_exit=None,
                          say=lambda m: None)
    # A file read once is sorted by time: the record dated T0 at its end is not late.
    assert summary["skipped"] == {"malformed": 1, "duplicate": 1}
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert [(a["topic"], a["window_start"]) for a in alerts] == [("banks",
                                                                   "2026-11-03T01:00:00Z")]
    rows = (out / "windows.csv").read_text().splitlines()
    assert rows[0].startswith("window_start,window_end,topic,volume,negatives")
    assert sum(r.endswith(",1") for r in rows[1:]) == 1
    assert any(",model-topic," in r for r in rows)  # topic from the model when absent
    assert (out / "negative_share.png").stat().st_size > 1000
    assert json.loads((out / "summary.json").read_text()) == summary
    import tensorflow as tf

    tags = {v.tag for path in (out / "logs").glob("events.out.tfevents*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for v in event.summary.value}
    assert {"negative_share/banks", "volume/banks", "mean_score/banks",
            "alerts/banks"} <= tags, tags


def _start_following(run_dir, stream, out, *extra):
    """Starts `tfapp.monitor --follow` and returns once it is in its loop."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfapp.monitor", "--model", str(run_dir / "export" / "sentiment"),
         "--input", str(stream), "--out", str(out), "--follow", "--poll-interval", "0.2",
         *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "windows.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    return proc


def test_monitor_cli_on_export_with_follow(tiny_run, tmp_path):
    """--follow picks up lines appended while it runs, then stops when idle."""
    run_dir, _ = tiny_run
    stream = tmp_path / "live.jsonl"
    stream.write_text("\n".join(_write_stream(None, range(3))) + "\nbroken line\n")
    out = tmp_path / "out"
    proc = _start_following(run_dir, stream, out, "--max-latency", "0.5", "--idle-exit", "10")
    time.sleep(1.0)
    with open(stream, "a") as f:
        f.write("\n".join(_write_stream(None, range(3, 5), start_id=100)) + "\n")
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored"] == 5 * 6 and summary["skipped"] == {"malformed": 1}
    assert summary["lines"] == 31
    windows = (out / "windows.csv").read_text().splitlines()[1:]
    assert len(windows) == 5  # hours 0-4, the last two from appended lines
    assert "[tfapp] summary:" in stdout


def test_monitor_cli_missing_input_is_one_line(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    result = run_cli("tfapp.monitor", "--model", run_dir / "export" / "sentiment",
                     "--input", tmp_path / "nope.jsonl")
    assert result.returncode == 2
    assert f"error: {tmp_path / 'nope.jsonl'}: file not found" in result.stderr


def test_ctrl_c_in_follow_mode_flushes_everything(tiny_run, tmp_path):
    import signal

    run_dir, _ = tiny_run
    stream = tmp_path / "live.jsonl"
    stream.write_text("\n".join(_write_stream(None, range(2))) + "\n")
    out = tmp_path / "out"
    proc = _start_following(run_dir, stream, out, "--max-latency", "0.3")
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert "interrupted: flushing" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored"] == 12
    assert len((out / "windows.csv").read_text().splitlines()) == 1 + 2
