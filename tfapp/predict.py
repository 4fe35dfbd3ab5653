"""python -m tfapp.predict --model EXPORT_DIR (--text "..." ... | --file FILE): one JSON line
per input with the exported model's outputs. Needs only tensorflow + tensorflow_text."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, DataError, TfappError, cli_main
from tfapp.core.export_layout import resolve_export


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
            lines = p.read_text(encoding="utf-8-sig").splitlines()
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


def _decoded(value):
    """Lists of bytes (string outputs such as top-k answer ids) as JSON-ready str."""
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def rows_of(outputs: dict, n: int) -> list[dict]:
    """Per-input dicts; `X_probabilities` paired with `X_classes` become {class: p}."""
    arrays = {k: v.numpy() for k, v in outputs.items()}
    rows = []
    for i in range(n):
        row = {}
        for key, value in sorted(arrays.items()):
            if key.endswith("classes"):
                continue
            item = value[i]
            classes = arrays.get(key.replace("probabilities", "classes"))
            if key.endswith("probabilities") and classes is not None:
                item = {c.decode(): round(float(p), 6) for c, p in zip(classes[i], item)}
            elif isinstance(item, bytes):
                item = item.decode()
            elif hasattr(item, "tolist"):
                item = _decoded(item.tolist())
            row[key] = item
        rows.append(row)
    return rows


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
    texts = list(args.text) + (read_texts(args.file, args.column, args.format)
                               if args.file else [])
    if not texts:
        parser.error("give --text or --file")

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokeniser ops the graph uses)

    export = resolve_export(Path(args.model))
    try:
        model = tf.saved_model.load(str(export))
    except Exception as e:  # a damaged export raises many kinds of errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfappError(f"{export}: cannot load the SavedModel ({reason[:200]}); the "
                         f"export is damaged or incomplete") from None
    if args.signature not in model.signatures:
        raise TfappError(f"{export}: no signature '{args.signature}' "
                         f"(has: {', '.join(model.signatures)})")
    fn = model.signatures[args.signature]
    inputs = fn.structured_input_signature[1]
    text_inputs = [k for k, spec in inputs.items()
                   if spec.dtype == tf.string and spec.shape.rank == 1]
    if len(inputs) != 1 or not text_inputs or text_inputs[0] == "inputs":
        raise TfappError(f"{export}: signature '{args.signature}' takes "
                         f"{', '.join(f'{k} {v.shape}' for k, v in inputs.items())}"
                         + (" (serialized tf.Example: the Classify API)"
                            if "inputs" in inputs else "")
                         + ", not a list of texts; use serving_default")
    name = text_inputs[0]
    for start in range(0, len(texts), args.batch_size):
        batch = texts[start:start + args.batch_size]
        for text, row in zip(batch, rows_of(fn(**{name: tf.constant(batch)}), len(batch))):
            print(json.dumps({"text": text, **row}, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
