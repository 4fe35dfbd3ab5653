"""Typed run configuration: dataclasses loaded from YAML, with `--set section.key=value` overrides.

Sections: runtime (where and in what precision it runs), optimizer, trainer (the loop),
levers (one sub-section per lever plugin, tfapp.core.lever), data, backbone, export, run,
and one section named after the task (e.g. `sentiment:`) whose schema is the task's own
dataclass. Every section validates itself (`problems()`); unknown keys anywhere are
errors. Configs and run dirs written with the older flat `train:` section still load
(`upgrade_raw`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import yaml

from tfapp.core import typed_yaml
from tfapp.core.errors import ConfigError
from tfapp.core.lever import lever_classes
from tfapp.core.typed_yaml import build_dataclass, coerce, read_yaml

__all__ = ["Config", "apply_overrides", "build_config", "build_dataclass", "read_yaml",
           "default_config_path"]


def _failed(checks: list[tuple[bool, str]]) -> list[str]:
    return [message for ok, message in checks if not ok]


@dataclasses.dataclass
class BackboneConfig:
    # default: the packaged all-MiniLM-L6-v2; tiny: random small BERT for tests;
    # otherwise a local Hugging Face BERT directory or keras-hub preset directory.
    name: str = "default"
    max_seq_length: int = 128
    # mean: mean of sequence_output under the padding mask (what sentence-embedding
    # checkpoints such as MiniLM are trained for); cls: BERT's pooled [CLS] output.
    pooling: str = "mean"
    # keras-hub BERT uses tanh-approximate GELU; HF checkpoints with hidden_act=gelu use exact.
    # auto: follow the checkpoint's config.json.
    exact_gelu: str = "auto"
    dropout: Optional[float] = None  # None keeps the checkpoint's dropout rate

    def problems(self) -> list[str]:
        return _failed([
            (self.max_seq_length >= 8, "max_seq_length must be >= 8"),
            (self.pooling in ("mean", "cls"), "pooling must be mean or cls"),
            (self.exact_gelu in ("auto", "true", "false"),
             "exact_gelu must be auto, true or false"),
            (self.dropout is None or 0 <= self.dropout < 1, "dropout must be null or in [0, 1)"),
        ])


@dataclasses.dataclass
class DataConfig:
    train_file: Optional[str] = None  # None: the task's built-in sample
    validation_file: Optional[str] = None  # None: split off the training file
    test_file: Optional[str] = None  # None: split off the training file
    # Fractions for the seeded, label-stratified split used for files not given above.
    split: list[float] = dataclasses.field(default_factory=lambda: [0.8, 0.1, 0.1])
    format: str = "auto"  # auto (by extension) | csv | tsv | jsonl
    # Batches group texts of similar token length to cut padding; these are the bucket edges
    # (8 word pieces apart up to 64: on 4,000 TFNS sentences training padding fell from
    # 19% with edges 16, 32, 48, 64, 96 to 11%).
    bucket_boundaries: list[int] = dataclasses.field(
        default_factory=lambda: [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112])
    shuffle_buffer: int = 10000
    cache: bool = True
    # Pad to bucket edges (the last edge is max_seq_length) and drop partial training
    # batches, so every batch has one of a few fixed shapes: what TPUs (XLA) need.
    # Switched on automatically under --strategy tpu.
    static_shapes: bool = False
    # Which word pieces a text longer than backbone.max_seq_length keeps:
    # head | tail | head_tail (the first quarter and the last three quarters of the budget).
    truncation: str = "head"
    # Choose the max length from the training data: this percentile of its token lengths
    # (rounded up to a multiple of 8, capped by backbone.max_seq_length). null: the cap.
    length_percentile: Optional[float] = None
    # Sliding-window inference: a text longer than max_seq_length is scored as windows of
    # max_seq_length - 2 word pieces, this many apart, whose logits (or embeddings) are
    # pooled (window_pooling: mean | max), in evaluation and inside the export alike.
    # null: long texts are truncated (data.truncation). Training uses one window per text.
    window_stride: Optional[int] = None
    window_pooling: str = "mean"

    def problems(self) -> list[str]:
        return _failed([
            (len(self.split) == 3 and all(f >= 0 for f in self.split)
             and abs(sum(self.split) - 1.0) < 1e-6,
             "split must be three non-negative fractions summing to 1"),
            (self.format in ("auto", "csv", "tsv", "jsonl"),
             "format must be auto, csv, tsv or jsonl"),
            (self.bucket_boundaries == sorted(set(self.bucket_boundaries)),
             "bucket_boundaries must be strictly increasing"),
            (self.truncation in ("head", "tail", "head_tail"),
             "truncation must be head, tail or head_tail"),
            (self.window_stride is None or self.window_stride >= 1,
             "window_stride must be null or >= 1"),
            (self.window_pooling in ("mean", "max"), "window_pooling must be mean or max"),
            (self.length_percentile is None or 50 <= self.length_percentile <= 100,
             "length_percentile must be null or in [50, 100]"),
        ])


@dataclasses.dataclass
class RuntimeConfig:
    strategy: str = "auto"  # auto | default | mirrored | multiworker | tpu
    precision: str = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    tpu: Optional[str] = None  # TPU name or grpc:// address for --strategy tpu
    cpu_replicas: int = 1  # >1: logical CPU devices, to try MirroredStrategy without GPUs
    jit_compile: bool = False  # XLA measured slower than plain TF on 2 CPU cores
    steps_per_execution: int = 1
    # [first, last] training steps (1-based) to capture with the TensorBoard profiler.
    profile_steps: Optional[list[int]] = None

    def problems(self) -> list[str]:
        steps = self.profile_steps
        return _failed([
            (self.strategy in ("auto", "default", "mirrored", "multiworker", "tpu"),
             "strategy must be auto, default, mirrored, multiworker or tpu"),
            (self.precision in ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
             "precision must be auto, float32, mixed_float16 or mixed_bfloat16"),
            (self.cpu_replicas >= 1, "cpu_replicas must be >= 1"),
            (self.steps_per_execution >= 1, "steps_per_execution must be >= 1"),
            (steps is None or (len(steps) == 2 and 0 < steps[0] <= steps[1]),
             "profile_steps must be two steps [first, last] with 0 < first <= last"),
        ])


@dataclasses.dataclass
class OptimizerConfig:
    """AdamW with warm-up and cosine decay, and the per-variable learning-rate levers."""
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    clip_norm: float = 1.0
    # Layer-wise learning-rate decay: encoder layer i of L learns at
    # learning_rate * layer_decay ** (L + 1 - (i + 1)), the embeddings at decay ** (L + 1),
    # the head at the full rate. 1.0: off.
    layer_decay: float = 1.0
    # The task head (randomly initialised) learns this many times faster than the
    # pretrained backbone (+7 to +8 points on the quick suite). 1.0: one learning rate.
    head_lr_multiplier: float = 20.0
    # Head-only steps first: the backbone's learning rate is zero for this many steps.
    frozen_backbone_steps: int = 0

    def problems(self) -> list[str]:
        return _failed([
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (self.clip_norm >= 0, "clip_norm must be >= 0 (0: off)"),
            (0 < self.layer_decay <= 1, "layer_decay must be in (0, 1]"),
            (1 <= self.head_lr_multiplier <= 1000, "head_lr_multiplier must be in [1, 1000]"),
            (self.frozen_backbone_steps >= 0, "frozen_backbone_steps must be >= 0"),
        ])


@dataclasses.dataclass
class TrainerConfig:
    """The training loop."""
    epochs: int = 4
    global_batch_size: int = 32  # summed over replicas; per-replica = global / num_replicas
    early_stopping_patience: int = 2
    # Label smoothing of the classification losses (sentiment, qa intent mode and the
    # retrieval in-batch softmax): 0.1 helped on all of TFNS and of CLINC150. 0: off.
    label_smoothing: float = 0.1

    def problems(self) -> list[str]:
        return _failed([
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.global_batch_size >= 1, "global_batch_size must be >= 1"),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
        ])


EXPORT_PRECISIONS = ("auto", "float32", "bfloat16", "trained")


@dataclasses.dataclass
class ExportConfig:
    enabled: bool = True
    version: Optional[int] = None  # None: one above the highest existing version
    # What the exported model computes in: auto | float32 | bfloat16 | trained.
    # auto: bfloat16 when the exporting machine is a CPU with bfloat16 instructions
    # (avx512_bf16 / amx_bf16) and XLA serving is off, float32 otherwise (the reason is
    # logged). trained: the training precision as it is. Any other choice is a copy of the
    # trained model with the same weights.
    precision: str = "auto"
    # XLA-compiled serving: batches of up to max(xla_batch_buckets) texts are padded to the
    # next of these sizes (and their length to the next power of two from 16, at most
    # backbone.max_seq_length) and run as one XLA program per shape; larger batches take
    # the plain path. [] = off. TF Serving needs --xla_cpu_compilation_enabled=true.
    xla_batch_buckets: list[int] = dataclasses.field(default_factory=list)
    # Serving profile (tfapp.serving.model_server_files): auto | latency | throughput;
    # latency serves small batches XLA-compiled ([1, 2, 4, 8] unless xla_batch_buckets is
    # set). Recorded in the export; tfapp.serving_config writes the server flags for it.
    profile: str = "auto"

    def problems(self) -> list[str]:
        if self.profile == "latency" and not self.xla_batch_buckets:
            self.xla_batch_buckets = [1, 2, 4, 8]  # resolved here: printed and saved
        buckets = self.xla_batch_buckets
        return _failed([
            (self.version is None or self.version >= 1,
             "version must be >= 1 (TF Serving loads positive integer versions)"),
            (self.precision in EXPORT_PRECISIONS,
             "precision must be " + ", ".join(EXPORT_PRECISIONS[:-1]) + " or "
             + EXPORT_PRECISIONS[-1]),
            (all(b >= 1 for b in buckets) and len(set(buckets)) == len(buckets),
             "xla_batch_buckets must be distinct batch sizes >= 1 ([] = off)"),
            (self.profile in ("auto", "latency", "throughput"),
             "profile must be auto, latency or throughput"),
            (self.profile != "throughput" or not buckets,
             "profile throughput serves the plain (uncompiled) path: leave xla_batch_buckets "
             "empty"),
        ])


@dataclasses.dataclass
class RunConfig:
    dir: Optional[str] = None  # None: runs/<task>/<timestamp>
    root: str = "runs"


FRAMEWORK_SECTIONS = {
    "runtime": RuntimeConfig,
    "optimizer": OptimizerConfig,
    "trainer": TrainerConfig,
    "data": DataConfig,
    "backbone": BackboneConfig,
    "export": ExportConfig,
    "run": RunConfig,
}
# The sections in the order a config is written (levers: tfapp.core.lever's plugins).
SECTION_ORDER = ("runtime", "optimizer", "trainer", "levers", "data", "backbone", "export",
                 "run")
# Where each key of the old flat `train:` section lives now (levers declare their own).
TRAIN_KEYS_MOVED = {
    **{f.name: "runtime" for f in dataclasses.fields(RuntimeConfig)},
    **{f.name: "optimizer" for f in dataclasses.fields(OptimizerConfig)},
    **{f.name: "trainer" for f in dataclasses.fields(TrainerConfig)},
}


def levers_config_class() -> type:
    """The `levers:` section: one field per lever plugin, holding its Config dataclass."""
    fields = [(name, cls.Config, dataclasses.field(default_factory=cls.Config))
              for name, cls in lever_classes().items()]
    return dataclasses.make_dataclass("LeversConfig", fields)


@dataclasses.dataclass
class Config:
    """The whole resolved configuration of one run."""

    task: str
    seed: int = 42
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    levers: Any = None  # levers_config_class()
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    params: Any = None  # the task's own dataclass, stored in YAML under the task's name

    def __post_init__(self):
        if self.levers is None:
            self.levers = levers_config_class()()

    def to_dict(self) -> dict:
        out = {"task": self.task, "seed": self.seed}
        for name in SECTION_ORDER:
            out[name] = dataclasses.asdict(getattr(self, name))
        out[self.task] = dataclasses.asdict(self.params) if self.params is not None else {}
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def problems(self) -> list[str]:
        """Checks that span sections."""
        stride = self.data.window_stride
        return _failed([
            (stride is None or stride <= self.backbone.max_seq_length - 2,
             "data.window_stride must be null or in [1, backbone.max_seq_length - 2]"),
        ])


def upgrade_raw(raw: dict) -> dict:
    """Configs (and run dirs) of earlier versions, as today's sections: the flat `train:`
    section split into runtime / optimizer / trainer / levers, and export.float32 as
    export.precision. A key given in both places keeps the new section's value."""
    raw = dict(raw)
    _upgrade_export_float32(raw)
    train = raw.pop("train", None)
    if train is None:
        return raw
    if not isinstance(train, dict):
        raise ConfigError(f"train: expected a mapping, got {train!r}")
    lever_keys = {old: (name, new) for name, cls in lever_classes().items()
                  for old, new in cls.legacy_train_keys.items()}
    for key, value in train.items():
        if key in TRAIN_KEYS_MOVED:
            section = raw.setdefault(TRAIN_KEYS_MOVED[key], {})
            new_key = key
        elif key in lever_keys:
            name, new_key = lever_keys[key]
            section = raw.setdefault("levers", {}).setdefault(name, {})
        else:
            known = sorted([*TRAIN_KEYS_MOVED, *lever_keys])
            raise ConfigError(f"train: unknown key '{key}' (known: {', '.join(known)})")
        if not isinstance(section, dict):
            continue
        if new_key is None:  # the old key held the whole section (train.intermediate: {...})
            if not isinstance(value, dict):
                raise ConfigError(f"train.{key}: expected a mapping, got {value!r}")
            for k, v in value.items():
                section.setdefault(k, v)
        else:
            section.setdefault(new_key, value)
    return raw


def _merge(into: dict, new: dict, text: str) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, text)
        elif isinstance(value, dict) and into.get(key) is not None:
            raise ConfigError(f"--set {text!r}: '{key}' is not a section")
        else:
            into[key] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Applies `section.key=value` strings (values parsed as YAML) onto a raw config
    mapping, after upgrading it; an override with an old key (train.epochs=1) sets the key
    where it lives now (trainer.epochs) and wins over the file's value."""
    raw = upgrade_raw(raw)
    for text in overrides or []:
        single = upgrade_raw(typed_yaml.apply_overrides({}, [text]))
        _merge(raw, single, text)
    return raw


def build_config(raw: dict, task_config_cls, source: str = "config") -> Config:
    """Turns a raw mapping into a typed Config whose task section uses `task_config_cls`."""
    raw = upgrade_raw(raw)
    task = raw.pop("task", None)
    if not task:
        raise ConfigError(f"{source}: missing 'task'")
    cfg = Config(task=str(task))
    if "seed" in raw:
        cfg.seed = coerce(raw.pop("seed"), int, f"{source}: seed")
    for name, cls in {**FRAMEWORK_SECTIONS, "levers": levers_config_class()}.items():
        setattr(cfg, name, build_dataclass(cls, raw.pop(name, None), f"{source}: {name}"))
    cfg.params = build_dataclass(task_config_cls, raw.pop(task, None), f"{source}: {task}")
    if raw:
        known = ["task", "seed", *SECTION_ORDER, task]
        raise ConfigError(
            f"{source}: unknown key '{next(iter(raw))}' (known: {', '.join(known)})")
    found = cfg.problems()
    if found:
        raise ConfigError(f"{source}: {found[0]}")
    return cfg


def _upgrade_export_float32(raw: dict) -> None:
    """Configs (and run dirs) written before export.precision said export.float32:
    true meant a float32 export, false the training precision."""
    export = raw.get("export")
    if isinstance(export, dict) and "float32" in export:
        export = dict(export)
        legacy = export.pop("float32")
        export.setdefault("precision", "float32" if legacy in (True, "true", None) else "trained")
        raw["export"] = export


def default_config_path(task: str) -> Optional[Path]:
    """configs/<task>.yaml in the working directory, else the repository's configs/ beside
    the installed package (an editable or source install)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "configs" / f"{task}.yaml"
        if candidate.is_file():
            return candidate
    return None


RECIPE_DIR = Path("configs") / "recipes"


def recipe_names() -> list[str]:
    """The shipped recipes: configs/recipes/<name>.yaml (working directory first)."""
    names = set()
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        names |= {p.stem for p in (root / RECIPE_DIR).glob("*.yaml")}
    return sorted(names)


def apply_recipe(raw: dict, name: Optional[str]) -> dict:
    """`raw` with recipe `name`'s settings (configs/recipes/<name>.yaml, the keys it
    changes) merged over it; a `recipe:` key in `raw` names one when `name` is None.
    Overrides applied afterwards (--set) win over the recipe."""
    raw = dict(raw)
    name = name or raw.pop("recipe", None)
    raw.pop("recipe", None)
    if name is None:
        return raw
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        path = root / RECIPE_DIR / f"{name}.yaml"
        if path.is_file():
            recipe = upgrade_raw(read_yaml(path))
            recipe.pop("task", None)
            merged = upgrade_raw(raw)
            _merge(merged, recipe, f"recipe {name}")
            return merged
    raise ConfigError(f"unknown recipe '{name}' (known: {', '.join(recipe_names()) or 'none'})")
