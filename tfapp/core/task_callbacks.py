"""Keras callbacks a task may declare (Task.callbacks): a per-epoch classification report
(confusion-matrix image, misclassified examples) in TensorBoard, and whole-set metrics
added to the epoch logs."""
from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary as pr_curve_summary

from tfapp.core import markdown


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
        from tfapp.core.metrics import classification_report

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
            true, predicted = self.labels[self.y_true[i]], self.labels[y_pred[i]]
            rows.append(f"| {markdown.escape(self.texts[i])} | {markdown.escape(true)} | "
                        f"{markdown.escape(predicted)} | {probs[i, y_pred[i]]:.3f} |")
        table = (f"{len(wrong)} of {len(y_pred)} validation examples misclassified"
                 + (f" (first {self.max_examples})" if len(wrong) > self.max_examples else "")
                 + "\n\n" + "\n".join(rows))
        with self.writer.as_default(step=epoch):
            tf.summary.image(f"{self.output}/confusion_matrix", image)
            tf.summary.text(f"{self.output}/misclassified", table)
            for label, per_class in report["per_class"].items():
                for name in ("precision", "recall"):
                    tf.summary.scalar(f"{self.output}/{name}/{label}", per_class[name])
            for i, label in enumerate(self.labels):  # one-vs-rest precision-recall curve
                curve = pr_curve_summary.pb(f"{self.output}/pr/{label}", self.y_true == i,
                                            probs[:, i].astype(np.float32), num_thresholds=51)
                tf.summary.experimental.write_raw_pb(curve.SerializeToString(), step=epoch)
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
