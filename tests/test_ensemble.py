"""levers.ensemble: K seeds trained, then distilled into one model (or served together, their
logits averaged in one graph)."""
import json
import re

import numpy as np
import pytest

from conftest import run_cli


def _train(run_dir, *sets, task="sentiment", epochs=1):
    args = ["--task", task, "--backbone", "tiny", "--epochs", str(epochs), "--run-dir", run_dir]
    for s in sets:
        args += ["--set", s]
    result = run_cli("tfapp.train", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ensemble") / "run"
    # The old flat key still works: train.ensemble is levers.ensemble.members. A float32
    # export: bfloat16 argmax ties on the random tiny backbone differ between processes.
    log = _train(run_dir, "train.ensemble=2", "export.precision=float32")
    return run_dir, log


def test_members_train_then_one_model_is_distilled_and_served(distilled_run):
    from tfapp.training.restore import restore_run

    run_dir, log = distilled_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = metrics["ensemble"]
    assert record["members"] == 2 and record["seeds"] == [42, 43]
    assert record["export"] == "distilled" and record["distill_seconds"] > 0
    for candidate in ("single", "ensemble", "distilled"):
        for split in ("validation", "test"):
            assert 0 <= record[candidate][split]["sentiment"]["macro_f1"] <= 1
    assert "ensemble: training member_2 (seed 43" in log
    assert "ensemble: training distilled (seed 44" in log
    for name in ("member_2", "distilled"):
        assert (run_dir / "members" / name / "logs").is_dir()
    assert "one model distilled from 2 members" in (run_dir / "MODEL_CARD.md").read_text()
    # The served model is the student: one task model, not the first member's best epoch.
    restored = restore_run(run_dir)
    cfg, task, model, packer = restored
    assert cfg.levers.ensemble.members == 2
    assert "member_0" not in [layer.name for layer in model.layers]
    test = task.evaluate(restored.served(), task.load_splits()["test"], packer)
    assert test["sentiment"]["macro_f1"] == pytest.approx(
        metrics["test"]["sentiment"]["macro_f1"], abs=1e-6)
    kernel = model.get_layer("sentiment").kernel.numpy().copy()
    model.load_weights(str(run_dir / "checkpoints" / "best.weights.h5"))
    assert not np.allclose(kernel, model.get_layer("sentiment").kernel.numpy())


def _dense(seed):
    import keras

    inputs = keras.Input((3,), name="x")
    return keras.Model(inputs, keras.layers.Dense(
        4, kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs))


def test_the_averaged_model_outputs_the_mean_of_the_members_logits():
    from tfapp.levers.ensemble import average_logits_model

    members = [_dense(s) for s in (1, 2, 3)]
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    expected = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(average_logits_model(members).predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)


def test_the_teacher_soft_labels_are_the_mean_of_the_members_tempered_softmax():
    import tensorflow as tf

    from tfapp.levers.ensemble import soft_label_teacher

    members, t = [_dense(s) for s in (1, 2)], 2.0
    x = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    expected = np.mean([tf.nn.softmax(m.predict(x, verbose=0) / t).numpy() for m in members],
                       axis=0)
    soft = soft_label_teacher(members, t).predict(x, verbose=0)
    np.testing.assert_allclose(tf.nn.softmax(soft / t).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key, value, message", [
    ("members", -1, "members must be between 0 and 16"),
    ("temperature", 0, "temperature must be > 0"),
    ("alpha", 1.5, "alpha must be in [0, 1]"),
    ("export", "both", "export must be one of distilled, ensemble"),
])
def test_bad_ensemble_values_are_one_line_config_errors(tmp_path, key, value, message):
    from tfapp.core.errors import ConfigError

    from conftest import tiny_config

    with pytest.raises(ConfigError, match=re.escape(f"levers.ensemble.{message}")):
        tiny_config(tmp_path, **{f"levers.ensemble.{key}": value})


@pytest.mark.parametrize("sets, message", [
    (["levers.refit.enabled=true"], "not supported with levers.refit"),
    (["qa.mode=retrieval"], "has no class-logit output to average"),
])
def test_what_the_ensemble_cannot_serve_is_refused_before_training(tmp_path, sets, message):
    task = "qa" if any(s.startswith("qa.") for s in sets) else "sentiment"
    args = ["--task", task, "--backbone", "tiny", "--run-dir", tmp_path / "run",
            "--set", "levers.ensemble.members=2"]
    for s in sets:
        args += ["--set", s]
    result = run_cli("tfapp.train", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.integration  # two whole CLI jobs with exports
@pytest.mark.parametrize("task, sets", [
    ("sentiment", []),
    ("qa", ["qa.mode=intent"]),
])
def test_the_members_themselves_can_be_exported_as_one_saved_model(tmp_path, task, sets):
    import tensorflow as tf

    from tfapp.training.restore import restore_run

    run_dir = tmp_path / "run"
    _train(run_dir, "levers.ensemble.members=2", "levers.ensemble.export=ensemble",
           "export.precision=float32", *sets, task=task)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "distilled" not in metrics["ensemble"]
    restored = restore_run(run_dir)
    names = [layer.name for layer in restored.model.layers]
    assert {"member_0", "member_1"} <= set(names)
    split = restored.task.load_splits()["test"]
    again = restored.task.evaluate(restored.served(), split, restored.packer)
    head, metric = ("sentiment", "macro_f1") if task == "sentiment" else ("ranking",
                                                                         "top1_accuracy")
    assert again[head][metric] == pytest.approx(metrics["test"][head][metric], abs=1e-6)
    served = tf.saved_model.load(metrics["export"]["path"]).signatures["serving_default"]
    out = served(**{"text" if task == "sentiment" else "question":
                    tf.constant(["profit rose", "where is my order"])})
    assert out
