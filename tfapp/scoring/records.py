"""Input shards as records, tolerating bad rows: a CSV/TSV/JSONL/TXT file read as a
stream of `Record`s and `BadRow`s (file, row, reason), so one malformed line never stops a
job over millions of texts."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import IO, Iterator

FORMATS = ("auto", "csv", "tsv", "jsonl", "txt")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
             ".ndjson": "jsonl", ".txt": "txt"}


@dataclasses.dataclass(frozen=True)
class Record:
    file: str
    row: int  # 1-based line number in the file (a CSV header is line 1)
    fields: dict


@dataclasses.dataclass(frozen=True)
class BadRow:
    file: str
    row: int | None
    reason: str
    field: str | None = None

    def as_dict(self) -> dict:
        return {"file": self.file, "row": self.row, "field": self.field, "reason": self.reason}


def format_of(path: str, fmt: str = "auto") -> str:
    """The format named, or the one the file's extension says (a .gz suffix is skipped)."""
    if fmt != "auto":
        return fmt
    name = path[:-3] if path.endswith(".gz") else path
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""
    if suffix not in _SUFFIXES:
        raise ValueError(f"{path}: cannot tell the format from the extension "
                         f"'{suffix or '(none)'}'; pass --format csv|tsv|jsonl|txt")
    return _SUFFIXES[suffix]


def _lines(raw: IO[bytes], path: str) -> Iterator[tuple[int, str | BadRow]]:
    """(line number, text or BadRow for a line that is not UTF-8)."""
    for number, line in enumerate(raw, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, BadRow(path, number, f"invalid UTF-8 (byte 0x{line[e.start]:02x} "
                                               f"at byte {e.start} of the line)")


def read_records(raw: IO[bytes], path: str, fmt: str) -> Iterator[Record | BadRow]:
    """Records of one opened file (binary); every unreadable row is a BadRow instead."""
    if fmt == "txt":
        for number, line in _lines(raw, path):
            if isinstance(line, BadRow):
                yield line
            elif line.strip():
                yield Record(path, number, {"text": line.rstrip("\r\n")})
    elif fmt == "jsonl":
        for number, line in _lines(raw, path):
            if isinstance(line, BadRow):
                yield line
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                yield BadRow(path, number, f"not valid JSON ({e.msg})")
                continue
            yield (Record(path, number, value) if isinstance(value, dict)
                   else BadRow(path, number, "expected a JSON object per line"))
    else:
        yield from _table(raw, path, "\t" if fmt == "tsv" else ",")


def _table(raw: IO[bytes], path: str, delimiter: str) -> Iterator[Record | BadRow]:
    # Invalid bytes are kept (surrogateescape) so the row reading them can be named.
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        yield BadRow(path, 1, f"header: malformed quoting ({e}); file skipped")
        return
    if not header:
        yield BadRow(path, None, "file is empty (expected a header row); file skipped")
        return
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        yield BadRow(path, 1, f"column '{repeated[0]}' appears more than once in the header; "
                              f"file skipped", repeated[0])
        return
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            # An unterminated quote swallows the rest of the file: nothing after it is
            # trustworthy, so it is reported once, with where it starts.
            yield BadRow(path, reader.line_num, f"malformed quoting ({e}); the rest of the "
                                                f"file is skipped")
            return
        line = reader.line_num
        if not values:
            continue
        if len(values) != len(header):
            yield BadRow(path, line, f"{len(values)} fields, header has {len(header)}")
            continue
        bad = next((c for c, v in zip(header, values) if _not_utf8(v)), None)
        if bad is not None:
            yield BadRow(path, line, "invalid UTF-8", bad)
            continue
        yield Record(path, line, dict(zip(header, values)))


def _not_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True
