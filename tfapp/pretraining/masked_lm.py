"""Continued masked-language-model pretraining of the shared backbone on unlabelled
domain text (keras-hub's BertMaskedLM and its preprocessor), in the same run context as
fine-tuning; saves a keras-hub preset directory that `--backbone` accepts in every task.

Corpus files: .txt (one text per non-empty line) or CSV / TSV / JSONL (pretrain.text_column).
Batches come from tfapp.pretraining.masking: bucketed by length and padded to their
longest text, masks re-drawn every epoch (per word piece, or per word with
pretrain.whole_word); validation masks are drawn once, so the validation MLM loss before
and after is comparable. The packaged checkpoint has no MLM head: pretrain.head_steps
first trains the freshly initialised head alone, so its random gradients do not reach the
encoder.
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
    whole_word: bool = False  # true: mask whole words (all their "##" pieces) at mask_rate
    head_steps: int = 0  # steps training the new MLM head alone before the encoder

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.mask_rate < 1:
            out.append("mask_rate must be in (0, 1)")
        if self.max_predictions < 1:
            out.append("max_predictions must be >= 1")
        if not 0 < self.validation_fraction < 1:
            out.append("validation_fraction must be in (0, 1)")
        if self.head_steps < 0:
            out.append("head_steps must be >= 0")
        return out


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

    from tfapp.core.backbone import save_preset
    from tfapp.core.datasets import with_counted_steps
    from tfapp.core.log import say
    from tfapp.core.rundir import write_json
    from tfapp.pretraining.masking import mlm_dataset
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

    batch = cfg.trainer.global_batch_size

    def dataset(items, training):
        return mlm_dataset(items, loaded.tokenizer, cfg.backbone.max_seq_length, batch,
                           rate=p.mask_rate, max_predictions=p.max_predictions,
                           whole_word=p.whole_word, training=training, seed=cfg.seed)

    train_ds, steps = with_counted_steps(dataset(train_texts, True))
    val_ds = dataset(val_texts, False)
    with ctx.scope():
        model = keras_hub.models.BertMaskedLM(backbone=loaded.backbone, preprocessor=None)
    compile_args = dict(
        # Mean over masked tokens only (the padded prediction slots have weight 0), so
        # the loss reads as nats per masked word piece.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="mlm_accuracy")])
    if p.head_steps:
        loaded.backbone.trainable = False
        ctx.compile(model, p.head_steps, train_ds, **compile_args)
        say(f"MLM head alone: {p.head_steps} steps (the encoder frozen)")
        model.fit(train_ds.repeat(), steps_per_epoch=p.head_steps, epochs=1,
                  callbacks=[ctx.guard], verbose=2)
        loaded.backbone.trainable = True
    ctx.compile(model, steps * cfg.trainer.epochs, train_ds, **compile_args)
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
