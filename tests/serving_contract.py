"""Stands in for the TF Serving model server (run as a script in a fresh process).

Imports only tensorflow, tensorflow_text and the serving API protos. Loads an export,
checks Classify signatures' method names, replays every warmup record, and runs the REST
bodies of the curl examples in docs/export-and-serving.md, converted by TF Serving's REST
rules. Prints one JSON document: for each call, the signature, the feed it used and the
outputs it got.

    python tests/serving_contract.py EXPORT_DIR docs/export-and-serving.md
"""
import base64
import json
import re
import sys
from pathlib import Path

import tensorflow as tf
import tensorflow_text  # noqa: F401  (the model server links these ops)
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

CURL = re.compile(r"curl -s -d '(?P<body>\{.*?\})' \\\n\s*-X POST \S+/v1/models/"
                  r"(?P<model>\w+):(?P<verb>predict|classify)")


def encode(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def tensor_json(t):
    return encode(t.numpy().tolist())


def example_from_json(features: dict) -> bytes:
    """TF Serving's REST rule for Classify/Regress: JSON features become a tf.Example."""
    feature = {}
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, str) for v in values):
            feature[key] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        elif all(isinstance(v, int) for v in values):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString()


def predict_feed(body: dict, input_names: list) -> dict:
    """TF Serving's REST rules for Predict: row (`instances`) or columnar (`inputs`)."""
    if "instances" in body:
        rows = body["instances"]
        if all(isinstance(r, dict) for r in rows):
            return {name: [r[name] for r in rows] for name in input_names}
        assert len(input_names) == 1, "bare instances need a single-input signature"
        return {input_names[0]: rows}
    columns = body["inputs"]
    if isinstance(columns, dict):
        return columns
    assert len(input_names) == 1
    return {input_names[0]: columns}


def main(export: str, readme: str) -> None:
    model = tf.saved_model.load(export)
    sm = saved_model_pb2.SavedModel.FromString((Path(export) / "saved_model.pb").read_bytes())
    methods = {name: sig.method_name for name, sig in sm.meta_graphs[0].signature_def.items()}
    calls = []

    def run(source, signature, feed, verb):
        fn = model.signatures[signature]
        out = fn(**{k: tf.constant(v) for k, v in feed.items()})
        batch = len(next(iter(feed.values())))
        if verb == "predict":  # row format needs every output batched on dim 0
            assert all(v.shape[0] == batch for v in out.values()), source
        calls.append({"source": source, "signature": signature, "verb": verb,
                      "method": methods[signature], "feed": encode(feed),
                      "outputs": {k: tensor_json(v) for k, v in out.items()}})

    warmup = Path(export) / "assets.extra" / "tf_serving_warmup_requests"
    for i, raw in enumerate(tf.data.TFRecordDataset(str(warmup))):
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            feed = {k: tf.make_ndarray(v).tolist() for k, v in request.inputs.items()}
            run(f"warmup {i}", request.model_spec.signature_name or "serving_default",
                feed, "predict")
        elif kind == "classify_log":
            request = log.classify_log.request
            feed = {"inputs": [e.SerializeToString()
                               for e in request.input.example_list.examples]}
            run(f"warmup {i}", request.model_spec.signature_name, feed, "classify")
        else:
            raise AssertionError(f"warmup record {i}: unexpected {kind}")

    for i, match in enumerate(CURL.finditer(Path(readme).read_text())):
        body = json.loads(match["body"])
        signature = body.get("signature_name", "serving_default")
        if match["verb"] == "classify":
            feed = {"inputs": [example_from_json(e) for e in body["examples"]]}
        else:
            names = sorted(model.signatures[signature].structured_input_signature[1])
            feed = predict_feed(body, names)
        run(f"docs curl {i}", signature, feed, match["verb"])

    loaded = [m.split(".")[0] for m in sys.modules]
    assert not {"tfapp", "tasks", "keras_hub"} & set(loaded), "imported training code"
    print(json.dumps(calls))


if __name__ == "__main__":
    main(*sys.argv[1:3])
