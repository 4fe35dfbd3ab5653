"""The task contract (everything the trainer, exporter and commands may ask of a task) and
the registry that finds task packages by name."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any, ClassVar, Optional

import keras
import tensorflow as tf

from tfapp.core import config as tfconfig
from tfapp.core.backbone import LoadedBackbone, TextPacker
from tfapp.core.data import seeded_split
from tfapp.core.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")


class Task:
    """One domain task on the shared backbone. Subclasses register with @register."""

    name: ClassVar[str]
    Config: ClassVar[type]  # the dataclass of this task's config section

    def __init__(self, config: tfconfig.Config):
        self.config = config
        self.params = config.params

    # --- data -------------------------------------------------------------------------
    def sample_file(self) -> Optional[Path]:
        """The built-in sample used when data.train_file is not set."""
        return None

    def load_splits(self) -> dict[str, Any]:
        """Reads and validates train/validation/test; may resolve label vocabularies into
        self.params so the saved config can rebuild the model."""
        raise NotImplementedError

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

    def read_file(self, path: str) -> Any:
        """Reads and validates one labelled file (for evaluation) with the run's labels."""
        raise NotImplementedError

    def text_packer(self, packer: TextPacker) -> TextPacker:
        """The packer `texts` are truncated by (for the truncation report)."""
        return packer

    def combine(self, train, validation) -> Any:
        """The training and validation examples as one training set (levers.refit.enabled), or None
        when the task cannot train on its validation data (e.g. it calibrates on it)."""
        return None

    def training_size(self, examples) -> int:
        """Training examples per epoch (for examples/s), e.g. clicks rather than rows."""
        return len(examples)

    def texts(self, examples) -> list[str]:
        raise NotImplementedError

    def example_texts(self, examples) -> Optional[list[str]]:
        """One input text per example, for reporting rows that appear in both training and
        evaluation splits; None where examples are not single texts."""
        return None

    def dataset(self, examples, packer: TextPacker, batch_size: int,
                training: bool) -> tf.data.Dataset:
        raise NotImplementedError

    # --- model ------------------------------------------------------------------------
    def build_model(self, loaded: LoadedBackbone) -> keras.Model:
        raise NotImplementedError

    def compile_args(self) -> dict:
        """loss / loss_weights / metrics for model.compile."""
        raise NotImplementedError

    def consistency_outputs(self) -> list:
        """Outputs holding class logits, for R-Drop (levers.rdrop.alpha): names in a
        dict-output model, [None] for a single-output model, [] when there are none."""
        return []

    def monitor(self) -> tuple[str, str]:
        """(validation log key, 'max' | 'min') for early stopping and best checkpoints."""
        raise NotImplementedError

    def summary_keys(self) -> list[str]:
        """Log keys shown in the one-line summary printed after each epoch."""
        return ["loss", "val_loss", self.monitor()[0]]

    def callbacks(self, run_dir: Path, validation, packer: TextPacker) -> list:
        return []

    # --- evaluation and serving -------------------------------------------------------
    def evaluate(self, model: keras.Model, examples, packer: TextPacker) -> dict:
        """Whole-set metrics, JSON-serialisable."""
        raise NotImplementedError

    def format_metrics(self, metrics: dict) -> str:
        """A human-readable table of `evaluate`'s result."""
        raise NotImplementedError

    def serving_root(self, model: keras.Model, packer: TextPacker) -> tuple[tf.Module, dict]:
        """(object to save, {signature name: tf.function}) for the SavedModel export.

        By default a fresh functional view of the model's layers (so no optimizer state is
        saved: AdamW's slots would triple the export) plus the tokenizer and its assets.
        """
        model = keras.Model(model.input, model.output, name=model.name)
        root = tf.Module()
        root.model = model
        root.tokenizer = packer.tokenizer
        return root, self.serving_signatures(model, packer)

    def calibrate(self, model: keras.Model, validation, packer: TextPacker) -> Optional[dict]:
        """Post-training calibration on validation data (e.g. a decision threshold), stored
        with the run and the export; JSON-serialisable. None when the task has none."""
        return None

    def set_calibration(self, calibration: dict) -> None:
        """Restores what `calibrate` returned, for re-export of a finished run."""

    def serving_signatures(self, model: keras.Model, packer: TextPacker) -> dict:
        """{signature name: tf.function taking raw strings}; one must be serving_default."""
        raise NotImplementedError

    def signature_methods(self) -> dict:
        """{signature name: SignatureDef method name} for signatures that are not Predict,
        e.g. {"classify": tfapp.core.serving_api.CLASSIFY_METHOD} for TF Serving's Classify API."""
        return {}

    def example_inputs(self) -> dict:
        """{signature name: sample inputs (a dict of arrays)} for export checks."""
        raise NotImplementedError

    def model_card_lines(self, splits) -> list[str]:
        """Task-specific lines for the model card (labels, data sizes)."""
        return []


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
