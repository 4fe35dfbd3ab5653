"""Every int8 mode of tfapp.quantize: its export reloads in a fresh process with only
tensorflow + tensorflow_text and agrees with the float export on generated sentiment text;
the folded mode saves no int8 weight variables (its weights are graph constants) and keeps
one copy of them."""
import json

import numpy as np
import pytest

from tfapp.compression.quantization import DEFAULT_MODE, MODES, export_base, report_name

from conftest import keyword_sentiment_csv, run_cli, serve_sentiment_fresh

TEXTS = [f"{s} {k} {t}" for s in ("shares", "the bank", "the fund")
         for k in ("soared", "slumped", "were flat", "rallied", "plunged", "held steady")
         for t in ("after earnings", "on the deal")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("modes")
    data = keyword_sentiment_csv(base / "keywords.csv")
    run = base / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 3,
                     "--set", f"data.train_file={data}", "--set", "sentiment.topic_column=null",
                     "--set", "optimizer.learning_rate=2e-3",
                         "--set", "trainer.global_batch_size=16",
                     "--set", "backbone.max_seq_length=32", "--set", "export.precision=float32",
                     "--run-dir", run)
    assert result.returncode == 0, result.stderr[-3000:]
    return run, serve_sentiment_fresh(run / "export" / "sentiment" / "1", TEXTS)


# The default mode in every test run; the others, minutes more, with the integration tests.
@pytest.mark.parametrize("mode", [m if m == DEFAULT_MODE else
                                  pytest.param(m, marks=pytest.mark.integration)
                                  for m in MODES])
def test_int8_mode_export_agrees_with_float_in_a_fresh_process(trained, mode):
    run, float_out = trained
    args = ["--run", run] + ([] if mode == DEFAULT_MODE else ["--mode", mode])
    result = run_cli("tfapp.quantize", *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((run / report_name(mode)).read_text())
    assert report["mode"] == mode
    assert report["agreement"]["test"]["sentiment"] >= 0.95
    served = serve_sentiment_fresh(run / export_base(mode) / "sentiment" / "1", TEXTS)
    agree = np.mean([a == b for a, b in zip(served["labels"], float_out["labels"])])
    assert agree >= 0.95, (mode, agree)
    # Stated tolerance: int8 probabilities within 0.05 of float's on every class.
    np.testing.assert_allclose(served["probabilities"], float_out["probabilities"], atol=0.05)


def test_folded_export_stores_its_int8_weights_once_and_not_as_variables(trained):
    import tensorflow as tf

    run, _ = trained
    folded = run / export_base("folded") / "sentiment" / "1"
    if not folded.is_dir():
        assert run_cli("tfapp.quantize", "--run", run).returncode == 0
    float_vars = tf.train.list_variables(str(run / "export/sentiment/1/variables/variables"))
    folded_vars = tf.train.list_variables(str(folded / "variables" / "variables"))
    kernels = lambda vs: [n for n, _ in vs  # noqa: E731
                          if "kernel" in n or "token_embedding" in n]
    assert kernels(float_vars) and not kernels(folded_vars)
    # The graph holds the int8 weights once: without Keras' own default signatures the
    # serving functions are the only traces of the model.
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folded / "saved_model.pb").read_bytes())
    names = [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function]
    assert not [n for n in names if "__inference_serving_default" in n], names


def test_bad_mode_is_a_one_line_error(trained):
    run, _ = trained
    result = run_cli("tfapp.quantize", "--run", run, "--mode", "int3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --mode must be one of")
