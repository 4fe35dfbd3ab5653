"""SavedModel export in TF Serving's layout: BASE/<model name>/<integer version>/.

A version is written under a hidden temporary name (with Classify method names, an op
check and warmup requests, see tfapp.serving), reloaded and checked against the in-memory
model, and only then renamed into place, so a server polling BASE never sees a
partial or wrong version, and an existing version is never overwritten.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from tfapp.errors import TfappError
from tfapp.serving import check_serving_ops, set_method_names, warmup_records, write_warmup

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
    """Writes and verifies a new SavedModel version of a task's model; returns its directory."""
    root, signatures = task.serving_root(model, packer)
    return publish_saved_model(root, signatures, task.signature_methods(),
                               task.example_inputs(), model_base, version)


def publish_saved_model(root: tf.Module, signatures: dict, methods: dict,
                        example_inputs: dict, model_base: Path,
                        version: Optional[int] = None,
                        extra_files: Optional[dict] = None) -> Path:
    """Saves `root` with `signatures` as BASE/<version>: temp dir, method names, op check,
    warmup requests, reload parity on `example_inputs`, then rename into place.
    `extra_files` ({relative path: text}) are written into the version before the rename."""
    model_base = Path(model_base)
    version = version if version is not None else next_version(model_base)
    final = model_base / str(version)
    if final.exists():
        raise TfappError(f"export version {final} already exists; versions are never "
                         f"overwritten (omit the version to use {next_version(model_base)})")
    model_base.mkdir(parents=True, exist_ok=True)
    tmp = model_base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
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
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv=None):
    """python -m tfapp.export --run RUN_DIR [--version N] [--base DIR]: re-export a finished
    run's final weights as a new SavedModel version, without retraining."""
    import argparse

    from tfapp.errors import cli_main
    from tfapp.rundir import dir_size_bytes

    @cli_main
    def run(argv):
        parser = argparse.ArgumentParser(prog="python -m tfapp.export",
                                         description=main.__doc__)
        parser.add_argument("--run", required=True, help="run directory written by tfapp.train")
        parser.add_argument("--version", type=int, help="version number (default: next)")
        parser.add_argument("--base", help="export base (default: RUN/export); the model "
                            "goes to BASE/<task>/<version>")
        args = parser.parse_args(argv)
        from tfapp.trainer import restore_run, say

        cfg, task, model, packer = restore_run(args.run)
        base = Path(args.base) if args.base else Path(args.run) / "export"
        out = export_saved_model(task, model, packer, base / cfg.task, args.version)
        say(f"exported SavedModel: {out} ({dir_size_bytes(out) / 2**20:.1f} MiB)")

    run(argv)


if __name__ == "__main__":
    main()
