"""levers.intermediate: intermediate-task transfer (Phang et al. 2018, "Sentence Encoders on
STILTs"; Pruksachatkun et al. 2020). Before the run fine-tunes on the user's data, the same
task fine-tunes on a related labelled file (a public financial sentiment set before a bank's
own sentiment labels, CLINC150 before a support bot's intents); the run then starts from
that fine-tuned backbone, and from its class head too when the two label lists are the
same (after `label_map`, which renames the intermediate file's labels).

The intermediate fine-tune is a run of its own under RUN/intermediate/ (config, metrics,
logs, weights; ~10% of its file held out for validation; the run's optimizer and trainer settings,
no other lever, no export) and leaves its backbone as a preset in
RUN/intermediate/tuned_backbone/. A resumed run reuses it."""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Optional

from tfapp.core import run_layout as layout
from tfapp.core.config import Config, levers_config_class
from tfapp.core.datasets import read_rows
from tfapp.core.errors import ConfigError, DataError
from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text, new_run_dir
from tfapp.core.task_contract import Transferable

TUNED_BACKBONE = "tuned_backbone"


@dataclasses.dataclass
class IntermediateConfig:
    train_file: Optional[str] = None  # a related labelled file: the run fine-tunes on it first
    epochs: int = 2
    # Intermediate label -> the run's label (e.g. {bullish: positive}); others keep theirs.
    label_map: dict[str, str] = dataclasses.field(default_factory=dict)

    def problems(self) -> list[str]:
        out = [] if self.epochs >= 1 else ["epochs must be >= 1"]
        if self.train_file is not None and not Path(self.train_file).is_file():
            out.append(f"train_file {self.train_file}: no such file")
        return out


def relabelled_files(path: str, columns: tuple[str, str], label_map: dict, fmt: str,
                     folder: Path, seed: int) -> tuple[Path, Path]:
    """(train.csv, validation.csv) under `folder`: the intermediate file's text and label
    columns, labels renamed by `label_map`, about 10% of each label's rows held out for
    validation (randomly rounded, never a label's last row, so small labels still train),
    each written to a temporary name and then renamed."""
    import csv
    import io

    import numpy as np

    text, label = columns
    by_label: dict[str, list] = {}
    for _, values in read_rows(path, [text, label], fmt):
        name = values[label].strip()
        by_label.setdefault(label_map.get(name, name), []).append(values[text])
    rng = np.random.default_rng(seed)
    parts = {"train": [], "validation": []}
    for name, texts in sorted(by_label.items()):
        order = rng.permutation(len(texts))
        held = min(int(0.1 * len(texts) + rng.random()), len(texts) - 1)
        parts["validation"] += [(texts[i], name) for i in order[:held]]
        parts["train"] += [(texts[i], name) for i in order[held:]]
    if not parts["validation"]:  # tiny labels everywhere: hold out one row of the largest
        name, texts = max(by_label.items(), key=lambda item: len(item[1]))
        if len(texts) < 2:
            raise DataError(path, "too few rows for an intermediate fine-tune (no label has "
                                  "two rows to hold one out for validation)")
        row = parts["train"].index((texts[0], name))
        parts["validation"].append(parts["train"].pop(row))
    out = []
    for split, rows in parts.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([text, label])
        writer.writerows(rows)
        atomic_write_text(folder / f"{split}.csv", buffer.getvalue())
        out.append(folder / f"{split}.csv")
    return out[0], out[1]


def copy_matching_head(model, source) -> list[str]:
    """Copies the weights of every head layer (not the backbone) that `source` has under
    the same name with the same shapes (a head the intermediate task lacked, e.g. topic,
    keeps its fresh initialisation); returns the names copied."""
    import keras_hub

    names = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in model.layers:
        other = names.get(layer.name)
        if isinstance(layer, keras_hub.models.Backbone) or not layer.weights or other is None:
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] == [tuple(v.shape) for v in layer.weights]:
            layer.set_weights(weights)
            copied.append(layer.name)
    return copied


def intermediate_config(cfg: Config, train_file: Path, validation_file: Path,
                        folder: Path) -> Config:
    """`cfg` for the intermediate fine-tune: its files (no test: validation chooses the
    best epoch), levers off, no export, its own run directory."""
    out = copy.deepcopy(cfg)
    out.data.train_file, out.data.validation_file = str(train_file), str(validation_file)
    out.data.test_file, out.data.split = None, [1.0, 0.0, 0.0]
    out.trainer.epochs = cfg.levers.intermediate.epochs
    out.levers = levers_config_class()()
    out.export.enabled = False
    out.export.version = None
    out.run.dir = str(folder)
    return out


@register_lever
class IntermediateTransfer(Lever):
    name = "intermediate"
    Config = IntermediateConfig
    legacy_train_keys = {"intermediate": None}
    order = 20  # after task-adaptive pretraining: it fine-tunes the adapted backbone

    @property
    def enabled(self) -> bool:
        return self.config.train_file is not None

    head_from = None  # the intermediate model, when its class head matches the run's

    def prepare(self, cfg, task_cls, run_dir: Optional[str]) -> str:
        from tfapp.core.backbone import save_preset
        from tfapp.training.driver import train
        from tfapp.training.restore import restore_run

        if not issubclass(task_cls, Transferable):
            raise ConfigError(f"levers.intermediate: the {cfg.task} task cannot fine-tune on "
                              f"an intermediate file; unset levers.intermediate.train_file")
        if os.environ.get("TF_CONFIG"):
            raise ConfigError("levers.intermediate runs in a single process; under "
                              "multi-worker training train the intermediate run first and "
                              "pass its backbone with --backbone")
        run_dir = run_dir or cfg.run.dir or str(new_run_dir(cfg.run.root, cfg.task))
        folder = Path(run_dir) / layout.INTERMEDIATE_DIR
        tuned = folder / TUNED_BACKBONE
        if not tuned.is_dir():
            columns = task_cls(cfg).transfer_columns()
            train_file, validation_file = relabelled_files(
                self.config.train_file, columns, self.config.label_map, cfg.data.format,
                folder, cfg.seed)
            icfg = intermediate_config(cfg, train_file, validation_file, folder / "run")
            task_cls(icfg).for_intermediate(icfg.params)
            say(f"intermediate task: fine-tuning on {self.config.train_file} for "
                f"{self.config.epochs} epoch(s) first ({folder / 'run'})")
            train(icfg, task_cls, str(folder / "run"))
            restored = restore_run(folder / "run")
            save_preset(restored.loaded, tuned, {"intermediate": self.config.train_file,
                                                 "labels": restored.task.class_labels()})
        say(f"fine-tuning from the intermediate task's backbone {tuned}")
        cfg.backbone.name = str(tuned)
        return run_dir

    def check(self, run) -> None:
        from tfapp.training.restore import restore_run

        # prepare pointed the backbone at RUN/intermediate/tuned_backbone (the driver's
        # levers are fresh instances, so the path is all that carries over).
        restored = restore_run(Path(run.cfg.backbone.name).parent / "run")
        theirs, ours = restored.task.class_labels(), run.task.class_labels()
        self.head_from = restored.model if theirs and theirs == ours else None
        self.record = {"train_file": self.config.train_file, "epochs": self.config.epochs,
                       "labels": theirs, "head_kept": self.head_from is not None}
        say("intermediate task: " + ("its class head matches the run's labels and is kept"
                                     if self.head_from is not None else
                                     f"labels differ ({theirs} vs {ours}): a new class head"))

    def on_model(self, model, loaded) -> None:
        if self.head_from is not None:
            copy_matching_head(model, self.head_from)

    def after_fit(self, run) -> dict:
        return self.record

    def model_card_lines(self, metrics: dict) -> list[str]:
        r = metrics[self.name]
        return [f"- intermediate task: fine-tuned first on {r['train_file']} ({r['epochs']} "
                f"epoch(s)); class head " + ("kept" if r["head_kept"] else "new")]
