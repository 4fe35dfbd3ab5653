"""Post-training int8 quantisation of a finished classification run, TF-native, in one of
several modes (all Keras' own int8 kernels with per-channel scales; the export stays a plain
SavedModel that TF Serving loads, with the same op check as every export):

  folded      int8 weights stored as constants of the serving graph; TF's constant folding
              dequantises them once when the model loads, so requests run float32 matmuls
              (size of int8 on disk, speed of float32 in service)
  weights     int8 weight variables, dequantised on every call; float activations
  dynamic     int8 weights and dynamic-range int8 activations (int8 matmuls)
  ffn         dynamic int8 in the feed-forward layers only
  embeddings  the token-embedding table (half the parameters of a small BERT) int8 only

Writes RUN/export-int8/<task>/<version>/ and RUN/quantization.json for the default mode
(RUN/export-int8-<mode>/ and RUN/quantization-<mode>.json for the others): float vs int8
metrics on the run's validation and test splits, and how often their predictions agree.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from tfapp.core import run_layout as layout
from tfapp.core.errors import ConfigError

INT8_BASE = layout.INT8_EXPORT_DIR
REPORT = layout.QUANTIZATION_REPORT
# Chosen from bench.compression on TFNS (bench/RESULTS.md): the fastest mode that is
# no slower than float32 for single requests and batches while much smaller.
DEFAULT_MODE = "folded"
MODES = {
    "folded": "int8 weights as graph constants, dequantised once at load (float32 matmuls)",
    "weights": "int8 weight variables dequantised on every call, float activations",
    "dynamic": "int8 weights and dynamic-range int8 activations (int8 matmuls)",
    "ffn": "dynamic-range int8 in the feed-forward layers only",
    "embeddings": "int8 token-embedding table only",
}
_QUANTIZED_ATTRS = ("_kernel", "kernel_scale", "_embeddings", "embeddings_scale")


def export_base(mode: str) -> str:
    """Where a mode's export goes inside the run: export-int8 for the default mode."""
    return INT8_BASE if mode == DEFAULT_MODE else f"{INT8_BASE}-{mode}"


def report_name(mode: str) -> str:
    return REPORT if mode == DEFAULT_MODE else f"quantization-{mode}.json"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got '{mode}'")
    return mode


def apply_int8(model, mode: str) -> int:
    """Quantises `model` in place in the given mode; returns how many layers are int8."""
    from keras.quantizers import Int8QuantizationConfig

    with warnings.catch_warnings():  # one notice per layer type without int8 support
        warnings.simplefilter("ignore", UserWarning)
        if mode in ("folded", "weights"):
            model.quantize(config=Int8QuantizationConfig(activation_quantizer=None))
        elif mode == "dynamic":
            model.quantize("int8")
        elif mode == "ffn":
            model.quantize("int8", filters="^feedforward_(intermediate|output)_dense$")
        else:
            model.quantize("int8", filters="^token_embedding$")
    layers = [layer for layer in model._flatten_layers()
              if getattr(layer, "quantization_mode", None) == "int8"]
    if mode == "folded":
        for layer in layers:
            fold_to_constants(layer)
    return len(layers)


def fold_to_constants(layer) -> None:
    """Turns an int8 layer's quantised weights from variables into numpy arrays, which
    become constants of every graph that calls the layer: the export stores them as int8,
    and TF's constant folding dequantises them once when the graph is optimised."""
    import keras

    for attr in _QUANTIZED_ATTRS:
        value = layer.__dict__.get(attr)
        if isinstance(value, keras.Variable):
            array = value.numpy()
            delattr(layer, attr)  # Keras untracks it: the export no longer saves it
            setattr(layer, attr, array)


def predictions(model, texts, packer, batch_size: int) -> dict:
    """{output name: argmax class per text} of a functional classification model."""
    import numpy as np

    from tfapp.core.datasets import texts_only_dataset

    if not texts:
        return {}
    out = model.predict(texts_only_dataset(texts, packer, batch_size), verbose=0)
    if not isinstance(out, dict):
        out = {"output": out}
    return {k: np.asarray(v).argmax(axis=-1) for k, v in out.items()}


def agreement(a: dict, b: dict) -> dict:
    return {k: float((a[k] == b[k]).mean()) for k in a}


def quantize_run(run_dir: str | Path, version=None, mode: str = DEFAULT_MODE) -> Path:
    """Quantises a finished run to int8 in `mode`, exports it and writes the float vs int8
    report; returns the export directory."""
    import keras

    from tfapp.core.export_layout import existing_versions
    from tfapp.core.log import say
    from tfapp.core.rundir import dir_size_bytes, write_json
    from tfapp.serving.saved_model import export_saved_model
    from tfapp.training.restore import restore_run

    check_mode(mode)
    run_dir = Path(run_dir)
    restored = restore_run(run_dir)
    cfg, task, model, packer = restored
    if type(model).__name__ != "Functional":
        raise ConfigError(f"{run_dir}: int8 quantisation supports classification runs with a "
                          f"functional Keras model (e.g. sentiment, qa intent mode); this "
                          f"run's model is a {type(model).__name__}")
    splits = task.load_splits()
    batch = cfg.trainer.global_batch_size
    report = {"float": {}, "int8": {}, "agreement": {}}
    # The reference is what the run serves (its export's precision); int8 starts from the
    # float32 weights.
    reference = restored.served()
    report["reference_precision"] = reference.dtype_policy.name
    float_preds = {}
    for split in ("validation", "test"):
        report["float"][split] = task.evaluate(reference, splits[split], packer)
        float_preds[split] = predictions(reference, task.texts(splits[split]), packer, batch)
    del reference
    count = apply_int8(model, mode)
    say(f"int8 mode {mode}: {MODES[mode]}; {count} layer(s) quantised")
    report["mode"] = mode
    for split in ("validation", "test"):
        report["int8"][split] = task.evaluate(model, splits[split], packer)
        if float_preds[split]:
            report["agreement"][split] = agreement(
                float_preds[split], predictions(model, task.texts(splits[split]), packer,
                                                batch))
    out = export_saved_model(task, model, packer, run_dir / export_base(mode) / cfg.task,
                             version)
    report["export"] = {"path": str(out), "size_mb": round(dir_size_bytes(out) / 2**20, 1)}
    float_export = layout.export_base(run_dir, cfg.task)
    if float_export.is_dir():
        report["float_export_size_mb"] = round(
            dir_size_bytes(float_export) / 2**20 / max(1, len(existing_versions(float_export))), 1)
    write_json(run_dir / report_name(mode), report)
    for split in ("validation", "test"):
        if report["float"][split]:
            say(f"{split} float:\n" + task.format_metrics(report["float"][split]))
            say(f"{split} int8:\n" + task.format_metrics(report["int8"][split]))
            say(f"{split} agreement with float: " + ", ".join(
                f"{k} {v:.4f}" for k, v in report["agreement"][split].items()))
    say(f"exported int8 SavedModel: {out} ({report['export']['size_mb']} MiB); "
        f"report {run_dir / report_name(mode)}")
    keras.backend.clear_session()
    return out
