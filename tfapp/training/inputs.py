"""The driver's input phases: read and check the splits, choose the max length, report
truncation, build the tf.data pipelines."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tfapp.core import run_layout as layout
from tfapp.core.backbone import TextPacker
from tfapp.core.config import Config
from tfapp.core.datasets import count_truncated, with_counted_steps
from tfapp.core.errors import ConfigError
from tfapp.core.log import say


def read_splits(task) -> dict:
    """Reads and validates all data before anything is written."""
    splits = task.load_splits()
    sizes = {k: len(v) for k, v in splits.items()}
    say(f"data: {sizes['train']} train / {sizes['validation']} validation / "
        f"{sizes['test']} test examples")
    for line in split_overlap(task, splits):
        say(line)
    return splits


def split_overlap(task, splits: dict) -> list[str]:
    """Warnings for evaluation examples whose text is also a training example (duplicated
    rows): their scores are optimistic."""
    train = task.example_texts(splits["train"])
    if train is None:
        return []
    seen = {" ".join(t.split()).lower() for t in train}
    out = []
    for split in ("validation", "test"):
        texts = task.example_texts(splits[split]) if len(splits[split]) else []
        both = sum(" ".join(t.split()).lower() in seen for t in texts)
        if both:
            out.append(f"warning: {both} of {len(texts)} {split} texts also appear in the "
                       f"training split (duplicated rows); {split} scores on them are "
                       f"optimistic: deduplicate the data")
    return out


def check_export_version(cfg: Config, run_path: Path) -> None:
    pinned = cfg.export.version
    if pinned is not None and (layout.export_base(run_path, cfg.task) / str(pinned)).exists():
        raise ConfigError(f"export.version {pinned} already exists under {run_path}; "
                          f"versions are never overwritten")


def choose_max_length(cfg: Config, task, loaded, splits: dict) -> None:
    """data.length_percentile: sets backbone.max_seq_length (before the resolved config is
    written) to that percentile of the training texts' lengths, rounded up to a multiple
    of 8 and capped by the configured length: long outliers then cost one truncation
    instead of padded attention over the whole budget."""
    percentile = cfg.data.length_percentile
    texts = task.texts(splits["train"]) if percentile is not None else []
    if not texts:
        return
    cap = cfg.backbone.max_seq_length
    lengths = TextPacker(loaded.tokenizer, cap).token_lengths(texts) + 2  # [CLS], [SEP]
    chosen = int(min(cap, max(8, -(-float(np.percentile(lengths, percentile)) // 8) * 8)))
    say(f"backbone.max_seq_length {chosen}: the {percentile:g}th percentile of training "
        f"token lengths is {np.percentile(lengths, percentile):.0f} (cap {cap}, "
        f"longest {lengths.max()})")
    if cfg.data.window_stride:  # windows must still overlap or touch
        chosen = max(chosen, min(cap, cfg.data.window_stride + 2))
    cfg.backbone.max_seq_length = chosen


def report_truncation(task, packer: TextPacker, splits: dict) -> None:
    text_packer = task.text_packer(packer)
    for split, examples in splits.items():
        texts = task.texts(examples) if len(examples) else []
        if texts:
            n, longest = count_truncated(text_packer, texts)
            if n:
                say(f"{split}: {n} of {len(texts)} texts longer than "
                    f"{text_packer.max_seq_length - 2} word pieces were truncated "
                    f"(longest {longest})")


def make_datasets(task, splits: dict, packer: TextPacker, batch: int):
    """(train, validation, steps per epoch, counted: see with_counted_steps)."""
    train_ds, steps = with_counted_steps(task.dataset(splits["train"], packer, batch,
                                                      training=True))
    return train_ds, task.dataset(splits["validation"], packer, batch, training=False), steps
