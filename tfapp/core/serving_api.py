"""TF Serving API names and request formats a task declares its signatures with."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

# SignatureDef method name of TF Serving's Classify API (TF2 saves every signature as
# Predict; tfapp.serving.server_contract rewrites the ones a task maps to this).
CLASSIFY_METHOD = "tensorflow/serving/classify"


def text_examples(texts, feature: str = "text") -> np.ndarray:
    """Serialized tf.Example protos with one bytes feature, as Classify API clients send."""
    return np.array([tf.train.Example(features=tf.train.Features(feature={
        feature: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode("utf-8")]))
    })).SerializeToString() for t in texts], dtype=object)
