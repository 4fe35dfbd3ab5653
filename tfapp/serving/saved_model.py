"""SavedModel export in TF Serving's layout: BASE/<model name>/<integer version>/.

A version is written under a hidden temporary name (with Classify method names, an op
check and warmup requests, see tfapp.serving.server_contract), reloaded and checked
against the in-memory model, and only then renamed into place, so a server polling BASE never sees a
partial or wrong version, and an existing version is never overwritten.
"""
from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tfapp.core.errors import TfappError
from tfapp.core.export_layout import next_version
from tfapp.serving.server_contract import (
    check_serving_ops,
    set_method_names,
    warmup_records,
    write_warmup,
)

PARITY_TOLERANCE = 1e-5


def _compare(name: str, expected: dict, actual: dict) -> None:
    for key, value in expected.items():
        got = actual[key].numpy()
        value = value.numpy()
        if value.dtype.kind in "fc" and not (np.all(np.isfinite(value))
                                             and np.all(np.isfinite(got))):
            raise TfappError(f"export check failed: signature {name} output {key} has "
                             f"non-finite values (NaN or inf); nothing was published")
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
                       version: Optional[int] = None, profile: str = "auto") -> Path:
    """Writes and verifies a new SavedModel version of a task's model, recording its
    serving profile (export.profile); returns its directory."""
    from tfapp.serving.model_server_files import profile_files

    root, signatures = task.serving_root(model, packer)
    return publish_saved_model(root, signatures, task.signature_methods(),
                               task.example_inputs(), model_base, version,
                               extra_files=profile_files(profile))


# A temporary export this old was left by a killed process (exports take minutes at most).
STALE_TEMP_SECONDS = 3600


@contextlib.contextmanager
def _without_keras_default_signatures():
    """While saving, Keras models in the object graph offer no `_default_save_signature`.

    Every export passes its own signatures, yet tf.saved_model.save traces and stores each
    Keras model's default serving function it finds (the task model and the backbone):
    wasted export time, and for an int8 model whose weights are graph constants, two more
    copies of them in saved_model.pb."""
    from keras.src.backend.tensorflow.layer import TFLayer

    original = TFLayer.__dict__["_default_save_signature"]
    TFLayer._default_save_signature = property(lambda self: None)
    try:
        yield
    finally:
        TFLayer._default_save_signature = original


def remove_stale_temp_dirs(model_base: Path) -> list[Path]:
    """Removes `.tmp-*` versions that a killed export left behind (old ones only: a
    concurrent export may be writing a fresh one)."""
    import time

    removed = []
    for tmp in model_base.glob(".tmp-*"):
        if tmp.is_dir() and time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def publish_saved_model(root: tf.Module, signatures: dict, methods: dict,
                        example_inputs: dict, model_base: Path,
                        version: Optional[int] = None,
                        extra_files: Optional[dict] = None) -> Path:
    """Saves `root` with `signatures` as BASE/<version>: temp dir, method names, op check,
    warmup requests, reload parity on `example_inputs`, then rename into place.
    `extra_files` ({relative path: text}) are written into the version before the rename."""
    model_base = Path(model_base)
    if version is not None and version < 1:
        raise TfappError(f"export version must be >= 1 (TF Serving loads positive integer "
                         f"versions), got {version}")
    version = version if version is not None else next_version(model_base)
    final = model_base / str(version)
    if final.exists():
        raise TfappError(f"export version {final} already exists; versions are never "
                         f"overwritten (omit the version to use {next_version(model_base)})")
    model_base.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(model_base)
    tmp = model_base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        with _without_keras_default_signatures():
            tf.saved_model.save(root, str(tmp), signatures=signatures)
        set_method_names(tmp, methods)
        check_serving_ops(tmp)
        write_warmup(tmp, warmup_records(model_base.name, example_inputs, methods))
        for rel, text in (extra_files or {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        reloaded = tf.saved_model.load(str(tmp))
        for name, inputs in example_inputs.items():
            feed = {k: tf.constant(v) for k, v in inputs.items()}
            _compare(name, signatures[name](**feed), reloaded.signatures[name](**feed))
        try:
            tmp.rename(final)
        except OSError:
            if not final.exists():
                raise
            raise TfappError(f"export version {final} was taken by another export while this "
                             f"one was saving; run again for version "
                             f"{next_version(model_base)}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
