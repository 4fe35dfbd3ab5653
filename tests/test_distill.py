"""Distillation: a 1-layer student of a 2-layer tiny teacher, trained on soft + hard labels,
beats an untrained model of the same size; the student run restores and exports."""
import json

import numpy as np
import pytest

from tfapp.compression.distillation import student_layers
from tfapp.core.errors import ConfigError

from conftest import keyword_sentiment_csv, run_cli


def test_student_layers_are_evenly_spaced_from_the_bottom():
    assert student_layers(6, 3) == [0, 2, 4]
    assert student_layers(6, 2) == [0, 3]
    assert student_layers(12, 4) == [0, 3, 6, 9]
    assert student_layers(2, 2) == [0, 1]
    with pytest.raises(ConfigError, match="between 1 and the teacher's 2 layers"):
        student_layers(2, 3)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    base = tmp_path_factory.mktemp("distill")
    data = keyword_sentiment_csv(base / "keywords.csv")
    teacher = base / "teacher"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                     "--epochs", 4, "--set", f"data.train_file={data}",
                     "--set", "sentiment.topic_column=null",
                     "--set", "optimizer.learning_rate=2e-3",
                     "--set", "trainer.global_batch_size=16", "--run-dir", teacher)
    assert result.returncode == 0, result.stderr[-3000:]
    student = base / "student"
    result = run_cli("tfapp.distill", "--teacher", teacher, "--student-layers", 1,
                     "--epochs", 3, "--run-dir", student)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return teacher, student, result.stdout


def untrained_accuracy(teacher_dir) -> float:
    """Test accuracy of a randomly initialised 1-layer model with the teacher's head shape."""
    import keras
    import keras_hub

    from tfapp.core.backbone import LoadedBackbone, TextPacker, load_backbone
    from tfapp.training.restore import config_from_run

    keras.utils.set_random_seed(0)
    cfg, task_cls = config_from_run(teacher_dir)
    task = task_cls(cfg)
    splits = task.load_splits()
    tiny = load_backbone("tiny")
    config = tiny.backbone.get_config()
    config["num_layers"] = 1
    random_backbone = keras_hub.models.BertBackbone.from_config(config)
    model = task.build_model(LoadedBackbone(random_backbone, tiny.tokenizer, "random", True))
    packer = TextPacker(tiny.tokenizer, cfg.backbone.max_seq_length)
    return task.evaluate(model, splits["test"], packer)["sentiment"]["accuracy"]


@pytest.mark.integration  # three CLI jobs: train, distill, quantize
def test_distilled_student_beats_an_untrained_model_of_its_size(distilled):
    teacher, student, stdout = distilled
    t = json.loads((teacher / "metrics.json").read_text())["test"]["sentiment"]["accuracy"]
    s = json.loads((student / "metrics.json").read_text())["test"]["sentiment"]["accuracy"]
    baseline = untrained_accuracy(teacher)
    print(f"teacher {t:.3f}, student {s:.3f}, untrained 1-layer {baseline:.3f}")
    assert t >= 0.9
    assert s >= 0.8 and s >= baseline + 0.3, (s, baseline)
    assert "1-layer student (teacher layers [0])" in stdout
    assert "student head initialised from the teacher (1 layer(s))" in stdout


@pytest.mark.integration  # three CLI jobs: train, distill, quantize
def test_student_run_is_a_normal_run_with_a_smaller_backbone(distilled):
    import tensorflow as tf

    from tfapp.training.restore import restore_run

    teacher, student, _ = distilled
    cfg, task, model, packer = restore_run(student)
    assert cfg.backbone.name == str(student / "student_backbone")
    backbone = next(layer for layer in model.layers if hasattr(layer, "token_embedding"))
    assert backbone.num_layers == 1
    assert (student / "export" / "sentiment" / "1" / "saved_model.pb").is_file()
    # Smaller than the teacher on disk.
    size = lambda d: sum(p.stat().st_size for p in d.rglob("*") if p.is_file())  # noqa: E731
    assert size(student / "export") < size(teacher / "export")
    out = task.serving_signatures(model, packer)["serving_default"](
        text=tf.constant(["shares rose after earnings"]))
    assert np.isclose(out["probabilities"].numpy().sum(), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def quantized(distilled):
    teacher, _, _ = distilled
    result = run_cli("tfapp.quantize", "--run", teacher)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((teacher / "quantization.json").read_text()), result.stdout


@pytest.mark.integration  # three CLI jobs: train, distill, quantize
def test_int8_predictions_agree_with_float(quantized, distilled):
    report, stdout = quantized
    # Stated threshold: int8 picks the float model's class on >= 90% of held-out texts.
    for split in ("validation", "test"):
        assert report["agreement"][split]["sentiment"] >= 0.9, report["agreement"]
        acc = {kind: report[kind][split]["sentiment"]["accuracy"] for kind in ("float", "int8")}
        assert acc["int8"] >= acc["float"] - 0.1, acc
    teacher, _, _ = distilled
    export = teacher / "export-int8" / "sentiment" / "1"
    assert (export / "saved_model.pb").is_file() and "agreement with float" in stdout
    # Served from a fresh process like any export (TF core + TF Text ops only).
    code = ("import sys, tensorflow as tf, tensorflow_text\n"
            "m = tf.saved_model.load(sys.argv[1])\n"
            "print(m.signatures['serving_default'](text=tf.constant(['shares rose']))"
            "['label'].numpy()[0].decode())")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, str(export)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] in ("negative", "neutral", "positive")


@pytest.mark.integration  # three CLI jobs: train, distill, quantize
def test_compression_report_covers_teacher_student_and_int8(distilled, quantized, tmp_path):
    teacher, student, _ = distilled
    result = run_cli("bench.compression", "--run", f"teacher={teacher}",
                     "--run", f"student={student}", "--requests", 20, "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(next(tmp_path.glob("compression-*.json")).read_text())
    assert [r["model"] for r in rows] == ["teacher", "teacher int8 folded", "student"]
    for r in rows:
        assert r["size_mb"] > 0 and 0 < r["latency_p50_ms"] <= r["latency_p99_ms"]
        assert r["metric"] == "sentiment accuracy" and 0 <= r["validation"] <= 1
    assert "| teacher int8 folded |" in result.stdout
