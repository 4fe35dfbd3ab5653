"""Reading a (possibly growing) JSONL or CSV stream of text records, one line at a time,
never stopping on a bad line: each is skipped with a reason that the caller counts."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
from pathlib import Path
from typing import Optional

from tfapp.core.errors import DataError


@dataclasses.dataclass
class StreamFields:
    timestamp: str = "timestamp"
    text: str = "text"
    topic: str = "topic"
    source: str = "source"
    id: str = "id"


@dataclasses.dataclass
class Record:
    line: int
    timestamp: float
    text: str
    topic: Optional[str]
    source: Optional[str]
    id: Optional[str]


# Epoch numbers this large are milliseconds (1e11 s would be the year 5138).
MILLISECONDS_FROM = 1e11
MILLISECONDS_UNTIL = 1e14


# Times outside 1900-01-01 .. 9999-12-31 are not dates anyone means (and break calendars).
EARLIEST, LATEST = -2208988800.0, 253402300799.0


def _epoch(number: float) -> Optional[float]:
    if not math.isfinite(number):
        return None
    if MILLISECONDS_FROM <= abs(number) < MILLISECONDS_UNTIL:
        number /= 1000.0
    return number if EARLIEST <= number <= LATEST else None


def parse_timestamp(value) -> Optional[float]:
    """Epoch seconds from a number (seconds, or milliseconds when >= 1e11) or an ISO 8601
    string (naive times are UTC); None for anything else, NaN and infinities included."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return _epoch(float(value))
    text = str(value).strip()
    try:
        return _epoch(float(text))
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    try:
        return _epoch(parsed.timestamp())
    except (OverflowError, ValueError):
        return None


class StreamReader:
    """Incremental reader: `poll()` returns what complete lines were appended since the last
    call, as (Record | None, skip reason | None) pairs. A partial last line waits, unless
    `final` (the end of a file read once, or of a follow). A UTF-8 byte-order mark is
    dropped; a CSV field quoted across lines is one record; a file truncated in place
    (copytruncate rotation) is read again from its start."""

    def __init__(self, path: str | Path, fields: StreamFields, fmt: str = "auto"):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "file not found")
        suffix = self.path.suffix.lower()
        self.fmt = fmt if fmt != "auto" else {".csv": "csv", ".tsv": "tsv"}.get(suffix, "jsonl")
        self.fields = fields
        self.offset = 0
        self.line_no = 0
        self.header: Optional[list[str]] = None
        self.rotations = 0
        self._partial = b""
        self._open_quote = b""  # CSV: lines of a record whose quoted field spans lines
        self._open_line = 0

    def check_header(self) -> None:
        """A CSV/TSV stream's header names the text and timestamp fields (DataError if
        not), read from the first line only: what `poll` would refuse, checked before a
        pipeline starts."""
        if self.fmt == "jsonl":
            return
        with open(self.path, "rb") as f:
            first = f.readline().lstrip(b"\xef\xbb\xbf").rstrip(b"\r\n")
        if first.strip() and first.count(b'"') % 2 == 0:
            probe = StreamReader(self.path, self.fields, self.fmt)
            probe.line_no = 1
            probe._parse(first)

    def poll(self, final: bool = False) -> list[tuple[Optional[Record], Optional[str]]]:
        if self.path.stat().st_size < self.offset:  # truncated in place: start again
            self.offset, self._partial, self._open_quote = 0, b"", b""
            self.header = None
            self.rotations += 1
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        if self.offset == 0 and chunk.startswith(b"\xef\xbb\xbf"):
            chunk, self.offset = chunk[3:], 3
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        out = []
        for raw in lines:
            self.line_no += 1
            raw = raw.rstrip(b"\r")
            if self.fmt != "jsonl":
                if self._open_quote:
                    raw = self._open_quote + b"\n" + raw
                elif raw.count(b'"') % 2:
                    self._open_line = self.line_no
                if raw.count(b'"') % 2:  # the quoted field goes on on the next line
                    self._open_quote = raw
                    continue
                self._open_quote = b""
            parsed = self._parse(raw)
            if parsed is not None:
                out.append(parsed)
        if final and self._open_quote:  # an unterminated quote at the very end
            self._open_quote = b""
            out.append((None, "malformed"))
        return out

    def _parse(self, raw: bytes):
        if not raw.strip():
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, "invalid_utf8"
        if self.fmt == "jsonl":
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                return None, "malformed"
            if not isinstance(obj, dict):
                return None, "malformed"
        else:
            try:
                cells = next(csv.reader(io.StringIO(text),
                                        delimiter="\t" if self.fmt == "tsv" else ","))
            except (csv.Error, StopIteration):
                return None, "malformed"
            if self.header is None:
                self.header = cells
                if self.fields.text not in cells or self.fields.timestamp not in cells:
                    raise DataError(self.path, f"header lacks '{self.fields.timestamp}' or "
                                               f"'{self.fields.text}' (columns: "
                                               f"{', '.join(cells)})", self.line_no)
                return None
            if len(cells) != len(self.header):
                return None, "malformed"
            obj = dict(zip(self.header, cells))
        f = self.fields
        body = obj.get(f.text)
        if not isinstance(body, str) or not body.strip():
            return None, "missing_text"
        if obj.get(f.timestamp) in (None, ""):
            return None, "missing_timestamp"
        ts = parse_timestamp(obj.get(f.timestamp))
        if ts is None:
            return None, "bad_timestamp"

        def optional(key):
            value = obj.get(key)
            return str(value).strip() if value not in (None, "") else None

        return Record(self.line_no, ts, body, optional(f.topic), optional(f.source),
                      optional(f.id)), None
