"""The task contract: everything the framework (trainer, exporter, CLIs) may ask of a task."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

import keras
import tensorflow as tf

from tfapp.backbone import LoadedBackbone, TextPacker
from tfapp import config as tfconfig


class Task:
    """One domain task on the shared backbone. Subclasses register with @tasks.register."""

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

    def read_file(self, path: str) -> Any:
        """Reads and validates one labelled file (for evaluation) with the run's labels."""
        raise NotImplementedError

    def text_packer(self, packer: TextPacker) -> TextPacker:
        """The packer `texts` are truncated by (for the truncation report)."""
        return packer

    def training_size(self, examples) -> int:
        """Training examples per epoch (for examples/s), e.g. clicks rather than rows."""
        return len(examples)

    def texts(self, examples) -> list[str]:
        raise NotImplementedError

    def dataset(self, examples, packer: TextPacker, batch_size: int,
                training: bool) -> tf.data.Dataset:
        raise NotImplementedError

    # --- model ------------------------------------------------------------------------
    def build_model(self, loaded: LoadedBackbone) -> keras.Model:
        raise NotImplementedError

    def compile_args(self) -> dict:
        """loss / loss_weights / metrics for model.compile."""
        raise NotImplementedError

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
        e.g. {"classify": tfapp.serving.CLASSIFY_METHOD} for TF Serving's Classify API."""
        return {}

    def example_inputs(self) -> dict:
        """{signature name: sample inputs (a dict of arrays)} for export checks."""
        raise NotImplementedError

    def model_card_lines(self, splits) -> list[str]:
        """Task-specific lines for the model card (labels, data sizes)."""
        return []
