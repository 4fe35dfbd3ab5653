"""SavedModel export in TF Serving's layout: BASE/<model name>/<integer version>/.

A version is written under a hidden temporary name, reloaded and checked against the
in-memory model, and only then renamed into place, so a server polling BASE never sees a
partial or wrong version, and an existing version is never overwritten.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfapp.errors import TfappError

PARITY_TOLERANCE = 1e-5


def existing_versions(model_base: Path) -> list[int]:
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_base: Path) -> int:
    versions = existing_versions(model_base)
    return versions[-1] + 1 if versions else 1


def _compare(name: str, expected: dict, actual: dict) -> None:
    for key, value in expected.items():
        got = actual[key].numpy()
        value = value.numpy()
        if value.dtype.kind in "fc":
            diff = float(np.max(np.abs(value - got))) if value.size else 0.0
            if diff > PARITY_TOLERANCE:
                raise TfappError(f"export check failed: signature {name} output {key} differs "
                                 f"from the in-memory model by {diff:.2e} "
                                 f"(> {PARITY_TOLERANCE})")
        elif not np.array_equal(value, got):
            raise TfappError(f"export check failed: signature {name} output {key} differs "
                             f"from the in-memory model")


def export_saved_model(task, model, packer, model_base: Path,
                       version: Optional[int] = None) -> Path:
    """Writes and verifies a new SavedModel version of `model`; returns its directory."""
    model_base = Path(model_base)
    version = version if version is not None else next_version(model_base)
    final = model_base / str(version)
    if final.exists():
        raise TfappError(f"export version {final} already exists; versions are never "
                         f"overwritten (omit the version to use {next_version(model_base)})")
    model_base.mkdir(parents=True, exist_ok=True)
    tmp = model_base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        # A fresh functional view of the same layers: no optimizer is tracked, so the
        # export carries only inference weights (AdamW's slots would triple its size).
        model = keras.Model(model.input, model.output, name=model.name)
        signatures = task.serving_signatures(model, packer)
        module = tf.Module()
        # Track the model and tokenizer so their variables and assets are saved with the graph.
        module.model = model
        module.tokenizer = packer.tokenizer
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        reloaded = tf.saved_model.load(str(tmp))
        for name, inputs in task.example_inputs().items():
            feed = {k: tf.constant(v) for k, v in inputs.items()}
            _compare(name, signatures[name](**feed), reloaded.signatures[name](**feed))
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
