"""Continued masked-language-model pretraining of the shared backbone on unlabelled
domain text (keras-hub's BertMaskedLM and its preprocessor), in the same run context as
fine-tuning; saves a keras-hub preset directory that `--backbone` accepts in every task.

Corpus files: .txt (one text per non-empty line) or CSV / TSV / JSONL (pretrain.text_column).
Masking is per word piece (keras-hub's MaskedLMMaskGenerator has no whole-word mode),
re-drawn every epoch; validation masks are drawn once, so the validation MLM loss before
and after is comparable.
"""
from __future__ import annotations

import dataclasses
import glob
import time
from pathlib import Path
from typing import Optional

from tfapp.core import run_layout as layout
from tfapp.core.errors import ConfigError, DataError


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
    from tfapp.core.datasets import read_rows

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


def pretrain(cfg, run_dir: Optional[str] = None) -> Path:
    """Runs MLM pretraining in the shared run context; returns the saved backbone directory."""
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from tfapp.core.backbone import save_preset
    from tfapp.core.log import say
    from tfapp.core.rundir import write_json
    from tfapp.training.run_context import RunContext

    started = time.perf_counter()
    p = cfg.params
    ctx = RunContext.start(cfg)
    texts = read_corpus(p.corpus, p.text_column, cfg.data.format)
    order = np.random.default_rng(cfg.seed).permutation(len(texts))
    n_val = max(1, int(round(p.validation_fraction * len(texts))))
    val_texts = [texts[i] for i in order[:n_val]]
    train_texts = [texts[i] for i in order[n_val:]]
    say(f"corpus: {len(train_texts)} training / {len(val_texts)} validation texts")

    loaded = ctx.load_backbone()
    run_path = ctx.choose_run_dir(run_dir, "pretrain")
    out = Path(p.out) if p.out else run_path / layout.BACKBONE_DIR
    if out.exists():
        raise ConfigError(f"{out} already exists; pretraining never overwrites a backbone")
    ctx.open_run_dir()

    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer=loaded.tokenizer, sequence_length=cfg.backbone.max_seq_length,
        mask_selection_rate=p.mask_rate, mask_selection_length=p.max_predictions)
    batch = cfg.trainer.global_batch_size

    def dataset(items, training):
        ds = tf.data.Dataset.from_tensor_slices(items)
        if training:
            ds = ds.shuffle(len(items), seed=cfg.seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch).map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        return (ds if training else ds.cache()).prefetch(tf.data.AUTOTUNE)

    train_ds, val_ds = dataset(train_texts, True), dataset(val_texts, False)
    steps = -(-len(train_texts) // batch)
    with ctx.scope():
        model = keras_hub.models.BertMaskedLM(backbone=loaded.backbone, preprocessor=None)
    ctx.compile(model, steps * cfg.trainer.epochs, train_ds,
                # Mean over masked tokens only (the padded prediction slots have weight
                # 0), so the loss reads as nats per masked word piece.
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction="mean_with_sample_weight"),
                weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(
                    name="mlm_accuracy")])
    before = model.evaluate(val_ds, verbose=0, return_dict=True)
    say(f"validation MLM loss before: {before['loss']:.4f} "
        f"(accuracy {before['mlm_accuracy']:.4f})")
    callbacks = ctx.callbacks(len(train_texts), ["loss", "val_loss", "val_mlm_accuracy"])
    history = ctx.fit(model, train_ds, val_ds, callbacks)
    after = model.evaluate(val_ds, verbose=0, return_dict=True)
    say(f"validation MLM loss after: {after['loss']:.4f} "
        f"(accuracy {after['mlm_accuracy']:.4f})")
    metrics = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
               "validation_before": before, "validation_after": after,
               "train_texts": len(train_texts), "validation_texts": len(val_texts)}
    if ctx.chief:
        save_preset(loaded, out, {"pretrained_from": loaded.source, "corpus": p.corpus,
                                  "validation_mlm_loss_before": before["loss"],
                                  "validation_mlm_loss_after": after["loss"]})
        metrics["backbone"] = str(out)
        metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
        write_json(run_path / layout.METRICS_FILE, metrics)
        say(f"saved backbone: {out} (use it with --backbone {out})")
    ctx.close()
    say(f"done in {time.perf_counter() - started:.0f} s; run dir {run_path}")
    return out
