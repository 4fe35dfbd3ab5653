"""python -m tfapp.quantize --run RUN_DIR [--version N]

Post-training int8 quantisation of a finished classification run, TF-native: Keras'
`model.quantize("int8")` stores Dense / EinsumDense / Embedding kernels as int8 with
per-channel scales and quantises activations on the fly (dynamic range), so the export
stays a plain SavedModel that TF Serving loads (same op check as every export).

Writes RUN/export-int8/<task>/<version>/ and RUN/quantization.json: float vs int8 metrics
on the run's validation and test splits, and how often their predictions agree.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.errors import ConfigError, cli_main

INT8_BASE = "export-int8"
REPORT = "quantization.json"


def predictions(model, texts, packer, batch_size: int) -> dict:
    """{output name: argmax class per text} of a functional classification model."""
    import numpy as np

    from tfapp.data import texts_only_dataset

    if not texts:
        return {}
    out = model.predict(texts_only_dataset(texts, packer, batch_size), verbose=0)
    if not isinstance(out, dict):
        out = {"output": out}
    return {k: np.asarray(v).argmax(axis=-1) for k, v in out.items()}


def agreement(a: dict, b: dict) -> dict:
    return {k: float((a[k] == b[k]).mean()) for k in a}


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.quantize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="finished run directory")
    parser.add_argument("--version", type=int, help="export version (default: next)")
    args = parser.parse_args(argv)

    import keras

    from tfapp.export import export_saved_model
    from tfapp.rundir import dir_size_bytes, write_json
    from tfapp.trainer import restore_run, say

    cfg, task, model, packer = restore_run(args.run)
    if type(model).__name__ != "Functional":
        raise ConfigError(f"{args.run}: int8 quantisation supports classification runs with a "
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
    base = Path(args.run) / INT8_BASE / cfg.task
    out = export_saved_model(task, model, packer, base, args.version)
    report["export"] = {"path": str(out), "size_mb": round(dir_size_bytes(out) / 2**20, 1)}
    float_export = Path(args.run) / "export" / cfg.task
    if float_export.is_dir():
        report["float_export_size_mb"] = round(dir_size_bytes(float_export) / 2**20
                                               / max(1, sum(1 for p in float_export.iterdir()
                                                            if p.name.isdigit())), 1)
    write_json(Path(args.run) / REPORT, report)
    for split in ("validation", "test"):
        if report["float"][split]:
            say(f"{split} float:\n" + task.format_metrics(report["float"][split]))
            say(f"{split} int8:\n" + task.format_metrics(report["int8"][split]))
            say(f"{split} agreement with float: " + ", ".join(
                f"{k} {v:.4f}" for k, v in report["agreement"][split].items()))
    say(f"exported int8 SavedModel: {out} ({report['export']['size_mb']} MiB); "
        f"report {Path(args.run) / REPORT}")
    keras.backend.clear_session()


if __name__ == "__main__":
    main()
