"""What a stock TensorFlow Serving model server needs from an export beyond the SavedModel:
Classify-API method names, warmup requests, and only ops the server binary has linked in."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfapp.core.errors import TfappError
from tfapp.core.serving_api import CLASSIFY_METHOD

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"

# The model server links TensorFlow Text statically, and an older release than we train
# with: 2.12.1 (tensorflow/serving PR #4057, issue #2267). Ops newer than that (e.g.
# RoundRobinTrim, FastBertNormalize's successors) fail at load with "Op type not registered".
# These are the TF Text ops present in 2.12.1 that keras-hub's WordPiece path uses.
SERVING_TF_TEXT_OPS = frozenset({
    "CaseFoldUTF8", "NormalizeUTF8", "RegexSplitWithOffsets",
    "WordpieceTokenizeWithOffsets", "FastWordpieceTokenizeWithOffsets",
})
SERVING_RELEASE = "TensorFlow Serving 2.21 (TensorFlow 2.21 core, TensorFlow Text 2.12.1 ops)"


def saved_model_ops(export_dir: Path) -> set[str]:
    """Every op type in the SavedModel's graph and function library."""
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for mg in sm.meta_graphs:
        ops.update(n.op for n in mg.graph_def.node)
        for fn in mg.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
    return ops


def unsupported_ops(ops: set[str]) -> list[str]:
    """Ops that are neither TensorFlow core ops nor TF Text ops the model server links."""
    core = set(dir(tf.raw_ops))
    return sorted(op for op in ops if op not in core and op not in SERVING_TF_TEXT_OPS)


def check_serving_ops(export_dir: Path) -> set[str]:
    ops = saved_model_ops(export_dir)
    bad = unsupported_ops(ops)
    if bad:
        raise TfappError(f"export uses ops that {SERVING_RELEASE} lacks: {', '.join(bad)}")
    return ops


def set_method_names(export_dir: Path, methods: dict[str, str]) -> None:
    """Rewrites signature method names (TF2 saves all as Predict) in saved_model.pb."""
    path = Path(export_dir) / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(path.read_bytes())
    for mg in sm.meta_graphs:
        for name, method in methods.items():
            mg.signature_def[name].method_name = method
    path.write_bytes(sm.SerializeToString())  # inside the unpublished temp dir
    # fingerprint.pb hashes saved_model.pb; rewrite it so it describes the edited graph.
    from tensorflow.python.saved_model import fingerprinting_utils

    fingerprinting_utils.write_fingerprint(str(export_dir))


def warmup_records(model_name: str, example_inputs: dict, methods: dict[str, str]) -> list:
    """One PredictionLog per signature, built from the task's sample inputs."""
    from tensorflow_serving.apis import (
        classification_pb2,
        input_pb2,
        model_pb2,
        predict_pb2,
        prediction_log_pb2,
    )

    records = []
    for signature, inputs in example_inputs.items():
        spec = model_pb2.ModelSpec(name=model_name, signature_name=signature)
        if methods.get(signature) == CLASSIFY_METHOD:
            (serialized,) = inputs.values()
            examples = [tf.train.Example.FromString(s) for s in serialized]
            request = classification_pb2.ClassificationRequest(
                model_spec=spec,
                input=input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples)))
            log = prediction_log_pb2.PredictionLog(
                classify_log=prediction_log_pb2.ClassifyLog(request=request))
        else:
            request = predict_pb2.PredictRequest(model_spec=spec)
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log)
    return records


def write_warmup(export_dir: Path, records: list) -> Path:
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path
