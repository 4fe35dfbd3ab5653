"""Reading a (possibly growing) JSONL or CSV stream of text records, one line at a time,
never stopping on a bad line: each is skipped with a reason that the caller counts."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
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


def parse_timestamp(value) -> Optional[float]:
    """Epoch seconds from a number or an ISO 8601 string (naive times are UTC)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


class StreamReader:
    """Incremental reader: `poll()` returns what complete lines were appended since the last
    call, as (Record | None, skip reason | None) pairs. A partial last line waits."""

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
        self._partial = b""

    def poll(self) -> list[tuple[Optional[Record], Optional[str]]]:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        out = []
        for raw in lines:
            self.line_no += 1
            parsed = self._parse(raw.rstrip(b"\r"))
            if parsed is not None:
                out.append(parsed)
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
                cells = next(csv.reader([text], delimiter="\t" if self.fmt == "tsv" else ","))
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
