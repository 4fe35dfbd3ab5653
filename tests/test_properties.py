"""Property-based tests (hypothesis): arbitrary bytes and records never crash the file
readers or the monitor; every stream line is either scored or counted with a reason, and
every timestamp parses to a finite number or to None."""
import json
import math
import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tfapp.core.errors import DataError

# CI runs a fixed, seeded set of examples so a red build always reproduces; set
# TFAPP_PROPERTY_EXAMPLES=5000 (say) to explore freshly drawn inputs.
_EXPLORE = int(os.environ.get("TFAPP_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_EXPLORE or 150, derandomize=not _EXPLORE, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from([".csv", ".tsv", ".jsonl"]))
@example(b'"', ".csv")  # a header whose quote never closes
@example(b'"\n"', ".csv")  # a header cell holding a line break
def test_table_readers_return_rows_or_one_data_error(tmp_path, content, suffix):
    from tfapp.core.datasets import read_rows

    path = tmp_path / f"f{suffix}"
    path.write_bytes(content)
    try:
        rows = read_rows(path, ["text", "label"])
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    for row, values in rows:
        assert row >= 1 and set(values) == {"text", "label"}
        assert all(isinstance(v, str) for v in values.values())


timestamps = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                       st.text(max_size=30), st.none(), st.booleans(),
                       st.datetimes().map(lambda d: d.isoformat()))


@SETTINGS
@given(timestamps)
def test_timestamps_parse_to_finite_seconds_or_none(value):
    from tasks.sentiment.stream import parse_timestamp

    try:
        parsed = parse_timestamp(value)
    except (OverflowError, ValueError) as e:  # must not happen
        raise AssertionError(f"{value!r} raised {e!r}")
    assert parsed is None or math.isfinite(parsed)


records = st.one_of(
    st.binary(max_size=120),
    st.fixed_dictionaries({"id": st.one_of(st.none(), st.text(max_size=5)),
                           "timestamp": timestamps,
                           "text": st.one_of(st.none(), st.text(max_size=40)),
                           "topic": st.one_of(st.none(), st.text(max_size=8))}).map(
        lambda d: json.dumps(d, default=str).encode()))


@SETTINGS
@given(st.lists(records, max_size=40), st.booleans())
def test_every_stream_line_is_scored_or_counted(tmp_path, lines, trailing_newline):
    from test_monitor import KeywordScorer

    from tasks.sentiment.opinion_monitor import Outputs, run_monitor
    from tasks.sentiment.stream import StreamFields, StreamReader
    from tasks.sentiment.surge import SurgeConfig, SurgeDetector

    body = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    stream = tmp_path / "s.jsonl"
    stream.write_bytes(body + (b"\n" if trailing_newline and body else b""))
    summary = run_monitor(KeywordScorer(), StreamReader(stream, StreamFields()),
                          SurgeDetector(SurgeConfig(window_seconds=60)), Outputs(tmp_path / "o"),
                          batch_size=8, follow=False, max_latency=1, poll_interval=0.01,
                          idle_exit=None, say=lambda m: None)
    counted = sum(summary["skipped"].values())
    non_blank = sum(1 for line in body.split(b"\n") if line.strip())
    assert summary["lines"] == summary["scored"] + counted
    assert summary["lines"] >= non_blank - counted - summary["scored"]
    assert summary["scored"] + counted <= non_blank
