"""The recipes and suites of bench.quality: each tfapp recipe is the shipped config plus
`--set` overrides; a suite says which samples of the real data sets, which recipes and
which data sets one `python -m bench.quality --suite NAME` run trains."""
from __future__ import annotations

import dataclasses
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DATASETS = ("tfns", "clinc150", "clinc150_retrieval", "tfns_4k")
SPEED_ROWS = 4000  # tfns_4k: training rows of the speed check
# Each tfapp recipe is the default config plus these overrides.
RECIPES = {
    "default": [],
    "layer_decay": ["optimizer.layer_decay=0.8"],
    # The default since it was measured on full data (bench/quality_full_levers): the
    # first recipe names those runs, the second turns it off.
    "label_smoothing": ["trainer.label_smoothing=0.1"],
    "no_label_smoothing": ["trainer.label_smoothing=0"],
    "head_first": ["optimizer.frozen_backbone_steps=10"],
    # The default since it was measured (bench/quality_levers): this recipe turns it off.
    "no_head_lr": ["optimizer.head_lr_multiplier=1"],
    "class_weights": ["sentiment.class_weights=balanced"],  # sentiment only
    # ~50-step averaging horizon: a quick-suite run has ~150 steps in all.
    "ema": ["levers.ema.momentum=0.98"],
    # Levers measured on full data (bench/quality_full_levers), where a run has ~1,000 steps.
    "lr_5e-5": ["optimizer.learning_rate=5e-5"],
    "ema_slow": ["levers.ema.momentum=0.999"],
    "tapt": ["levers.tapt.epochs=3"],
    "float32": ["runtime.precision=float32"],
    "epochs_3": ["trainer.epochs=3"],
    "epochs_2": ["trainer.epochs=2"],
    "batch_16": ["trainer.global_batch_size=16"],
    "lr_1.5e-4": ["optimizer.learning_rate=1.5e-4"],
    "warmup_0": ["optimizer.warmup_ratio=0"],
    "warmup_0.2": ["optimizer.warmup_ratio=0.2"],
    # The backbone's dropout (the checkpoint's is 0.1).
    "dropout_0": ["backbone.dropout=0"],
    "dropout_0.2": ["backbone.dropout=0.2"],
    "weight_decay_0.1": ["optimizer.weight_decay=0.1"],
    "head_lr_5": ["optimizer.head_lr_multiplier=5"],
    "weight_soup": ["levers.weight_soup.enabled=true"],
    "freeze_embeddings": ["levers.frozen_embeddings.enabled=true"],
    "rdrop": ["levers.rdrop.alpha=1"],
    "rdrop_soup": ["levers.rdrop.alpha=1", "levers.weight_soup.enabled=true"],
    "refit": ["levers.refit.enabled=true"],
    # Three seeds distilled into one model; the run also reports the first member alone
    # and the 3-member ensemble (bench.dev_suite).
    "ensemble": ["levers.ensemble.members=3"],
    # SetFit-style contrastive stage first (the few_<n> suites of bench.dev_suite).
    "setfit": ["levers.few_shot.method=setfit"],
    # Fine-tune on a related set first (bench.dev_suite adds the set's file, leave-one-out).
    "intermediate": ["levers.intermediate.epochs=2"],
}


@dataclasses.dataclass
class Suite:
    backbone: str
    tfns_train: int | None  # sampled training rows (None: all)
    clinc_per_intent: int | None  # sampled training questions per intent (None: all)
    test_rows: int | None  # sampled evaluation rows (None: all)
    epochs: int | None  # None: each recipe's own
    recipes: tuple
    datasets: tuple = ("tfns", "clinc150", "clinc150_retrieval")
    validation_rows: int | None = None  # sampled CLINC150 validation rows (None: all)
    clinc_intents: int | None = None  # a seeded subset of CLINC150's intents (None: all 150)
    clinc_oos_train: int | None = None  # sampled out-of-scope training questions (None: all)


LEVERS = ("layer_decay", "no_label_smoothing", "head_first", "no_head_lr", "class_weights", "ema")
SUITES = {
    "smoke": Suite("tiny", 60, 2, 60, 1, ("reference", "default", "layer_decay")),
    # Small samples (CLINC150: 50 of its intents, 6 questions each, plus 30 out-of-scope)
    # so reference + default over 3 seeds and 3 data sets take ~12 minutes on 2 cores;
    # `full` gives the real numbers.
    "quick": Suite("default", 240, 6, 500, None, ("reference", "default"),
                   validation_rows=300, clinc_oos_train=30, clinc_intents=50),
    "full": Suite("default", None, None, None, None, ("reference", "default") + LEVERS,
                  datasets=DATASETS),
}
# The quick samples with every lever: what each does to the default, like for like.
SUITES["levers"] = dataclasses.replace(SUITES["quick"], recipes=("reference", "default") + LEVERS)


def shipped_settings() -> dict:
    """The shipped value of every key a recipe sets (a task's own section from
    configs/<task>.yaml, the shared sections from configs/sentiment.yaml): what each
    recipe's overrides are relative to, so runs made under different defaults are never
    tabled together."""
    from tfapp.core.config import build_config, read_yaml
    from tfapp.core.task_contract import get_task

    configs = {task: build_config(read_yaml(REPO / "configs" / f"{task}.yaml"),
                                  get_task(task).Config, task).to_dict()
               for task in ("sentiment", "qa")}
    out = {}
    for key in sorted({s.split("=", 1)[0] for sets in RECIPES.values() for s in sets}):
        section, *path = key.split(".")
        node = configs.get(section, configs["sentiment"])[section]
        for part in path:
            node = node[part]
        out[key] = node
    return out
