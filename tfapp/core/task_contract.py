"""The task contract (everything the driver, exporter and commands may ask of a task), its
optional capabilities, the examples type every task's data uses, and the registry that
finds task packages by name.

A task subclasses `Task` and implements its abstract core: data (`load_splits`,
`read_file`, `texts`, `dataset`), model (`build_model`, `compile_args`, `monitor`),
evaluation (`evaluate`, `format_metrics`) and serving (`serving_root`, `example_inputs`).
What only some tasks can do is declared by also subclassing a capability:
`Calibrated` (a decision threshold fitted on validation), `Refittable` (trains on its
validation data too) and `ClassLogits` (outputs R-Drop can regularise). Everything else
has a default that a task may override. `tests/test_task_contract.py` runs the contract
checks on every registered task."""
from __future__ import annotations

import abc
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any, ClassVar, Optional

import keras
import numpy as np
import tensorflow as tf

from tfapp.core import config as tfconfig
from tfapp.core.backbone import LoadedBackbone, TextPacker
from tfapp.core.datasets import seeded_split
from tfapp.core.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")


class Examples:
    """Base of every task's examples: a dataclass whose fields are per-example columns
    (lists, arrays, or None for an absent column) plus `source`, the file they came from.
    Gives them `len` and `subset`, which the seeded splits and refit use."""

    source: str

    def _columns(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if f.name != "source"]

    def __len__(self) -> int:
        return len(getattr(self, self._columns()[0]))

    def subset(self, idx, source: str):
        """The examples at positions `idx`, from `source`."""
        def pick(column):
            if column is None:
                return None
            if isinstance(column, np.ndarray):
                return column[np.asarray(idx, dtype=int)]
            return [column[i] for i in idx]
        return dataclasses.replace(self, source=source,
                                   **{name: pick(getattr(self, name))
                                      for name in self._columns()})


class Task(abc.ABC):
    """One domain task on the shared backbone. Subclasses register with @register."""

    name: ClassVar[str]
    Config: ClassVar[type]  # the dataclass of this task's config section

    def __init__(self, config: tfconfig.Config):
        self.config = config
        self.params = config.params

    # --- data (required) ------------------------------------------------------------
    @abc.abstractmethod
    def load_splits(self) -> dict[str, Any]:
        """Reads and validates train/validation/test; may resolve label vocabularies into
        self.params so the saved config can rebuild the model."""

    @abc.abstractmethod
    def read_file(self, path: str) -> Any:
        """Reads and validates one labelled file (for evaluation) with the run's labels."""

    @abc.abstractmethod
    def texts(self, examples) -> list[str]:
        """Every text the examples feed the encoder (for length and truncation reports,
        task-adaptive pretraining)."""

    @abc.abstractmethod
    def dataset(self, examples, packer: TextPacker, batch_size: int,
                training: bool) -> tf.data.Dataset:
        """The tf.data pipeline of `examples`: tokenised in graph, batched."""

    # --- model (required) -----------------------------------------------------------
    @abc.abstractmethod
    def build_model(self, loaded: LoadedBackbone) -> keras.Model:
        """The task's head on the loaded backbone."""

    @abc.abstractmethod
    def compile_args(self) -> dict:
        """loss / loss_weights / metrics for model.compile."""

    @abc.abstractmethod
    def monitor(self) -> tuple[str, str]:
        """(validation log key, 'max' | 'min') for early stopping and best checkpoints."""

    # --- evaluation and serving (required) ------------------------------------------
    @abc.abstractmethod
    def evaluate(self, model: keras.Model, examples, packer: TextPacker) -> dict:
        """Whole-set metrics, JSON-serialisable."""

    @abc.abstractmethod
    def format_metrics(self, metrics: dict) -> str:
        """A human-readable table of `evaluate`'s result."""

    @abc.abstractmethod
    def serving_root(self, model: keras.Model, packer: TextPacker) -> tuple[tf.Module, dict]:
        """(object to save, {signature name: tf.function taking raw inputs}) for the
        SavedModel export; one signature must be serving_default. `model_serving_root`
        builds it for a task that serves its Keras model as it is."""

    @abc.abstractmethod
    def example_inputs(self) -> dict:
        """{signature name: sample inputs (a dict of arrays)} for export checks."""

    # --- defaults a task may override -----------------------------------------------
    def sample_file(self) -> Optional[Path]:
        """The built-in sample used when data.train_file is not set."""
        return None

    def complete_splits(self, examples: dict, files: dict, stratify, empty,
                        why_validation: str = "") -> dict:
        """Carves each split that has no file of its own out of the training examples
        (seeded, stratified by `stratify(train examples)`, fractions from data.split), fills
        absent splits with `empty()`, and refuses an empty training or validation split.
        Examples need `subset(indices, source)`, `source` and `len`."""
        fractions = [0.0 if (s != "train" and files.get(s)) else f
                     for s, f in zip(SPLITS, self.config.data.split)]
        if sum(fractions[1:]) > 0:
            total = sum(fractions)
            full = examples["train"]
            parts = seeded_split(stratify(full), [f / total for f in fractions],
                                 self.config.seed)
            for split, idx in zip(SPLITS, parts):
                if split == "train" or not files.get(split):
                    examples[split] = full.subset(idx, f"{full.source} ({split} split)")
        for split in SPLITS:
            examples.setdefault(split, empty())
        if len(examples["train"]) == 0:
            raise DataError(files["train"], "no training rows left after the split")
        if len(examples["validation"]) == 0:
            if fractions[1] > 0:  # the fraction is there; the file is too small for it
                raise DataError(files["train"], f"too few rows to split off validation data "
                                                f"({len(examples['train'])} left for "
                                                f"training): add rows or set "
                                                f"data.validation_file" + why_validation)
            raise ConfigError("no validation data: set data.validation_file or give the "
                              "validation split a non-zero fraction in data.split"
                              + why_validation)
        return examples

    def text_packer(self, packer: TextPacker) -> TextPacker:
        """The packer `texts` are truncated by (for the truncation report)."""
        return packer

    def training_size(self, examples) -> int:
        """Training examples per epoch (for examples/s), e.g. clicks rather than rows."""
        return len(examples)

    def example_texts(self, examples) -> Optional[list[str]]:
        """One input text per example, for reporting rows that appear in both training and
        evaluation splits; None where examples are not single texts."""
        return None

    def summary_keys(self) -> list[str]:
        """Log keys shown in the one-line summary printed after each epoch."""
        return ["loss", "val_loss", self.monitor()[0]]

    def callbacks(self, run_dir: Path, validation, packer: TextPacker) -> list:
        """The task's own training callbacks (validation reports, projector, ...)."""
        return []

    def signature_methods(self) -> dict:
        """{signature name: SignatureDef method name} for signatures that are not Predict,
        e.g. {"classify": tfapp.core.serving_api.CLASSIFY_METHOD} for TF Serving's
        Classify API."""
        return {}

    def model_card_lines(self, splits) -> list[str]:
        """Task-specific lines for the model card (labels, data sizes)."""
        return []


def model_serving_root(model: keras.Model, packer: TextPacker,
                       signatures) -> tuple[tf.Module, dict]:
    """The export root of a task that serves its Keras model: a fresh functional view of
    the model's layers (so no optimizer state is saved: AdamW's slots would triple the
    export) plus the tokenizer and its assets; `signatures(view, packer)` makes the
    signature functions."""
    view = keras.Model(model.input, model.output, name=model.name)
    root = tf.Module()
    root.model = view
    root.tokenizer = packer.tokenizer
    return root, signatures(view, packer)


# --- optional capabilities, declared by subclassing -----------------------------------
class Calibrated(abc.ABC):
    """A task that fits post-training calibration on validation data (e.g. QA's hand-off
    threshold), stored with the run and the export."""

    @abc.abstractmethod
    def calibrate(self, model: keras.Model, validation, packer: TextPacker) -> dict:
        """The calibration, JSON-serialisable."""

    @abc.abstractmethod
    def set_calibration(self, calibration: dict) -> None:
        """Restores what `calibrate` returned (re-export of a finished run)."""


class Refittable(abc.ABC):
    """A task that can train on its validation examples too (levers.refit)."""

    @abc.abstractmethod
    def combine(self, train, validation):
        """The training and validation examples as one training set."""


class Transferable(abc.ABC):
    """A task whose examples carry one class each: it can fine-tune first on a related
    labelled file (levers.intermediate) or contrastively on same-class pairs
    (levers.few_shot)."""

    @abc.abstractmethod
    def transfer_columns(self) -> tuple[str, str]:
        """(text column, label column) an intermediate file must have."""

    @abc.abstractmethod
    def for_intermediate(self, section) -> None:
        """Resets this task's config section (a copy) for an intermediate file: label lists
        come from that file; columns it lacks are not read."""

    @abc.abstractmethod
    def class_labels(self) -> Optional[list[str]]:
        """The labels of the model's class head, in order, after load_splits (None: no
        class head)."""

    @abc.abstractmethod
    def example_classes(self, examples) -> np.ndarray:
        """Each example's class index (same-class pairs for few-shot contrastive
        training)."""


class ClassLogits(abc.ABC):
    """A task whose model outputs class logits that R-Drop may regularise."""

    @abc.abstractmethod
    def consistency_outputs(self) -> list:
        """Names of class-logit outputs in a dict-output model ([None]: a single-output
        model)."""


def capabilities(task) -> list[str]:
    """The optional capabilities `task` (a Task or its class) declares."""
    cls = task if isinstance(task, type) else type(task)
    return [c.__name__ for c in (Calibrated, Refittable, ClassLogits, Transferable)
            if issubclass(cls, c)]


# Task packages live in this top-level package, one subpackage per task; each registers
# its Task class when imported. Looked up by name (plugin discovery), so the framework
# never imports a task module itself.
TASK_PACKAGE = "tasks"
_REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator: makes a Task available to the commands under `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    package = importlib.import_module(TASK_PACKAGE)
    # `tasks` is a top-level name another distribution could also install: refuse to
    # read task plugins from a package that is not tfapp's.
    if not getattr(package, "TFAPP_TASK_PACKAGE", False):
        raise ConfigError(f"the '{TASK_PACKAGE}' package at {getattr(package, '__file__', '?')} "
                          f"is not tfapp's task package (another installed distribution "
                          f"provides a top-level '{TASK_PACKAGE}'); uninstall it or reinstall "
                          f"tfapp")
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{TASK_PACKAGE}.{info.name}")


def available() -> list[str]:
    """Names of every registered task."""
    _discover()
    return sorted(_REGISTRY)


def get_task(name: str) -> type:
    """The Task class registered as `name`; unknown names are a one-line ConfigError."""
    if name not in _REGISTRY:
        _discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown task '{name}' (available: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]
