"""Mixed precision on CPU: both policies train a generated task to float32's accuracy;
mixed_float16 scales the loss and logs the scale; heads stay float32."""
import json

import pytest
import tensorflow as tf

from conftest import keyword_sentiment_csv, run_cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("precision")
    data = keyword_sentiment_csv(base / "keywords.csv")
    out = {}
    for precision in ("float32", "mixed_bfloat16", "mixed_float16"):
        run_dir = base / precision
        result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                         "--precision", precision, "--epochs", "4",
                         "--set", f"data.train_file={data}", "--set", "sentiment.topic_column=null",
                         "--set", "optimizer.learning_rate=2e-3",
                         "--set", "trainer.global_batch_size=16",
                         "--set", "export.precision=float32", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"precision {precision}" in result.stdout
        out[precision] = (run_dir, json.loads((run_dir / "metrics.json").read_text()))
    return out


def test_mixed_policies_reach_float32_accuracy(runs):
    acc = {p: m["test"]["sentiment"]["accuracy"] for p, (_, m) in runs.items()}
    assert acc["float32"] >= 0.9, acc
    # Stated tolerance: within 5 points of float32 on the 36-example test split.
    assert abs(acc["mixed_bfloat16"] - acc["float32"]) <= 0.05, acc
    assert abs(acc["mixed_float16"] - acc["float32"]) <= 0.05, acc


def test_mixed_float16_logs_loss_scale(runs):
    run_dir, metrics = runs["mixed_float16"]
    assert "loss_scale" in metrics["history"] and metrics["history"]["loss_scale"][0] > 1
    tags = {v.tag for path in (run_dir / "logs").rglob("events.out.tfevents*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for v in event.summary.value}
    assert "epoch_loss_scale" in tags
    assert "loss_scale" not in runs["float32"][1]["history"]


def test_mixed_models_export_float32_probabilities(runs):
    import subprocess
    import sys

    for precision in ("mixed_bfloat16", "mixed_float16"):
        export = runs[precision][0] / "export" / "sentiment" / "1"
        code = ("import sys, tensorflow as tf, tensorflow_text;"
                "m = tf.saved_model.load(sys.argv[1]);"
                "o = m.signatures['serving_default'](text=tf.constant(['shares rose']));"
                "print(o['probabilities'].dtype.name, float(tf.reduce_sum(o['probabilities'])))")
        result = subprocess.run([sys.executable, "-c", code, str(export)], capture_output=True,
                                text=True, timeout=300)
        dtype, total = result.stdout.split()[-2:]
        assert dtype == "float32" and abs(float(total) - 1) < 1e-3, result.stderr[-2000:]


def test_mixed_runs_export_a_float32_graph(runs):
    """export.precision=float32: no bfloat16 / float16 op anywhere in the exported graph."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    for precision in ("mixed_bfloat16", "mixed_float16"):
        export = runs[precision][0] / "export" / "sentiment" / "1"
        sm = saved_model_pb2.SavedModel.FromString((export / "saved_model.pb").read_bytes())
        dtypes = set()
        for mg in sm.meta_graphs:
            nodes = list(mg.graph_def.node) + [n for f in mg.graph_def.library.function
                                               for n in f.node_def]
            for node in nodes:
                for attr in node.attr.values():
                    if attr.type:
                        dtypes.add(attr.type)
        assert types_pb2.DT_FLOAT in dtypes
        assert not dtypes & {types_pb2.DT_BFLOAT16, types_pb2.DT_HALF}, precision
