"""python -m tfapp.pretrain --corpus FILE_OR_GLOB [--backbone SPEC] [--out DIR]

Continues masked-language-model pretraining of the shared backbone on unlabelled domain
text (keras-hub's BertMaskedLM and its preprocessor), under the same strategy, precision,
TensorBoard and resume machinery as tfapp.train, and saves a keras-hub preset directory
that `--backbone` accepts in every task.

Corpus files: .txt (one text per non-empty line) or CSV / TSV / JSONL (--set
pretrain.text_column=...). Masking is per word piece (keras-hub's MaskedLMMaskGenerator
has no whole-word mode), re-drawn every epoch; validation masks are drawn once, so the
validation MLM loss before and after is comparable.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import tfapp  # noqa: F401
from tfapp.errors import ConfigError, DataError, cli_main

PRESET_INFO = "tfapp_backbone.json"


@dataclasses.dataclass
class PretrainConfig:
    corpus: list[str] = dataclasses.field(default_factory=list)  # files or globs
    text_column: str = "text"  # for CSV / TSV / JSONL corpora
    out: Optional[str] = None  # None: RUN/backbone
    mask_rate: float = 0.15
    max_predictions: int = 20  # masked positions per sequence at most
    validation_fraction: float = 0.05


def read_corpus(patterns: list[str], text_column: str, fmt: str = "auto") -> list[str]:
    """Non-empty texts from every file matching the patterns, in a stable order."""
    from tfapp.data import read_rows

    if not patterns:
        raise ConfigError("no corpus: give --corpus FILE_OR_GLOB")
    texts = []
    for pattern in patterns:
        paths = sorted(glob.glob(pattern, recursive=True)) or [pattern]
        for path in map(Path, paths):
            if path.suffix.lower() == ".txt":
                if not path.is_file():
                    raise DataError(path, "file not found")
                with open(path, "rb") as f:
                    for line_no, raw in enumerate(f, start=1):
                        try:
                            text = raw.decode("utf-8").strip()
                        except UnicodeDecodeError as e:
                            raise DataError(path, f"invalid UTF-8 (byte 0x{raw[e.start]:02x})",
                                            line_no) from None
                        if text:
                            texts.append(text)
            else:
                texts += [v[text_column].strip() for _, v in read_rows(path, [text_column], fmt)
                          if v[text_column].strip()]
    if len(texts) < 2:
        raise DataError(patterns[0], f"corpus has {len(texts)} non-empty text(s); need at "
                                     f"least 2 (one is held out for validation)")
    return texts


def save_preset(loaded, out: Path, info: dict) -> Path:
    """Writes backbone + tokenizer as a keras-hub preset directory, atomically."""
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} already exists; pretraining never overwrites a backbone")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    try:
        loaded.backbone.save_to_preset(str(tmp))
        loaded.tokenizer.save_to_preset(str(tmp))
        # keras-hub's config does not record the activation; tfapp.backbone reads this.
        (tmp / PRESET_INFO).write_text(json.dumps(
            {"exact_gelu": bool(loaded.exact_gelu), **info}, indent=2), encoding="utf-8")
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def pretrain(cfg, run_dir: Optional[str] = None) -> Path:
    """Runs MLM pretraining; returns the saved backbone directory."""
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from tfapp import distribute
    from tfapp.backbone import load_backbone
    from tfapp.callbacks import TrainingStats
    from tfapp.rundir import atomic_write_text, new_run_dir, write_json
    from tfapp.trainer import make_optimizer, say

    started = time.perf_counter()
    p = cfg.params
    say("config:\n" + cfg.to_yaml().rstrip())
    keras.utils.set_random_seed(cfg.seed)
    texts = read_corpus(p.corpus, p.text_column, cfg.data.format)
    order = np.random.default_rng(cfg.seed).permutation(len(texts))
    n_val = max(1, int(round(p.validation_fraction * len(texts))))
    val_texts = [texts[i] for i in order[:n_val]]
    train_texts = [texts[i] for i in order[n_val:]]
    say(f"corpus: {len(train_texts)} training / {len(val_texts)} validation texts")

    placement = distribute.resolve(cfg.train)
    for reason in placement.reasons:
        say(reason)
    with placement.strategy.scope():
        loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu, cfg.backbone.dropout)
    say(f"backbone: {loaded.source}, {loaded.backbone.count_params():,} parameters")
    run_path = Path(run_dir or cfg.run.dir or new_run_dir(cfg.run.root, "pretrain"))
    out = Path(p.out) if p.out else run_path / "backbone"
    if out.exists():
        raise ConfigError(f"{out} already exists; pretraining never overwrites a backbone")
    run_path.mkdir(parents=True, exist_ok=True)
    cfg.run.dir = str(run_path)
    atomic_write_text(run_path / "config.yaml", cfg.to_yaml())

    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer=loaded.tokenizer, sequence_length=cfg.backbone.max_seq_length,
        mask_selection_rate=p.mask_rate, mask_selection_length=p.max_predictions)
    batch = cfg.train.global_batch_size

    def dataset(items, training):
        ds = tf.data.Dataset.from_tensor_slices(items)
        if training:
            ds = ds.shuffle(len(items), seed=cfg.seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch).map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        return (ds if training else ds.cache()).prefetch(tf.data.AUTOTUNE)

    train_ds, val_ds = dataset(train_texts, True), dataset(val_texts, False)
    steps = -(-len(train_texts) // batch)
    with placement.strategy.scope():
        model = keras_hub.models.BertMaskedLM(backbone=loaded.backbone, preprocessor=None)
        optimizer = make_optimizer(cfg.train, steps * cfg.train.epochs)
        if placement.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer,
                      # Mean over masked tokens only (the padded prediction slots have
                      # weight 0), so the loss reads as nats per masked word piece.
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True, reduction="mean_with_sample_weight"),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(
                          name="mlm_accuracy")])
    before = model.evaluate(val_ds, verbose=0, return_dict=True)
    say(f"validation MLM loss before: {before['loss']:.4f} "
        f"(accuracy {before['mlm_accuracy']:.4f})")
    callbacks = [TrainingStats(len(train_texts), ["loss", "val_loss", "val_mlm_accuracy"],
                               printer=say),
                 keras.callbacks.BackupAndRestore(str(run_path / "backup"))]
    if distribute.is_chief(placement.strategy):
        callbacks.append(keras.callbacks.TensorBoard(str(run_path / "logs"),
                                                     update_freq="epoch"))
    history = model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs,
                        callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    after = model.evaluate(val_ds, verbose=0, return_dict=True)
    say(f"validation MLM loss after: {after['loss']:.4f} "
        f"(accuracy {after['mlm_accuracy']:.4f})")
    metrics = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
               "validation_before": before, "validation_after": after,
               "train_texts": len(train_texts), "validation_texts": len(val_texts)}
    if distribute.is_chief(placement.strategy):
        save_preset(loaded, out, {"pretrained_from": loaded.source, "corpus": p.corpus,
                                  "validation_mlm_loss_before": before["loss"],
                                  "validation_mlm_loss_after": after["loss"]})
        metrics["backbone"] = str(out)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
        write_json(run_path / "metrics.json", metrics)
        say(f"saved backbone: {out} (use it with --backbone {out})")
    say(f"done in {time.perf_counter() - started:.0f} s; run dir {run_path}")
    return out


@cli_main
def main(argv=None):
    from tfapp.cli import SHORTCUTS
    from tfapp.config import apply_overrides, build_config, read_yaml

    parser = argparse.ArgumentParser(prog="python -m tfapp.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", default=[], metavar="FILE_OR_GLOB",
                        help="plain-text corpus files or globs (repeatable)")
    parser.add_argument("--out", help="backbone directory to write (default: RUN/backbone)")
    parser.add_argument("--config", help="YAML with backbone/train/run/pretrain sections")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--run-dir", help="run directory; an interrupted run resumes")
    for flag in ("backbone", "strategy", "precision", "tpu", "epochs"):
        parser.add_argument(f"--{flag}")
    args = parser.parse_args(argv)
    raw = read_yaml(args.config) if args.config else {}
    raw.setdefault("task", "pretrain")
    overrides = list(args.set)
    for flag in ("backbone", "strategy", "precision", "tpu", "epochs"):
        if getattr(args, flag) is not None:
            overrides.append(f"{SHORTCUTS[flag]}={getattr(args, flag)}")
    if args.corpus:
        overrides.append(f"pretrain.corpus={json.dumps(args.corpus)}")
    if args.out:
        overrides.append(f"pretrain.out={json.dumps(args.out)}")
    cfg = build_config(apply_overrides(raw, overrides), PretrainConfig,
                       args.config or "pretrain")
    if not 0 < cfg.params.mask_rate < 1:
        raise ConfigError("pretrain.mask_rate must be in (0, 1)")
    pretrain(cfg, args.run_dir)


if __name__ == "__main__":
    main()
