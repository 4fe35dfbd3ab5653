"""Post-training int8 quantisation of a finished classification run, TF-native: Keras'
`model.quantize("int8")` stores Dense / EinsumDense / Embedding kernels as int8 with
per-channel scales and quantises activations on the fly (dynamic range), so the export
stays a plain SavedModel that TF Serving loads (same op check as every export).

Writes RUN/export-int8/<task>/<version>/ and RUN/quantization.json: float vs int8 metrics
on the run's validation and test splits, and how often their predictions agree.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from tfapp.core.errors import ConfigError

INT8_BASE = "export-int8"
REPORT = "quantization.json"


def predictions(model, texts, packer, batch_size: int) -> dict:
    """{output name: argmax class per text} of a functional classification model."""
    import numpy as np

    from tfapp.core.data import texts_only_dataset

    if not texts:
        return {}
    out = model.predict(texts_only_dataset(texts, packer, batch_size), verbose=0)
    if not isinstance(out, dict):
        out = {"output": out}
    return {k: np.asarray(v).argmax(axis=-1) for k, v in out.items()}


def agreement(a: dict, b: dict) -> dict:
    return {k: float((a[k] == b[k]).mean()) for k in a}


def quantize_run(run_dir: str | Path, version=None) -> Path:
    """Quantises a finished run to int8, exports it and writes the float vs int8 report;
    returns the export directory."""
    import keras

    from tfapp.core.export_layout import existing_versions
    from tfapp.core.log import say
    from tfapp.core.rundir import dir_size_bytes, write_json
    from tfapp.serving.export import export_saved_model
    from tfapp.training.restore import restore_run

    run_dir = Path(run_dir)
    cfg, task, model, packer = restore_run(run_dir)
    if type(model).__name__ != "Functional":
        raise ConfigError(f"{run_dir}: int8 quantisation supports classification runs with a "
                          f"functional Keras model (e.g. sentiment, qa intent mode); this "
                          f"run's model is a {type(model).__name__}")
    splits = task.load_splits()
    batch = cfg.train.global_batch_size
    report = {"float": {}, "int8": {}, "agreement": {}}
    float_preds = {}
    for split in ("validation", "test"):
        report["float"][split] = task.evaluate(model, splits[split], packer)
        float_preds[split] = predictions(model, task.texts(splits[split]), packer, batch)
    with warnings.catch_warnings():  # one notice per layer type without int8 support
        warnings.simplefilter("ignore", UserWarning)
        model.quantize("int8")
    say("quantised Dense / EinsumDense / Embedding kernels to int8")
    for split in ("validation", "test"):
        report["int8"][split] = task.evaluate(model, splits[split], packer)
        if float_preds[split]:
            report["agreement"][split] = agreement(
                float_preds[split], predictions(model, task.texts(splits[split]), packer,
                                                batch))
    out = export_saved_model(task, model, packer, run_dir / INT8_BASE / cfg.task, version)
    report["export"] = {"path": str(out), "size_mb": round(dir_size_bytes(out) / 2**20, 1)}
    float_export = run_dir / "export" / cfg.task
    if float_export.is_dir():
        report["float_export_size_mb"] = round(
            dir_size_bytes(float_export) / 2**20 / max(1, len(existing_versions(float_export))), 1)
    write_json(run_dir / REPORT, report)
    for split in ("validation", "test"):
        if report["float"][split]:
            say(f"{split} float:\n" + task.format_metrics(report["float"][split]))
            say(f"{split} int8:\n" + task.format_metrics(report["int8"][split]))
            say(f"{split} agreement with float: " + ", ".join(
                f"{k} {v:.4f}" for k, v in report["agreement"][split].items()))
    say(f"exported int8 SavedModel: {out} ({report['export']['size_mb']} MiB); "
        f"report {run_dir / REPORT}")
    keras.backend.clear_session()
    return out
