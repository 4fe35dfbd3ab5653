"""Keras callbacks the stock set lacks: throughput + learning-rate logging, and a per-epoch
classification report (confusion-matrix image, misclassified examples) in TensorBoard."""
from __future__ import annotations

import io
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


class TrainingStats(keras.callbacks.Callback):
    """Adds `learning_rate`, `examples_per_second` (and under mixed_float16 `loss_scale`) to
    the epoch logs and prints one summary line per epoch. Put it before TensorBoard so these
    values reach TensorBoard too."""

    def __init__(self, examples_per_epoch: int, summary_keys: list[str], printer=print):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.summary_keys = summary_keys
        self.printer = printer
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        seconds = max(time.perf_counter() - self._start, 1e-9)
        # The optimizer evaluates its schedule at the current step.
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        logs["examples_per_second"] = self.examples_per_epoch / seconds
        scale = getattr(self.model.optimizer, "dynamic_scale", None)
        if scale is not None:  # mixed_float16: the loss scale, to spot overflow storms
            logs["loss_scale"] = float(keras.ops.convert_to_numpy(scale))
        shown = "  ".join(f"{k} {logs[k]:.4f}" for k in self.summary_keys if k in logs)
        self.printer(f"epoch {epoch + 1}: {shown}  lr {logs['learning_rate']:.2e}  "
                     f"{logs['examples_per_second']:.1f} ex/s  {seconds:.1f}s")


def confusion_matrix_png(cm: np.ndarray, labels: list[str], title: str) -> bytes:
    """Renders a confusion matrix (rows: true, columns: predicted) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.2 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size + 1))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > threshold else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class ClassificationReport(keras.callbacks.Callback):
    """Each epoch: predicts the validation set and writes to TensorBoard a confusion-matrix
    image, per-class precision/recall and a markdown table of misclassified examples, for
    one classification output."""

    def __init__(self, log_dir: Path, inputs: tf.data.Dataset, texts: list[str],
                 y_true: np.ndarray, labels: list[str], output: str, max_examples: int = 20):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "validation"))
        self.inputs, self.texts, self.y_true = inputs, texts, np.asarray(y_true)
        self.labels, self.output, self.max_examples = labels, output, max_examples

    def on_epoch_end(self, epoch, logs=None):
        from tfapp.metrics import classification_report

        logits = self.model.predict(self.inputs, verbose=0)[self.output]
        probs = tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()
        y_pred = probs.argmax(axis=1)
        report = classification_report(self.y_true, y_pred, self.labels)
        png = confusion_matrix_png(np.array(report["confusion_matrix"]), self.labels,
                                   f"{self.output} · epoch {epoch + 1}")
        image = tf.expand_dims(tf.image.decode_png(png, channels=4), 0)
        wrong = np.flatnonzero(y_pred != self.y_true)
        rows = ["| text | true | predicted | p(predicted) |", "|---|---|---|---|"]
        for i in wrong[: self.max_examples]:
            rows.append(f"| {_md_cell(self.texts[i])} | {self.labels[self.y_true[i]]} | "
                        f"{self.labels[y_pred[i]]} | {probs[i, y_pred[i]]:.3f} |")
        table = (f"{len(wrong)} of {len(y_pred)} validation examples misclassified"
                 + (f" (first {self.max_examples})" if len(wrong) > self.max_examples else "")
                 + "\n\n" + "\n".join(rows))
        with self.writer.as_default(step=epoch):
            tf.summary.image(f"{self.output}/confusion_matrix", image)
            tf.summary.text(f"{self.output}/misclassified", table)
            for label, per_class in report["per_class"].items():
                for name in ("precision", "recall"):
                    tf.summary.scalar(f"{self.output}/{name}/{label}", per_class[name])
        self.writer.flush()


class EpochMetrics(keras.callbacks.Callback):
    """Adds `metrics_fn(model)` (a dict of log key -> float) to each epoch's logs, for
    metrics Keras cannot accumulate batch by batch (whole-bank ranking, per-impression
    AUC). Put it before the callbacks that read them (summary line, early stopping,
    checkpoints, TensorBoard)."""

    def __init__(self, metrics_fn):
        super().__init__()
        self.metrics_fn = metrics_fn

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.metrics_fn(self.model))
