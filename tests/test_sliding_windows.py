"""data.window_stride: long texts are scored as overlapping windows whose outputs are
pooled, identically in evaluation and inside the export (checked against windows built by
hand in Python)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cli, serve_fresh, tiny_config

LONG = ("shares fell sharply after the bank cut its dividend and a profit warning hit "
        "markets today while bond yields rose again and the currency slid to a new low")


def _reference_starts(length, size, stride):
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + stride)
    return starts


@pytest.mark.parametrize("size, stride", [(4, 3), (4, 4), (5, 1), (6, 2)])
def test_windows_cover_every_piece_in_order(size, stride):
    from tfapp.core.windows import window_pieces

    rows = [[], [7], list(range(1, 4)), list(range(100, 110)), list(range(200, 211))]
    windows, row_ids = window_pieces(tf.ragged.constant(rows, dtype=tf.int32), size, stride)
    expected, expected_ids = [], []
    for r, row in enumerate(rows):
        for s in _reference_starts(len(row), size, stride):
            expected.append(row[s:s + size])
            expected_ids.append(r)
    assert windows.to_list() == expected
    assert row_ids.numpy().tolist() == expected_ids


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooling_per_text(pooling):
    from tfapp.core.windows import pool_windows

    values = {"a": tf.constant([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]])}
    pooled = pool_windows(values, tf.constant([0, 0, 1], tf.int64), pooling)["a"].numpy()
    first = [2.0, -1.0] if pooling == "mean" else [3.0, 2.0]
    np.testing.assert_allclose(pooled, [first, [5.0, 6.0]])


def test_bad_window_settings_are_config_errors(tmp_path):
    from tfapp.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.window_stride must be null or in \[1, "):
        tiny_config(tmp_path, **{"data.window_stride": 127, "backbone.max_seq_length": 128})
    with pytest.raises(ConfigError, match="data.window_pooling must be mean or max"):
        tiny_config(tmp_path, **{"data.window_stride": 8, "data.window_pooling": "median"})


SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps(out["probabilities"].numpy().tolist()))
"""


@pytest.mark.slow
@pytest.mark.integration
def test_sentiment_export_pools_windows_like_evaluation(tmp_path):
    from tfapp.core.backbone import model_inputs
    from tfapp.core.datasets import texts_only_dataset
    from tfapp.core.windows import predict_texts
    from tfapp.training.restore import restore_run

    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                     "--set", "backbone.max_seq_length=16", "--set", "data.window_stride=6",
                     "--set", "sentiment.topic_column=null",
                     # float32: compared with the in-process model at 1e-5 below
                     "--set", "export.precision=float32", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    texts = [LONG, "profit rose", "the bank cut its dividend " + LONG]
    served = subprocess.run([sys.executable, "-c", SERVE,
                             str(run_dir / "export" / "sentiment" / "1"), json.dumps(texts)],
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    served = np.array(json.loads(served.stdout.strip().splitlines()[-1]))

    cfg, task, model, packer = restore_run(run_dir)
    assert packer.window_stride == 6
    evaluated = predict_texts(model, packer, texts, 2, texts_only_dataset)["sentiment"]
    np.testing.assert_allclose(tf.nn.softmax(evaluated).numpy(), served, atol=1e-5)
    # By hand: every window of 14 pieces, 6 apart, through the model, logits averaged.
    pieces = packer.word_pieces(tf.constant([LONG])).to_list()[0]
    assert len(pieces) > 14
    windows = [[packer.cls_id, *pieces[s:s + 14], packer.sep_id]
               for s in _reference_starts(len(pieces), 14, 6)]
    ids = tf.constant([w + [packer.pad_id] * (16 - len(w)) for w in windows])
    mask = tf.cast(ids != packer.pad_id, tf.int32)
    logits = model(model_inputs(ids, mask), training=False)["sentiment"].numpy()
    np.testing.assert_allclose(tf.nn.softmax(logits.mean(axis=0)).numpy(), served[0],
                               atol=1e-5)
    # A text that fits is one window: the plain truncated path.
    plain = model(packer(tf.constant(["profit rose"])), training=False)["sentiment"]
    np.testing.assert_allclose(tf.nn.softmax(plain).numpy()[0], served[1], atol=1e-5)


@pytest.mark.slow
@pytest.mark.integration
def test_qa_intent_export_with_windows_serves_and_hands_off(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "qa", "--backbone", "tiny", "--epochs", 1,
                     "--set", "qa.mode=intent", "--set", "backbone.max_seq_length=16",
                     "--set", "data.window_stride=8", "--set", "data.window_pooling=max",
                     "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "ranking" in metrics["test"]
    out = serve_fresh(run_dir / "export" / "qa" / "1", [LONG, "how do i reset my password"])
    assert len(out["answer_ids"]) == 2 and len(out["handoff"]) == 2
    emb = np.array(out["embedding"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
