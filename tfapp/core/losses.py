"""Classification losses a task declares, with the run's label smoothing applied."""
from __future__ import annotations

import keras


class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy on logits with label smoothing (Keras' sparse loss
    has none); the number of classes is read from the logits, so it also serves in-batch
    softmax losses whose class count changes per batch."""

    def __init__(self, label_smoothing: float = 0.0,
                 name: str = "smoothed_sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), keras.ops.shape(y_pred)[:-1])
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def sparse_classification_loss(label_smoothing: float) -> keras.losses.Loss:
    """Keras' sparse cross-entropy on logits, or the smoothed one when smoothing is on."""
    if label_smoothing:
        return SmoothedSparseCategoricalCrossentropy(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def classification_loss(label_smoothing: float) -> keras.losses.Loss:
    """Cross-entropy on logits against one-hot targets, with label smoothing."""
    return keras.losses.CategoricalCrossentropy(from_logits=True,
                                                label_smoothing=label_smoothing)
