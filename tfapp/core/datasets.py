"""Reading labelled text files (CSV, TSV, JSONL) with row-level validation, and tf.data input.

Rows are numbered as a user sees them in an editor: for CSV/TSV the header is line 1 and
the first data row is row 2; for JSONL row N is line N.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfapp.core.backbone import model_inputs
from tfapp.core.errors import DataError

log = logging.getLogger("tfapp")

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataError(path, f"cannot tell the format from the extension '{path.suffix}' "
                              f"(use .csv, .tsv or .jsonl, or name the format: data.format in a "
                              f"config, --format on the command line)") from None


def _check_utf8(path: Path, row: int, field: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        char = value[e.start]
        if "\udc80" <= char <= "\udcff":  # an undecodable byte kept by surrogateescape
            what = f"byte 0x{char.encode('utf-8', 'surrogateescape').hex()}"
        else:  # e.g. a JSON escape "\ud800" with no pair
            what = f"lone surrogate U+{ord(char):04X}"
        raise DataError(path, f"invalid UTF-8 ({what} at character {e.start})",
                        row, field) from None


def _checked_rows(path: Path, reader):
    """The reader's rows; a malformed quote becomes a DataError naming the row it opened in."""
    while True:
        start = reader.line_num + 1
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            what = ("unterminated quote: a field opened with \" here never closes"
                    if "unexpected end of data" in str(e)
                    else f"malformed quoting ({e})")
            raise DataError(path, what, start) from None


def _csv_rows(path: Path, columns: Sequence[str], delimiter: str):
    # surrogateescape keeps invalid bytes visible so the bad row and field can be named.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        # strict: a quote left open stops at the end of the file with csv.Error instead of
        # swallowing every later row into one field.
        reader = csv.DictReader(f, delimiter=delimiter, strict=True)
        try:
            header = reader.fieldnames
        except csv.Error as e:
            what = ("unterminated quote: a field opened with \" here never closes"
                    if "unexpected end of data" in str(e) else f"malformed quoting ({e})")
            raise DataError(path, f"header: {what}", 1) from None
        if not header:
            raise DataError(path, "file is empty (expected a header row and data rows)")
        for col in header:
            _check_utf8(path, 1, col, col)
        repeated = [c for c in columns if header.count(c) > 1]
        if repeated:
            raise DataError(path, f"column '{repeated[0]}' appears {header.count(repeated[0])} "
                                  f"times in the header", row=1, field=repeated[0])
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(path, f"column '{missing[0]}' not found in header "
                                  f"(columns: {', '.join(header)})", row=1, field=missing[0])
        for row in _checked_rows(path, reader):
            line = reader.line_num
            if None in row:
                raise DataError(path, f"{len(header) + len(row[None])} fields, "
                                      f"header has {len(header)}", line)
            for col in columns:
                value = row[col]
                if value is None:
                    raise DataError(path, "missing value (row has too few fields)", line, col)
                _check_utf8(path, line, col, value)
            yield line, {c: row[c] for c in columns}


def _jsonl_rows(path: Path, columns: Sequence[str]):
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte "
                                      f"{e.start} of the line)", line_no) from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(path, f"not valid JSON ({e.msg})", line_no) from None
            if not isinstance(record, dict):
                raise DataError(path, "expected a JSON object per line", line_no)
            out = {}
            for col in columns:
                if col not in record:
                    raise DataError(path, f"key '{col}' missing", line_no, col)
                value = record[col]
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    value = ""  # null / NaN: a missing value, as an empty CSV field
                # A JSON list (e.g. item ids of a click history) reads as space-separated.
                out[col] = (" ".join(map(str, value)) if isinstance(value, list)
                            else str(value))
                _check_utf8(path, line_no, col, out[col])  # e.g. a lone surrogate "\ud800"
            yield line_no, out


def read_rows(path: str | Path, columns: Sequence[str], fmt: str = "auto"):
    """Returns [(row_number, {column: str})] for the given columns, validated for presence
    and UTF-8; raises DataError naming file, row and field."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    fmt = detect_format(path, fmt)
    if fmt == "jsonl":
        rows = list(_jsonl_rows(path, columns))
    else:
        rows = list(_csv_rows(path, columns, "\t" if fmt == "tsv" else ","))
    if not rows:
        raise DataError(path, "file has no data rows")
    return rows


def seeded_split(keys: Sequence, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Deterministic split of indices into len(fractions) parts, stratified by `keys`."""
    rng = np.random.default_rng(seed)
    keys = list(keys)
    parts: list[list[int]] = [[] for _ in fractions]
    cum = np.cumsum(fractions)
    for key in sorted(set(keys), key=str):
        idx = np.array([i for i, k in enumerate(keys) if k == key])
        rng.shuffle(idx)
        bounds = np.round(cum * len(idx)).astype(int)
        start = 0
        for p, end in enumerate(bounds):
            parts[p].extend(idx[start:end].tolist())
            start = end
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def with_counted_steps(dataset: tf.data.Dataset) -> tuple[tf.data.Dataset, int]:
    """(dataset with its true cardinality, batches per epoch). Length buckets flush partial
    batches, so the batches are counted (one pass, which also fills a cache) and Keras
    shows a true progress bar."""
    steps = int(dataset.reduce(0, lambda n, _: n + 1))
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)), steps


def count_truncated(packer, texts: Sequence[str], batch_size: int = 256) -> tuple[int, int]:
    """(number of texts longer than max_seq_length tokens, longest length in word pieces)."""
    lengths = packer.token_lengths(texts, batch_size)
    return int((lengths > packer.max_seq_length - 2).sum()), int(lengths.max(initial=0))


def text_dataset(
    texts: Sequence[str],
    targets,
    packer,
    batch_size: int,
    *,
    sample_weights=None,
    training: bool = False,
    seed: int = 0,
    bucket_boundaries: Iterable[int] = (),
    shuffle_buffer: int = 10000,
    cache: bool = True,
    static_shapes: bool = False,
) -> tf.data.Dataset:
    """(inputs, targets[, weights]) batches: tokenised in graph, grouped by length, prefetched.

    static_shapes: training batches are padded to their bucket edge (the last edge being
    the packer's max length) and partial batches dropped; evaluation batches are padded
    to max length. Every batch then has one of a few fixed shapes, as XLA/TPUs need.

    `targets` and `sample_weights` are arrays or dicts of arrays (one per model output).
    """
    parts = [tf.constant(list(texts)), targets]
    if sample_weights is not None:
        parts.append(sample_weights)
    ds = tf.data.Dataset.from_tensor_slices(tuple(parts))
    # Tokenise in batches (vectorised WordPiece), then unbatch to unpadded single rows.
    def tokenize(t, *rest):
        ids = packer.ragged_ids(t)
        return (ids.to_tensor(packer.pad_id), ids.row_lengths(), *rest)

    ds = ds.batch(256).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    ds = ds.map(lambda ids, n, *rest: (ids[:n], *rest))
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(min(shuffle_buffer, max(len(texts), 1)), seed=seed,
                        reshuffle_each_iteration=True)
    pad_values = (packer.pad_id, *([None] * (len(parts) - 1)))
    # Only training batches are grouped by length: evaluation keeps file order so that
    # predictions line up with their rows.
    boundaries = [b for b in bucket_boundaries if b < packer.max_seq_length] if training else []
    if static_shapes and training:
        # Edges are exclusive upper bounds; padding goes to edge - 1.
        edges = [b + 1 for b in boundaries] + [packer.max_seq_length + 1]
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda ids, *rest: tf.shape(ids)[0],
            bucket_boundaries=edges, bucket_batch_sizes=[batch_size] * (len(edges) + 1),
            padding_values=pad_values, pad_to_bucket_boundary=True, drop_remainder=True)
    elif boundaries:
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda ids, *rest: tf.shape(ids)[0],
            bucket_boundaries=[b + 1 for b in boundaries],
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=pad_values)
    else:
        shapes = None
        if static_shapes:
            shapes = ([packer.max_seq_length],
                      *tf.nest.map_structure(lambda s: s.shape, ds.element_spec[1:]))
        ds = ds.padded_batch(batch_size, padded_shapes=shapes, padding_values=pad_values)
        # Known length lets Keras show real progress bars and skip "ran out of data" notices.
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(texts) // batch_size)))

    def to_inputs(ids, *rest):
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(ids, packer.pad_id), tf.int32), axis=1)
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1], tf.int32)
        return (model_inputs(ids, mask), *rest)

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def texts_only_dataset(texts: Sequence[str], packer, batch_size: int) -> tf.data.Dataset:
    """Inputs-only batches in file order, for prediction over a whole split."""
    return text_dataset(texts, np.zeros(len(texts), np.int32), packer, batch_size,
                        cache=False).map(lambda x, _: x)
