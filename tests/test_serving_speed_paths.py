"""The faster serving paths agree with the float32 export: XLA over bucketed shapes
(export.xla_batch_buckets) and bfloat16 exports (export.precision), and the export
precision chosen from the CPU's flags. No timing here: speed lives in bench/."""
import numpy as np
import pytest

from conftest import keyword_sentiment_csv, run_cli

TOLERANCE_XLA = 1e-4  # the same float32 math, fused differently
TOLERANCE_BF16 = 0.05  # bfloat16 keeps 8 bits of mantissa


def test_length_edges_and_next_bucket_never_truncate():
    import tensorflow as tf

    from tfapp.core.buckets import length_edges, next_bucket, pad_to

    assert length_edges(128) == [16, 32, 64, 128]
    assert length_edges(100) == [16, 32, 64, 100]
    assert length_edges(16) == [16] and length_edges(10) == [10]
    buckets = [1, 2, 4, 8]
    for n in range(1, 9):
        got = int(next_bucket(tf.constant(n), buckets))
        assert got >= n and got == min(b for b in buckets if b >= n)
    for length in range(1, 129):
        got = int(next_bucket(tf.constant(length), length_edges(128)))
        assert got >= length
    ids = tf.constant([[101, 7, 8, 102], [101, 9, 102, 0], [101, 102, 0, 0]])
    mask = tf.cast(ids > 0, tf.int32)
    padded = pad_to({"token_ids": ids, "padding_mask": mask}, 4, 16, pad_id=0)
    assert padded["token_ids"].shape == (4, 16)
    np.testing.assert_array_equal(padded["token_ids"][:3, :4], ids)
    np.testing.assert_array_equal(padded["padding_mask"][:3, :4], mask)
    np.testing.assert_array_equal(padded["token_ids"][3, :4], ids[0])  # a real row again
    assert int(tf.reduce_sum(padded["padding_mask"][:, 4:])) == 0


@pytest.mark.parametrize("cpuinfo, trained, gpu, xla, expected", [
    ("flags : fpu avx2 avx512f avx512_bf16", "mixed_bfloat16", False, False, "bfloat16"),
    ("flags : fpu avx512f amx_bf16 amx_tile amx_int8", "float32", False, False, "bfloat16"),
    ("flags : fpu avx2 avx512f avx512_vnni", "float32", False, False, "float32"),
    ("flags : fpu avx2", "mixed_bfloat16", False, False, "float32"),
    ("flags : fpu avx512f avx512_bf16", "float32", False, True, "float32"),
    ("flags : fpu avx512f amx_bf16", "mixed_float16", True, False, "float32"),
])
def test_auto_export_precision_from_fake_cpu_flags(cpuinfo, trained, gpu, xla, expected):
    from tfapp.core.distribute import choose_export_precision, cpu_supports_bf16

    precision, reason = choose_export_precision("auto", trained, gpu,
                                                not gpu and cpu_supports_bf16(cpuinfo), xla)
    assert precision == expected and reason
    assert choose_export_precision("trained", trained, gpu, True, xla)[0] == trained
    assert choose_export_precision("float32", trained, gpu, True, xla)[0] == "float32"


def test_bad_export_speed_keys_are_config_errors(tmp_path):
    for key, value, message in (
            ("export.precision", "fp8", "export.precision must be auto, float32, bfloat16 or "
                                        "trained"),
            ("export.xla_batch_buckets", "[0, 4]", "export.xla_batch_buckets must be distinct"),
            ("export.xla_batch_buckets", "[4, 4]", "export.xla_batch_buckets must be distinct")):
        result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                         "--run-dir", tmp_path / "run", "--set", f"{key}={value}")
        assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
        assert not (tmp_path / "run").exists()


def _texts(data):
    import csv

    with open(data, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    # Generated edge cases: empty, one word, longer than max_seq_length.
    return texts + ["", "profit", "shares of the bank rose sharply " * 40]


def _probabilities(export_dir, texts, batch):
    import tensorflow as tf

    fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    parts = [fn(text=tf.constant(texts[i:i + batch]))["probabilities"].numpy()
             for i in range(0, len(texts), batch)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny model trained on a keyword task (confident, like a real fine-tune) exported
    three ways: float32, bfloat16, float32 + XLA buckets; and its held-out texts."""
    from tfapp.core.config import ExportConfig
    from tfapp.serving.saved_model import export_saved_model
    from tfapp.training.restore import restore_run
    from tfapp.training.serving_precision import model_to_serve

    base = tmp_path_factory.mktemp("speed_exports")
    data = keyword_sentiment_csv(base / "keywords.csv")
    held_out = keyword_sentiment_csv(base / "held_out.csv", n=120, seed=7)
    run_dir = base / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                     "--epochs", 4, "--set", f"data.train_file={data}",
                     "--set", "sentiment.topic_column=null",
                     "--set", "optimizer.learning_rate=2e-3",
                     "--set", "trainer.global_batch_size=16", "--set", "export.enabled=false",
                     "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    restored = restore_run(run_dir)
    cfg, task, model, packer = restored
    out = {}
    for name, precision, buckets in (("float32", "float32", []),
                                     ("bfloat16", "bfloat16", []),
                                     ("xla", "auto", [1, 2, 4, 8])):
        served, chosen = model_to_serve(task, restored.loaded, model, "float32",
                                        ExportConfig(precision=precision,
                                                     xla_batch_buckets=buckets))
        packer.xla_batch_buckets = tuple(buckets)
        out[name] = (export_saved_model(task, served, packer, base / name / "sentiment"),
                     chosen)
    packer.xla_batch_buckets = ()
    out["texts"] = _texts(held_out)
    return out


def test_bfloat16_export_agrees_with_float32(exports):
    import tensorflow as tf

    (f32, _), (bf16, chosen) = exports["float32"], exports["bfloat16"]
    assert chosen == "bfloat16"
    texts = exports["texts"]
    p32, p16 = _probabilities(f32, texts, 32), _probabilities(bf16, texts, 32)
    assert np.abs(p32 - p16).max() <= TOLERANCE_BF16
    assert (p32.argmax(1) == p16.argmax(1)).mean() >= 0.99
    graph = tf.saved_model.load(str(bf16)).signatures["serving_default"].graph.as_graph_def()
    ops = [n for f in graph.library.function for n in f.node_def]
    assert any("DT_BFLOAT16" in str(n.attr) for n in ops)  # it really computes in bf16


@pytest.mark.parametrize("batch", [1, 3, 8, 9, 32])
def test_xla_bucketed_export_agrees_with_float32_at_every_batch_size(exports, batch):
    (f32, _), (xla, chosen) = exports["float32"], exports["xla"]
    assert chosen == "float32"  # auto picks float32 for XLA serving
    texts = exports["texts"]
    p32, px = _probabilities(f32, texts, batch), _probabilities(xla, texts, batch)
    assert p32.shape == px.shape == (len(texts), 3)  # nothing lost to padding
    assert (p32.argmax(1) == px.argmax(1)).mean() >= 0.99
    assert np.abs(p32 - px).max() <= TOLERANCE_XLA


def test_serving_config_names_the_xla_flag_only_for_xla_exports(exports):
    from tfapp.serving.model_server_files import uses_xla

    assert uses_xla(exports["xla"][0]) and not uses_xla(exports["float32"][0])
    result = run_cli("tfapp.serving_config", "--base", exports["xla"][0].parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--xla_cpu_compilation_enabled=true" in result.stdout + result.stderr
    plain = run_cli("tfapp.serving_config", "--base", exports["float32"][0].parent.parent)
    assert "xla" not in (plain.stdout + plain.stderr).lower()
