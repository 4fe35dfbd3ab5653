"""tfapp.scoring's record handling without a pipeline: tolerant shard reading (every bad
row a BadRow naming file, row and reason), records feeding a signature, padded batches
cut back per record, and the local Beam options."""
from __future__ import annotations

import io

import numpy as np
import pytest

from tfapp.scoring.records import BadRow, Record, format_of, read_records
from tfapp.scoring.signature_io import RecordError, SignatureIO


def _read(data: bytes, fmt: str) -> list:
    return list(read_records(io.BytesIO(data), "f", fmt))


def test_csv_rows_keep_every_field_and_bad_rows_name_their_line():
    data = (b"\xef\xbb\xbfid,text\n1,good one\n2,\"quoted, with comma\"\n3\n4,caf\xe9\n"
            b"5,\"multi\nline\"\n6,ok\n")
    items = _read(data, "csv")
    good = [i for i in items if isinstance(i, Record)]
    bad = [i for i in items if isinstance(i, BadRow)]
    assert [r.fields for r in good] == [{"id": "1", "text": "good one"},
                                        {"id": "2", "text": "quoted, with comma"},
                                        {"id": "5", "text": "multi\nline"},
                                        {"id": "6", "text": "ok"}]
    assert [r.row for r in good] == [2, 3, 7, 8]
    assert [(b.row, b.field, b.reason) for b in bad] == [
        (4, None, "1 fields, header has 2"), (5, "text", "invalid UTF-8")]


def test_an_unterminated_quote_is_reported_once_and_ends_the_file():
    items = _read(b"id,text\n1,a\n2,\"never closed\n3,b\n", "csv")
    assert isinstance(items[0], Record)
    assert len(items) == 2 and "rest of the file is skipped" in items[1].reason
    assert _read(b"", "csv")[0].reason.startswith("file is empty")
    assert "appears more than once" in _read(b"a,a\n1,2\n", "csv")[0].reason


def test_jsonl_and_txt_rows():
    items = _read(b'{"text": "a"}\n\n{bad\n[1]\n\xff\n{"text": "b", "n": 2}\n', "jsonl")
    assert [(type(i).__name__, i.row) for i in items] == [
        ("Record", 1), ("BadRow", 3), ("BadRow", 4), ("BadRow", 5), ("Record", 6)]
    assert items[-1].fields == {"text": "b", "n": 2}
    assert [r.fields["text"] for r in _read(b"one\r\n\n  \ntwo", "txt")] == ["one", "two"]


def test_the_format_comes_from_the_extension():
    assert format_of("a/b.csv") == "csv" and format_of("x.JSONL") == "jsonl"
    assert format_of("x.txt.gz") == "txt" and format_of("x.data", "tsv") == "tsv"
    with pytest.raises(ValueError, match="cannot tell the format"):
        format_of("dir.v2/shard")


TEXT = {"text": ("string", [None])}
RECOMMEND = {"history": ("string", [None, None]), "candidates": ("string", [None, None]),
             "side_features": ("float32", [None, 2])}


def test_a_one_text_signature_reads_its_column():
    sig = SignatureIO({"question": ("string", [None])}, column="body")
    assert sig.inputs_of({"body": "hi", "other": 1}) == {"question": "hi"}
    assert sig.inputs_of({"body": 12}) == {"question": "12"}
    for record, message in (({}, "field 'body' missing"), ({"body": " "}, "empty text"),
                            ({"body": ["a"]}, "expected a text")):
        with pytest.raises(RecordError, match=message) as e:
            sig.inputs_of(record)
        assert e.value.field == "body"


def test_list_inputs_come_from_json_lists_or_csv_cells():
    sig = SignatureIO(RECOMMEND)
    assert sig.inputs_of({"history": '["a", "b"]', "candidates": ["c"],
                          "side_features": [1, 0.5]}) == {
        "history": ["a", "b"], "candidates": ["c"], "side_features": [1, 0.5]}
    for record, field, message in (
            ({"history": "a|b", "candidates": [], "side_features": [1, 2]}, "history",
             "expected a JSON array"),
            ({"history": [], "candidates": [1], "side_features": [1, 2]}, "candidates",
             "list of texts"),
            ({"history": [], "candidates": [], "side_features": [1]}, "side_features",
             "expected 2 numbers"),
            ({"history": [], "candidates": [], "side_features": [1, float("nan")]},
             "side_features", "finite numbers")):
        with pytest.raises(RecordError, match=message) as e:
            sig.inputs_of(record)
        assert e.value.field == field
    with pytest.raises(RecordError, match="records feed only"):
        SignatureIO({"ids": ("int64", [None])})


def test_padded_lists_get_distinct_widths_and_outputs_are_cut_back():
    sig = SignatureIO(RECOMMEND)
    batch = [{"history": ["h1", "h2"], "candidates": ["c1"], "side_features": [0, 0]},
             {"history": [], "candidates": ["c1", "c2"], "side_features": [1, 1]}]
    feed, layout = sig.feed(batch)
    # history and candidates would both pad to 2: one of them gets a third (empty) column
    widths = {k: feed[k].shape[1] for k in ("history", "candidates")}
    assert sorted(widths.values()) == [2, 3]
    assert feed["history"].numpy().tolist()[1][:2] == [b"", b""]
    width = widths["candidates"]
    scores = np.arange(2 * width, dtype=np.float32).reshape(2, width)
    rows = sig.rows({"scores": scores}, layout)
    assert rows == [{"scores": [0.0]}, {"scores": [float(width), float(width + 1)]}]


def test_probabilities_pair_with_their_classes():
    rows = SignatureIO.rows({"probabilities": np.array([[0.25, 0.75]]),
                             "classes": np.array([[b"neg", b"pos"]]),
                             "label": np.array([b"pos"]), "score": np.array([0.75])})
    assert rows == [{"probabilities": {"neg": 0.25, "pos": 0.75}, "label": "pos",
                     "score": 0.75}]


def test_local_runs_default_to_one_worker_process_per_core(monkeypatch):
    from tfapp import score

    monkeypatch.setattr(score.os, "cpu_count", lambda: 4)
    options, threads = score.beam_options([])
    assert "--direct_running_mode=multi_processing" in options
    assert "--direct_num_workers=4" in options and threads == 1
    options, threads = score.beam_options(["--direct_num_workers", "2"])
    assert threads == 2 and not any(o.startswith("--direct_num_workers=") for o in options)
    options, threads = score.beam_options(["--runner=DataflowRunner", "--project=p"])
    assert options == ["--runner=DataflowRunner", "--project=p"] and threads is None
