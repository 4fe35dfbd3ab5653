"""Typed run configuration: dataclasses loaded from YAML, with `--set section.key=value` overrides.

A config file has the framework's sections (backbone, data, train, export, run) and one
section named after the task (e.g. `sentiment:`) whose schema is the task's own dataclass.
Unknown keys anywhere are errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Optional

import yaml

from tfapp.core.errors import ConfigError


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


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 4
    global_batch_size: int = 32  # summed over replicas; per-replica = global / num_replicas
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    clip_norm: float = 1.0
    strategy: str = "auto"  # auto | default | mirrored | multiworker | tpu
    precision: str = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    tpu: Optional[str] = None  # TPU name or grpc:// address for --strategy tpu
    cpu_replicas: int = 1  # >1: logical CPU devices, to try MirroredStrategy without GPUs
    # Layer-wise learning-rate decay: encoder layer i of L learns at
    # learning_rate * layer_decay ** (L + 1 - (i + 1)), the embeddings at decay ** (L + 1),
    # the head at the full rate. 1.0: off.
    layer_decay: float = 1.0
    # The task head (randomly initialised) learns this many times faster than the
    # pretrained backbone (bench/quality_levers: +7 to +8 points). 1.0: one learning rate.
    head_lr_multiplier: float = 20.0
    # Head-only steps first: the backbone's learning rate is zero for this many steps.
    frozen_backbone_steps: int = 0
    # Label smoothing of the classification losses (sentiment, qa intent mode and the
    # retrieval in-batch softmax): 0.1 helped on all of TFNS and of CLINC150
    # (bench/quality_full_levers). 0: off.
    label_smoothing: float = 0.1
    # Task-adaptive pretraining: this many epochs of masked-LM pretraining on the run's own
    # training texts (plus tapt_corpus: unlabelled in-domain files or globs) before
    # fine-tuning, into RUN/tapt/. 0: off.
    tapt_epochs: int = 0
    tapt_corpus: list[str] = dataclasses.field(default_factory=list)
    # Weight averaging: evaluate, keep and export an exponential moving average of the
    # weights (Keras optimizer EMA) with this momentum, e.g. 0.99. 0: off.
    ema_momentum: float = 0.0
    # Weight averaging of the run's own epochs: a greedy soup (keep each epoch's weights;
    # from the best epoch on validation, average in the next-best while validation does
    # not get worse). The best epoch alone when averaging does not help. false: off.
    weight_soup: bool = False
    freeze_token_embeddings: bool = False  # true: the pretrained word pieces stay fixed
    # After validation has chosen the epochs (and soup), train a fresh model on training +
    # validation examples for as many epochs and serve it (about twice the training time).
    refit: bool = False
    # R-Drop: each training example passes twice (two dropout masks) and alpha/2 x the
    # symmetric KL between the two predictions joins the loss (classification outputs
    # only; about twice the compute per step). 0: off.
    rdrop_alpha: float = 0.0
    early_stopping_patience: int = 2
    jit_compile: bool = False  # XLA measured slower than plain TF on 2 CPU cores
    steps_per_execution: int = 1
    # [first, last] training steps (1-based) to capture with the TensorBoard profiler.
    profile_steps: Optional[list[int]] = None


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


@dataclasses.dataclass
class RunConfig:
    dir: Optional[str] = None  # None: runs/<task>/<timestamp>
    root: str = "runs"


FRAMEWORK_SECTIONS = {
    "backbone": BackboneConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "export": ExportConfig,
    "run": RunConfig,
}


@dataclasses.dataclass
class Config:
    """The whole resolved configuration of one run."""

    task: str
    seed: int = 42
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    params: Any = None  # the task's own dataclass, stored in YAML under the task's name

    def to_dict(self) -> dict:
        out = {"task": self.task, "seed": self.seed}
        for name in FRAMEWORK_SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        out[self.task] = dataclasses.asdict(self.params) if self.params is not None else {}
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value, tp, where: str):
    """Checks/converts a YAML value to the annotated type `tp`; `where` names it in errors."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 5e-5 as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}")


def build_dataclass(cls, values, where: str):
    """Builds dataclass `cls` from a mapping, rejecting unknown keys."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key '{key}' (known: {', '.join(sorted(fields))})")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Applies `section.key=value` strings (values parsed as YAML) onto a raw config mapping."""
    for text in overrides or []:
        path, value = _parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    """Reads a YAML config file into a mapping, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        line = f": line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def build_config(raw: dict, task_config_cls, source: str = "config") -> Config:
    """Turns a raw mapping into a typed Config whose task section uses `task_config_cls`."""
    raw = dict(raw)
    task = raw.pop("task", None)
    if not task:
        raise ConfigError(f"{source}: missing 'task'")
    cfg = Config(task=str(task))
    if "seed" in raw:
        cfg.seed = _coerce(raw.pop("seed"), int, f"{source}: seed")
    _upgrade_export_float32(raw)
    for name, cls in FRAMEWORK_SECTIONS.items():
        setattr(cfg, name, build_dataclass(cls, raw.pop(name, None), f"{source}: {name}"))
    cfg.params = build_dataclass(task_config_cls, raw.pop(task, None), f"{source}: {task}")
    if raw:
        known = ["task", "seed", *FRAMEWORK_SECTIONS, task]
        raise ConfigError(
            f"{source}: unknown key '{next(iter(raw))}' (known: {', '.join(known)})")
    validate(cfg, source)
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


def validate(cfg: Config, source: str) -> None:
    """Range checks that types alone cannot express."""
    checks = [
        (cfg.backbone.max_seq_length >= 8, "backbone.max_seq_length must be >= 8"),
        (cfg.backbone.pooling in ("mean", "cls"), "backbone.pooling must be mean or cls"),
        (cfg.backbone.exact_gelu in ("auto", "true", "false"),
         "backbone.exact_gelu must be auto, true or false"),
        (cfg.train.epochs >= 1, "train.epochs must be >= 1"),
        (cfg.export.version is None or cfg.export.version >= 1,
         "export.version must be >= 1 (TF Serving loads positive integer versions)"),
        (cfg.export.precision in EXPORT_PRECISIONS,
         "export.precision must be " + ", ".join(EXPORT_PRECISIONS[:-1])
         + " or " + EXPORT_PRECISIONS[-1]),
        (all(b >= 1 for b in cfg.export.xla_batch_buckets)
         and len(set(cfg.export.xla_batch_buckets)) == len(cfg.export.xla_batch_buckets),
         "export.xla_batch_buckets must be distinct batch sizes >= 1 ([] = off)"),
        (cfg.train.global_batch_size >= 1, "train.global_batch_size must be >= 1"),
        (cfg.train.learning_rate > 0, "train.learning_rate must be > 0"),
        (0 <= cfg.train.warmup_ratio < 1, "train.warmup_ratio must be in [0, 1)"),
        (0 < cfg.train.layer_decay <= 1, "train.layer_decay must be in (0, 1]"),
        (1 <= cfg.train.head_lr_multiplier <= 1000,
         "train.head_lr_multiplier must be in [1, 1000]"),
        (cfg.train.frozen_backbone_steps >= 0, "train.frozen_backbone_steps must be >= 0"),
        (0 <= cfg.train.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
        (cfg.train.tapt_epochs >= 0, "train.tapt_epochs must be >= 0"),
        (0 <= cfg.train.ema_momentum < 1, "train.ema_momentum must be in [0, 1)"),
        (0 <= cfg.train.rdrop_alpha <= 100, "train.rdrop_alpha must be in [0, 100]"),
        (cfg.data.truncation in ("head", "tail", "head_tail"),
         "data.truncation must be head, tail or head_tail"),
        (cfg.data.window_stride is None
         or 1 <= cfg.data.window_stride <= cfg.backbone.max_seq_length - 2,
         "data.window_stride must be null or in [1, backbone.max_seq_length - 2]"),
        (cfg.data.window_pooling in ("mean", "max"), "data.window_pooling must be mean or max"),
        (cfg.data.length_percentile is None or 50 <= cfg.data.length_percentile <= 100,
         "data.length_percentile must be null or in [50, 100]"),
        (cfg.train.strategy in ("auto", "default", "mirrored", "multiworker", "tpu"),
         "train.strategy must be auto, default, mirrored, multiworker or tpu"),
        (cfg.train.precision in ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
         "train.precision must be auto, float32, mixed_float16 or mixed_bfloat16"),
        (len(cfg.data.split) == 3 and all(f >= 0 for f in cfg.data.split)
         and abs(sum(cfg.data.split) - 1.0) < 1e-6,
         "data.split must be three non-negative fractions summing to 1"),
        (cfg.train.profile_steps is None or (len(cfg.train.profile_steps) == 2 and
                                              0 < cfg.train.profile_steps[0]
                                              <= cfg.train.profile_steps[1]),
         "train.profile_steps must be two steps [first, last] with 0 < first <= last"),
        (cfg.data.format in ("auto", "csv", "tsv", "jsonl"),
         "data.format must be auto, csv, tsv or jsonl"),
        (cfg.data.bucket_boundaries == sorted(set(cfg.data.bucket_boundaries)),
         "data.bucket_boundaries must be strictly increasing"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")


def default_config_path(task: str) -> Optional[Path]:
    """configs/<task>.yaml in the working directory, else next to the installed package."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = root / "configs" / f"{task}.yaml"
        if candidate.is_file():
            return candidate
    return None
