"""Records in, rows out, for any export's signature: what `tfapp.predict` and the Beam scoring
pipelines share. A record is a dict of fields (a CSV row, a JSON object, a line of text);
the signature's inputs are read from it by name, and its outputs come back as JSON-ready
values per record."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def load_signature(model: str, name: str = "serving_default"):
    """(export path, signature) of a SavedModel version dir, a model base (its highest
    complete version) or a remote path (`gs://...`, used as is); damaged exports and
    missing signatures are one-line TfappErrors."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokeniser ops the graph uses)

    from tfapp.core.errors import TfappError
    from tfapp.core.export_layout import resolve_export

    path = model if "://" in str(model) else str(resolve_export(Path(model)))
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # a damaged export raises many kinds of errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TfappError(f"{path}: cannot load the SavedModel ({reason[:200]}); the "
                         f"export is damaged or incomplete") from None
    if name not in loaded.signatures:
        raise TfappError(f"{path}: no signature '{name}' (has: {', '.join(loaded.signatures)})")
    # The signature holds its variables only while the loaded object lives.
    fn = loaded.signatures[name]
    fn._tfapp_owner = loaded
    return path, fn


class RecordError(ValueError):
    """A record that cannot feed the signature: `field` names the culprit."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.field = field


def _decoded(value):
    """Lists of bytes (string outputs such as top-k answer ids) as JSON-ready str."""
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


class SignatureIO:
    """How records feed one signature and how its outputs read back.

    A signature with one 1-D string input reads it from the field `column` (default
    `text`); any other signature reads each input from the field of the input's name:
    a [batch, n] string input from a list of strings (in CSV, a JSON array), a
    [batch, f] float input from a list of numbers."""

    def __init__(self, specs: dict, column: str = "text"):
        # specs: {input name: (dtype name, shape as a list)}, plain data so that the
        # pipeline can check records on workers that have not loaded the model.
        self.specs = {name: (dtype, list(shape)) for name, (dtype, shape) in sorted(specs.items())}
        self.names = list(self.specs)
        for name, (dtype, shape) in self.specs.items():
            if dtype not in ("string", "float32") or len(shape) not in (1, 2):
                raise RecordError(f"signature input '{name}' is {dtype} {shape}; records "
                                  f"feed only 1-D/2-D string and float inputs")
        single = len(self.specs) == 1 and self.specs[self.names[0]] == ("string", [None])
        self.fields = {self.names[0]: column} if single else {n: n for n in self.names}

    @classmethod
    def of(cls, signature, column: str = "text") -> "SignatureIO":
        """The SignatureIO of a loaded signature (a concrete function)."""
        return cls({name: (spec.dtype.name, spec.shape.as_list())
                    for name, spec in signature.structured_input_signature[1].items()}, column)

    def describe(self) -> str:
        return ", ".join(f"field '{self.fields[n]}' -> {n} {dtype} {shape}"
                         for n, (dtype, shape) in self.specs.items())

    def inputs_of(self, record: dict) -> dict:
        """{input name: value} of one record; RecordError names the bad field."""
        out = {}
        for name, (dtype, shape) in self.specs.items():
            field = self.fields[name]
            if field not in record:
                raise RecordError(f"field '{field}' missing", field)
            value = record[field]
            if dtype == "string" and len(shape) == 1:
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    raise RecordError(f"expected a text, got {type(value).__name__}", field)
                value = str(value)
                if not value.strip():
                    raise RecordError("empty text (nothing to score)", field)
            else:
                value = self._list(value, field, dtype, shape)
            out[name] = value
        return out

    @staticmethod
    def _list(value, field: str, dtype: str, shape) -> list:
        if isinstance(value, str):  # a CSV cell holds the list as a JSON array
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise RecordError("expected a JSON array", field) from None
        if not isinstance(value, list):
            raise RecordError(f"expected a list, got {type(value).__name__}", field)
        if dtype == "string":
            if not all(isinstance(v, str) for v in value):
                raise RecordError("expected a list of texts", field)
        else:
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) for v in value):
                raise RecordError("expected a list of finite numbers", field)
            width = shape[-1]
            if width is not None and len(value) != width:
                raise RecordError(f"expected {width} numbers, got {len(value)}", field)
        return value

    def feed(self, batch: list[dict]) -> tuple[dict, dict]:
        """(tensors, padding layout) for a batch of `inputs_of` results. [batch, n] string
        inputs are padded with empty strings (the exports' padding) to distinct widths, so
        an output of one of those widths maps back to one input and `rows` cuts it to the
        record's own length."""
        import tensorflow as tf

        feed, widths = {}, {}
        for name, (dtype, shape) in self.specs.items():
            values = [inputs[name] for inputs in batch]
            if dtype == "string" and len(shape) == 2:
                width = max(1, max(len(v) for v in values))
                while width in widths.values():
                    width += 1
                widths[name] = width
                values = [list(v) + [""] * (width - len(v)) for v in values]
                feed[name] = tf.constant(values, tf.string)
            else:
                feed[name] = tf.constant(values, getattr(tf, dtype))
        lengths = {name: [len(inputs[name]) for inputs in batch] for name in widths}
        return feed, {"widths": widths, "lengths": lengths}

    @staticmethod
    def rows(outputs: dict, layout: dict | None = None) -> list[dict]:
        """Per-record dicts of a batch's outputs; `X_probabilities` paired with
        `X_classes` become {class: p}; positions `feed` padded (its `layout`) are cut."""
        arrays = {k: np.asarray(v) for k, v in outputs.items()}
        n = len(next(iter(arrays.values())))
        layout = layout or {"widths": {}, "lengths": {}}
        by_width = {w: name for name, w in layout["widths"].items()}
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
                    if value.ndim == 2 and value.shape[1] in by_width:
                        item = item[:layout["lengths"][by_width[value.shape[1]]][i]]
                    item = _decoded(item.tolist())
                row[key] = item
            rows.append(row)
        return rows

    def __call__(self, signature, batch: list[dict]) -> list[dict]:
        """Runs `signature` on a batch of `inputs_of` results; one output dict each."""
        feed, layout = self.feed(batch)
        return self.rows(signature(**feed), layout)
