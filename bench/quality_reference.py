"""The reference recipe of bench.quality: a plain keras-hub fine-tune of the same backbone
(stock keras-hub BERT and preprocessor, mean pooling, one dense layer, AdamW 5e-5 with
linear decay to zero, 3 epochs, every text padded to 64 tokens, float32, no other tricks)."""
from __future__ import annotations

import time

import numpy as np

MAX_LENGTH = 64
EPOCHS = 3
LEARNING_RATE = 5e-5
BATCH = 32


def fine_tune(backbone_spec: str, train_texts: list[str], train_labels: np.ndarray,
              test_texts: list[str], n_classes: int, seed: int,
              epochs: int = EPOCHS) -> tuple[np.ndarray, float]:
    """(logits [test texts, classes], training seconds)."""
    import keras
    import keras_hub
    import tensorflow as tf

    from tfapp.core.backbone import load_backbone

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    # Stock keras-hub: its own (tanh) GELU, as a plain from_preset fine-tune gets.
    loaded = load_backbone(backbone_spec, exact_gelu="false")
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        loaded.tokenizer, sequence_length=MAX_LENGTH)
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
              for name in ("token_ids", "padding_mask", "segment_ids")}
    sequence = loaded.backbone(inputs)["sequence_output"]
    pooled = keras.layers.GlobalAveragePooling1D()(sequence, mask=inputs["padding_mask"])
    model = keras.Model(inputs, keras.layers.Dense(n_classes)(pooled))
    steps = epochs * -(-len(train_texts) // BATCH)
    model.compile(
        optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.PolynomialDecay(
            LEARNING_RATE, steps, end_learning_rate=0.0), weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def dataset(texts, labels=None, shuffle=False):
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(texts),) + (() if labels is None else (np.asarray(labels),)))
        if shuffle:
            ds = ds.shuffle(len(texts), seed=seed)
        return ds.batch(BATCH).map(lambda x, *y: (preprocessor(x), *y)).prefetch(2)

    start = time.perf_counter()
    model.fit(dataset(train_texts, train_labels, shuffle=True), epochs=epochs, verbose=2)
    seconds = time.perf_counter() - start
    logits = model.predict(dataset(test_texts), verbose=0)
    keras.backend.clear_session()
    return logits, seconds
