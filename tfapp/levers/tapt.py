"""levers.tapt: task-adaptive pretraining (Gururangan et al. 2020, "Don't Stop
Pretraining"): before a run fine-tunes, continue masked-LM pretraining of its backbone on
the run's own training texts, plus any unlabelled in-domain texts named in
levers.tapt.corpus.

The pretraining is a run of its own under RUN/tapt/ (config, metrics, logs, backbone);
the fine-tuning then starts from RUN/tapt/backbone. A resumed run reuses it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

from tfapp.core.config import Config, build_config
from tfapp.core.errors import ConfigError
from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.run_layout import BACKBONE_DIR, TAPT_DIR
from tfapp.core.rundir import atomic_write_text, new_run_dir
from tfapp.pretraining.masked_lm import PretrainConfig, pretrain


@dataclasses.dataclass
class TaptConfig:
    epochs: int = 0  # >0: masked-LM pretraining on the training texts first (RUN/tapt)
    corpus: list[str] = dataclasses.field(default_factory=list)  # extra unlabelled files/globs

    def problems(self) -> list[str]:
        return [] if self.epochs >= 0 else ["epochs must be >= 0"]


def adapt_backbone(cfg: Config, task_cls, run_path: Path) -> Path:
    """Runs task-adaptive pretraining for `cfg` into RUN/tapt and points cfg's backbone at
    the result; returns the backbone directory."""
    import os

    if os.environ.get("TF_CONFIG"):
        raise ConfigError("levers.tapt.epochs runs in a single process; under multi-worker "
                          "training run `python -m tfapp.pretrain` first and pass its "
                          "backbone with --backbone")
    tapt = Path(run_path) / TAPT_DIR
    out = tapt / BACKBONE_DIR
    if not out.is_dir():
        task = task_cls(cfg)
        texts = task.texts(task.load_splits()["train"])  # validated before anything is written
        corpus = tapt / "train_texts.txt"
        atomic_write_text(corpus, "".join(" ".join(t.split()) + "\n" for t in texts))
        lever = cfg.levers.tapt
        raw = {"task": "pretrain", "seed": cfg.seed,
               "backbone": dataclasses.asdict(cfg.backbone),
               "data": dataclasses.asdict(cfg.data),
               "runtime": dataclasses.asdict(cfg.runtime),
               "optimizer": dataclasses.asdict(cfg.optimizer),
               "trainer": {**dataclasses.asdict(cfg.trainer), "epochs": lever.epochs},
               "run": {"dir": str(tapt), "root": cfg.run.root},
               "pretrain": {"corpus": [str(corpus), *lever.corpus]}}
        say(f"task-adaptive pretraining: {lever.epochs} epoch(s) of masked-LM on "
            f"{len(texts)} training texts" + (f" + {', '.join(lever.corpus)}"
                                             if lever.corpus else ""))
        pretrain(build_config(json.loads(json.dumps(raw)), PretrainConfig, "levers.tapt"),
                 str(tapt))
    say(f"fine-tuning from the adapted backbone {out}")
    cfg.backbone.name = str(out)
    return out


@register_lever
class TaskAdaptivePretraining(Lever):
    name = "tapt"
    Config = TaptConfig
    legacy_train_keys = {"tapt_epochs": "epochs", "tapt_corpus": "corpus"}
    order = 10

    @property
    def enabled(self) -> bool:
        return self.config.epochs > 0

    def prepare(self, cfg, task_cls, run_dir: Optional[str]) -> str:
        run_dir = run_dir or cfg.run.dir or str(new_run_dir(cfg.run.root, cfg.task))
        adapt_backbone(cfg, task_cls, run_dir)
        return run_dir

    def model_card_lines(self, metrics: dict) -> list[str]:
        return [f"- backbone adapted first: {self.config.epochs} epoch(s) of masked-LM on the "
                f"training texts (RUN/{TAPT_DIR})"]
