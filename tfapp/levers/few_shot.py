"""levers.few_shot.method: few-shot mode, after SetFit (Tunstall et al. 2022, "Efficient
Few-Shot Learning Without Prompts"). With a handful of labelled examples per class, the
sentence encoder is first fine-tuned contrastively: pairs of training texts, labelled 1
when both have the same class and 0 otherwise (`pairs_per_example` positive and as many
negative pairs per example, seeded), trained so that the cosine of their mean-pooled
embeddings matches the label (the CosineSimilarityLoss of sentence-transformers). The run
then trains from that encoder as usual, or with `head_only: true` trains the task's head
alone on the frozen encoder, as SetFit fits its classifier.

`method: finetune` (default) skips the stage; `setfit` runs it; `auto` runs it when no
class has more than `max_per_class` training examples. The adapted backbone is saved in
RUN/few_shot/backbone (a resumed run reuses it); its record (pairs, seconds, whether it
ran) goes to metrics.json."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Optional

import numpy as np

from tfapp.core.errors import ConfigError
from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text, new_run_dir
from tfapp.core.task_contract import Transferable

METHODS = ("finetune", "setfit", "auto")
STAGE_DIR = "few_shot"


@dataclasses.dataclass
class FewShotConfig:
    method: str = "finetune"  # finetune | setfit | auto (setfit up to max_per_class)
    max_per_class: int = 64
    pairs_per_example: int = 20  # positive pairs per example (and as many negative)
    epochs: int = 1  # contrastive epochs over the pairs
    learning_rate: float = 2e-5
    batch_size: int = 16
    head_only: bool = False  # true: after the stage, train the head on the frozen encoder

    def problems(self) -> list[str]:
        out = [] if self.method in METHODS else [
            f"method must be one of {', '.join(METHODS)}, got '{self.method}'"]
        for key in ("max_per_class", "pairs_per_example", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                out.append(f"{key} must be >= 1")
        if self.learning_rate <= 0:
            out.append("learning_rate must be > 0")
        return out


def contrastive_pairs(classes: np.ndarray, per_example: int, seed: int) -> tuple:
    """(first index, second index, 1.0 same class / 0.0 different) arrays: for each example
    `per_example` partners of its class and as many of other classes (classes of one
    example give no positive pair; a single class gives no negative)."""
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(classes == c) for c in np.unique(classes)}
    first, second, same = [], [], []
    for i, c in enumerate(classes):
        mates = by_class[c][by_class[c] != i]
        others = np.flatnonzero(classes != c)
        for pool, label in ((mates, 1.0), (others, 0.0)):
            if len(pool):
                picks = rng.choice(pool, per_example)
                first += [i] * per_example
                second += picks.tolist()
                same += [label] * per_example
    return np.array(first, int), np.array(second, int), np.array(same, np.float32)


def train_contrastive(loaded, packer, texts: list[str], classes: np.ndarray, config,
                      seed: int) -> int:
    """Fine-tunes `loaded.backbone` on same/different-class pairs; returns the pairs."""
    import keras
    import tensorflow as tf

    first, second, same = contrastive_pairs(classes, config.pairs_per_example, seed)
    if not len(same):
        raise ConfigError("levers.few_shot: no pairs (the training set needs two examples)")
    texts_t = tf.constant(texts)
    ds = (tf.data.Dataset.from_tensor_slices((first, second, same))
          .shuffle(len(same), seed=seed, reshuffle_each_iteration=True)
          .batch(config.batch_size)
          .map(lambda a, b, y: ((packer(tf.gather(texts_t, a)), packer(tf.gather(texts_t, b))),
                                y), num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))

    class PairCosine(keras.Model):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.pool = keras.layers.GlobalAveragePooling1D()

        def embed(self, x, training):
            out = self.backbone(x, training=training)["sequence_output"]
            v = keras.ops.cast(self.pool(out, mask=x["padding_mask"]), "float32")
            return v / keras.ops.maximum(keras.ops.norm(v, axis=-1, keepdims=True), 1e-12)

        def call(self, pair, training=False):
            a, b = pair
            return keras.ops.sum(self.embed(a, training) * self.embed(b, training), axis=-1)

    model = PairCosine(loaded.backbone)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate), loss="mse")
    model.fit(ds, epochs=config.epochs, verbose=2)
    return len(same)


@register_lever
class FewShot(Lever):
    name = "few_shot"
    Config = FewShotConfig
    legacy_train_keys = {"method": "method"}
    order = 15  # after task-adaptive pretraining, before an intermediate task

    @property
    def enabled(self) -> bool:
        return self.config.method != "finetune"

    def applies(self, classes: np.ndarray) -> bool:
        if self.config.method == "setfit":
            return True
        return int(np.bincount(classes).max()) <= self.config.max_per_class

    def prepare(self, cfg, task_cls, run_dir: Optional[str]) -> str:
        from tfapp.core.backbone import TextPacker, load_backbone, save_preset

        if not issubclass(task_cls, Transferable):
            raise ConfigError(f"levers.few_shot: the {cfg.task} task has no classes to pair; "
                              f"set levers.few_shot.method finetune")
        run_dir = run_dir or cfg.run.dir or str(new_run_dir(cfg.run.root, cfg.task))
        folder = Path(run_dir) / STAGE_DIR
        record_file = folder / "record.json"
        if not record_file.is_file():
            task = task_cls(cfg)
            train = task.load_splits()["train"]
            classes = task.example_classes(train)
            record = {"method": self.config.method, "ran": self.applies(classes),
                      "largest_class": int(np.bincount(classes).max())}
            if record["ran"]:
                started = time.perf_counter()
                b = cfg.backbone
                loaded = load_backbone(b.name, b.exact_gelu, b.dropout)
                packer = TextPacker.from_config(loaded.tokenizer, cfg)
                say(f"few-shot: contrastive stage on {len(classes)} examples (largest class "
                    f"{record['largest_class']})")
                record["pairs"] = train_contrastive(loaded, packer, task.texts(train),
                                                    classes, self.config, cfg.seed)
                save_preset(loaded, folder / "backbone", {"few_shot": record["pairs"]})
                record["seconds"] = round(time.perf_counter() - started, 1)
            atomic_write_text(record_file, json.dumps(record, indent=2))
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if record["ran"]:
            say(f"few-shot: training from the contrastive encoder {folder / 'backbone'}")
            cfg.backbone.name = str(folder / "backbone")
        else:
            say(f"few-shot: {record['largest_class']} examples in the largest class > "
                f"levers.few_shot.max_per_class {self.config.max_per_class}: plain fine-tune")
        return run_dir

    ran = False

    def check(self, run) -> None:
        # The driver's levers are fresh instances: decide again, as prepare did.
        self.ran = self.applies(run.task.example_classes(run.splits["train"]))

    def on_model(self, model, loaded) -> None:
        if self.config.head_only and self.ran:
            loaded.backbone.trainable = False

    def after_fit(self, run) -> dict:
        record = json.loads((run.ctx.path / STAGE_DIR / "record.json").read_text(
            encoding="utf-8"))
        return {**record, "head_only": self.config.head_only and self.ran}

    def model_card_lines(self, metrics: dict) -> list[str]:
        r = metrics.get(self.name, {})
        if not r.get("ran"):
            return []
        return [f"- few-shot: contrastive stage on {r['pairs']} same/different-class pairs "
                f"first" + ("; the head then trained on the frozen encoder"
                            if r.get("head_only") else "")]
