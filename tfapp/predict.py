"""python -m tfapp.predict --model EXPORT_DIR (--text "..." ... | --file FILE): one JSON line
per input with the exported model's outputs. Needs only tensorflow + tensorflow_text."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, DataError, TfappError, cli_main


def read_texts(path: str, column: str, fmt: str = "auto") -> list[str]:
    """Texts from a .txt file (one per line) or a CSV/TSV/JSONL file's `column`; an empty
    text in a table is an error naming its row (a model would still give it a label)."""
    from tfapp.core.datasets import read_rows

    p = Path(path)
    if p.is_dir():
        raise DataError(p, "is a directory; give a file of texts")
    if p.suffix.lower() == ".txt" and fmt == "auto":
        if not p.is_file():
            raise DataError(p, "file not found")
        try:
            # Only "\n" ends a line (as in tfapp.score): a text may hold U+2028 and kin.
            lines = [t.rstrip("\r") for t in p.read_text(encoding="utf-8-sig").split("\n")]
        except UnicodeDecodeError as e:
            raise DataError(p, f"invalid UTF-8 at byte {e.start}") from None
        texts = [t for t in lines if t.strip()]
        if not texts:
            raise DataError(p, "file has no text lines")
        return texts
    texts = []
    for row, values in read_rows(p, [column], fmt):
        if not values[column].strip():
            raise DataError(p, "empty text (nothing to score)", row, column)
        texts.append(values[column])
    return texts


def read_records(path: str, fmt: str, io) -> list[tuple[dict, dict]]:
    """(fields, signature inputs) of every record of a CSV/TSV/JSONL file, for a signature
    that takes more than one text (e.g. a recommend export's history and candidates); the
    first bad row stops with an error naming it."""
    from tfapp.scoring.records import BadRow, format_of
    from tfapp.scoring.records import read_records as records_of
    from tfapp.scoring.signature_io import RecordError

    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file not found" if not p.exists() else "not a regular file")
    try:
        fmt = format_of(str(p), fmt)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if fmt == "txt":
        raise DataError(p, f"this signature takes {io.describe()}: give a JSONL or CSV file")
    out = []
    with open(p, "rb") as raw:
        for item in records_of(raw, str(p), fmt):
            if isinstance(item, BadRow):
                raise DataError(p, item.reason, item.row, item.field)
            try:
                out.append((item.fields, io.inputs_of(item.fields)))
            except RecordError as e:
                raise DataError(p, str(e), item.row, e.field) from None
    if not out:
        raise DataError(p, "file has no data rows")
    return out


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.predict", description=__doc__)
    parser.add_argument("--model", required=True, help="SavedModel dir or model base dir")
    parser.add_argument("--text", action="append", default=[], help="input text (repeatable)")
    parser.add_argument("--file", help=".txt (one text per line) or CSV/TSV/JSONL")
    parser.add_argument("--column", default="text", help="text column for CSV/TSV/JSONL")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--format", default="auto", choices=["auto", "csv", "tsv", "jsonl"],
                        help="--file format (default: from the extension; .txt is one text "
                             "per line)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if any(not t.strip() for t in args.text):
        raise ConfigError("--text: an empty text has nothing to score")
    if not args.text and not args.file:
        parser.error("give --text or --file")

    from tfapp.scoring.signature_io import RecordError, SignatureIO, load_signature

    export, fn = load_signature(args.model, args.signature)
    inputs = fn.structured_input_signature[1]
    if "inputs" in inputs and len(inputs) == 1:
        raise TfappError(f"{export}: signature '{args.signature}' takes inputs "
                         f"{inputs['inputs'].shape} (serialized tf.Example: the Classify API)"
                         f", not a list of texts; use serving_default")
    try:
        io = SignatureIO.of(fn)
    except RecordError as e:
        raise TfappError(f"{export}: {e}") from None
    if list(io.fields.values()) == ["text"]:
        texts = list(args.text) + (read_texts(args.file, args.column, args.format)
                                   if args.file else [])
        records = [({"text": t}, {io.names[0]: t}) for t in texts]
    elif args.text:
        raise ConfigError(f"{export}: signature '{args.signature}' takes {io.describe()}; "
                          f"give them as JSONL or CSV rows with --file")
    else:
        records = read_records(args.file, args.format, io)
    for start in range(0, len(records), args.batch_size):
        batch = records[start:start + args.batch_size]
        for (fields, _), row in zip(batch, io(fn, [inputs for _, inputs in batch])):
            print(json.dumps({**fields, **row}, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
