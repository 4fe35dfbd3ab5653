"""Task-adaptive pretraining (Gururangan et al. 2020, "Don't Stop Pretraining"): before a
run fine-tunes, continue masked-LM pretraining of its backbone on the run's own training
texts, plus any unlabelled in-domain texts named in train.tapt_corpus.

The pretraining is a run of its own under RUN/tapt/ (config, metrics, logs, backbone);
the fine-tuning then starts from RUN/tapt/backbone. A resumed run reuses it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tfapp.core.config import Config, build_config
from tfapp.core.errors import ConfigError
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text
from tfapp.pretraining.masked_lm import PretrainConfig, pretrain

TAPT_DIR = "tapt"


def adapt_backbone(cfg: Config, task_cls, run_path: Path) -> Path:
    """Runs task-adaptive pretraining for `cfg` into RUN/tapt and points cfg's backbone at
    the result; returns the backbone directory."""
    import os

    if os.environ.get("TF_CONFIG"):
        raise ConfigError("train.tapt_epochs runs in a single process; under multi-worker "
                          "training run `python -m tfapp.pretrain` first and pass its "
                          "backbone with --backbone")
    tapt = Path(run_path) / TAPT_DIR
    out = tapt / "backbone"
    if not out.is_dir():
        task = task_cls(cfg)
        texts = task.texts(task.load_splits()["train"])  # validated before anything is written
        corpus = tapt / "train_texts.txt"
        atomic_write_text(corpus, "".join(" ".join(t.split()) + "\n" for t in texts))
        raw = {"task": "pretrain", "seed": cfg.seed,
               "backbone": dataclasses.asdict(cfg.backbone),
               "data": dataclasses.asdict(cfg.data),
               "train": {**dataclasses.asdict(cfg.train), "epochs": cfg.train.tapt_epochs,
                         "tapt_epochs": 0, "tapt_corpus": []},
               "run": {"dir": str(tapt), "root": cfg.run.root},
               "pretrain": {"corpus": [str(corpus), *cfg.train.tapt_corpus]}}
        say(f"task-adaptive pretraining: {cfg.train.tapt_epochs} epoch(s) of masked-LM on "
            f"{len(texts)} training texts" + (f" + {', '.join(cfg.train.tapt_corpus)}"
                                             if cfg.train.tapt_corpus else ""))
        pretrain(build_config(json.loads(json.dumps(raw)), PretrainConfig, "train.tapt"),
                 str(tapt))
    say(f"fine-tuning from the adapted backbone {out}")
    cfg.backbone.name = str(out)
    return out


def train_with_adaptation(cfg: Config, task_cls, run_dir=None) -> Path:
    """One fine-tuning run (tfapp.train), after task-adaptive pretraining into the same run
    directory when train.tapt_epochs is set; returns the run directory."""
    from tfapp.training.trainer import train  # heavy: TensorFlow

    if cfg.train.tapt_epochs:
        from tfapp.core.rundir import new_run_dir

        run_dir = run_dir or cfg.run.dir or str(new_run_dir(cfg.run.root, cfg.task))
        adapt_backbone(cfg, task_cls, run_dir)
    return train(cfg, task_cls, run_dir)
