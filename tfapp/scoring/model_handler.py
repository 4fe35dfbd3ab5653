"""A Beam RunInference model handler for tfapp exports: loads the SavedModel (raw strings in,
so workers need tensorflow + tensorflow-text only) and runs one signature on batches of
records. Beam's own TF handlers load Keras models (`tf.keras.models.load_model`), which
Keras 3 no longer does for a SavedModel, hence this handler."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tfapp.scoring.records import Record
from tfapp.scoring.signature_io import SignatureIO


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A record checked against the signature: its fields and the signature's inputs."""
    record: Record
    inputs: dict


class LoadedExport:
    """The loaded SavedModel, the signature and how records feed it."""

    def __init__(self, path: str, signature: str, column: str):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokeniser ops the graph uses)

        self.module = tf.saved_model.load(path)  # kept: the signature needs its variables
        if signature not in self.module.signatures:
            raise ValueError(f"{path}: no signature '{signature}' "
                             f"(has: {', '.join(self.module.signatures)})")
        self.fn = self.module.signatures[signature]
        self.io = SignatureIO.of(self.fn, column)

    def __call__(self, batch: list[dict]) -> list[dict]:
        return self.io(self.fn, batch)


class ExportModelHandler(ModelHandler[Prepared, dict, LoadedExport]):
    """RunInference over a tfapp export: `Prepared` records in, output dicts out.

    `threads` caps TensorFlow's intra-op threads per worker process (None: TensorFlow's
    choice), so that N local worker processes share the machine's cores instead of each
    starting one thread per core."""

    def __init__(self, path: str, *, signature: str = "serving_default", column: str = "text",
                 min_batch_size: int = 1, max_batch_size: int = 64, threads: int | None = None):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self.path, self.signature, self.column, self.threads = path, signature, column, threads

    def load_model(self) -> LoadedExport:
        import tensorflow as tf

        if self.threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                tf.config.threading.set_inter_op_parallelism_threads(self.threads)
            except RuntimeError:  # the runtime already started in this process
                pass
        return LoadedExport(self.path, self.signature, self.column)

    def run_inference(self, batch: Sequence[Prepared], model: LoadedExport,
                      inference_args: dict[str, Any] | None = None
                      ) -> Iterable[PredictionResult]:
        outputs = model([p.inputs for p in batch])
        return [PredictionResult(p, out) for p, out in zip(batch, outputs)]

    def get_num_bytes(self, batch: Sequence[Prepared]) -> int:
        return sum(len(str(p.inputs)) for p in batch)

    def get_metrics_namespace(self) -> str:
        return "tfapp_score"
