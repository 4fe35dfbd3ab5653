"""Fine-tuning levers: layer-wise learning-rate decay, head-only steps before the backbone
learns, and label smoothing; each a config key with range checks."""
import json

import numpy as np
import pytest

from tfapp.core.errors import ConfigError
from tfapp.training.optimizer import backbone_depth, learning_rate_scales

from conftest import run_cli, tiny_config


def test_layer_decay_scales_by_depth():
    paths = ["token_embedding/embeddings", "embeddings_layer_norm/gamma",
             "transformer_layer_0/self_attention_layer/query/kernel",
             "transformer_layer_1/feedforward_output_dense/bias", "sentiment/kernel"]
    assert [backbone_depth(p) for p in paths] == [0, 0, 1, 2, None]
    assert learning_rate_scales(paths, 0.5) == [0.125, 0.125, 0.25, 0.5, 1.0]
    assert learning_rate_scales(paths, 1.0) == [1.0] * 5
    assert learning_rate_scales(paths, 0.5, 10.0) == [0.125, 0.125, 0.25, 0.5, 10.0]


def _one_step_changes(tmp_path, **train):
    """Max |weight change| per group (embeddings, layer 0, layer 1, head) after optimizer
    steps on a tiny sentiment model, with a constant learning rate."""
    from tfapp.core import distribute
    from tfapp.core.backbone import TextPacker, load_backbone
    from tfapp.core.task_contract import get_task
    from tfapp.training.driver import build_compiled_model

    steps = train.pop("steps", 1)
    cfg = tiny_config(tmp_path, **{"optimizer.warmup_ratio": 0.0, "optimizer.weight_decay": 0.0,
                                   "runtime.precision": "float32", "optimizer.clip_norm": 0.0,
                                   "optimizer.head_lr_multiplier": 1.0,
                                   "sentiment.topic_column": None,
                                   **{f"optimizer.{k}": v for k, v in train.items()}})
    task = get_task("sentiment")(cfg)
    splits = task.load_splits()
    placement = distribute.resolve(cfg.runtime)
    loaded = load_backbone("tiny")
    model = build_compiled_model(task, cfg, loaded, placement, total_steps=10 ** 6)
    packer = TextPacker(loaded.tokenizer, 32)
    x, y, *_ = next(iter(task.dataset(splits["train"], packer, 16, training=True)))
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    for _ in range(steps):
        model.train_on_batch(x, y)
    groups = {"embeddings": 0.0, "layer_0": 0.0, "layer_1": 0.0, "head": 0.0}
    for v in model.trainable_variables:
        if v.path.startswith(("token_embedding", "segment_embedding")):
            continue  # sparse (row) gradients: Adam's step there is not about lr
        depth = backbone_depth(v.path)
        key = {None: "head", 0: "embeddings", 1: "layer_0", 2: "layer_1"}[depth]
        groups[key] = max(groups[key], float(np.max(np.abs(v.numpy() - before[v.path]))))
    return groups


def test_layer_decay_slows_lower_layers(tmp_path):
    lr = 1e-3
    flat = _one_step_changes(tmp_path / "a", learning_rate=lr)
    decayed = _one_step_changes(tmp_path / "b", learning_rate=lr, layer_decay=0.5)
    # Adam's first step moves each weight by about the learning rate (times its scale).
    assert flat["embeddings"] == pytest.approx(lr, rel=0.05)
    assert decayed["embeddings"] == pytest.approx(lr * 0.125, rel=0.05)
    assert decayed["layer_0"] == pytest.approx(lr * 0.25, rel=0.05)
    assert decayed["layer_1"] == pytest.approx(lr * 0.5, rel=0.05)
    assert decayed["head"] == pytest.approx(lr, rel=0.05)


def test_head_lr_multiplier_speeds_up_only_the_head(tmp_path):
    lr = 1e-4
    faster = _one_step_changes(tmp_path / "a", learning_rate=lr, head_lr_multiplier=20.0)
    assert faster["head"] == pytest.approx(lr * 20, rel=0.05)
    assert faster["layer_0"] == pytest.approx(lr, rel=0.05)
    assert faster["layer_1"] == pytest.approx(lr, rel=0.05)


def test_frozen_backbone_steps_train_only_the_head_first(tmp_path):
    frozen = _one_step_changes(tmp_path / "a", learning_rate=1e-3, frozen_backbone_steps=3,
                               steps=3)
    assert frozen["embeddings"] == frozen["layer_0"] == frozen["layer_1"] == 0.0
    assert frozen["head"] > 0
    thawed = _one_step_changes(tmp_path / "b", learning_rate=1e-3, frozen_backbone_steps=3,
                               steps=4)
    assert thawed["layer_0"] > 0 and thawed["embeddings"] > 0


def test_smoothed_sparse_loss_matches_the_one_hot_loss():
    import keras

    from tfapp.core.losses import SmoothedSparseCategoricalCrossentropy, sparse_classification_loss

    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], np.float32)
    labels = np.array([0, 2])
    one_hot = np.eye(3, dtype=np.float32)[labels]
    smoothed = SmoothedSparseCategoricalCrossentropy(0.2)(labels, logits)
    reference = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                     label_smoothing=0.2)(one_hot, logits)
    assert float(smoothed) == pytest.approx(float(reference), rel=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(sparse_classification_loss(0.0)(labels, logits)) == pytest.approx(float(plain))
    assert float(smoothed) > float(plain)  # smoothing penalises confident right answers


@pytest.mark.parametrize("key, value, message", [
    ("optimizer.layer_decay", 0.0, "optimizer.layer_decay must be in (0, 1]"),
    ("optimizer.layer_decay", 1.5, "optimizer.layer_decay must be in (0, 1]"),
    ("optimizer.head_lr_multiplier", 0.5, "optimizer.head_lr_multiplier must be in [1, 1000]"),
    ("optimizer.head_lr_multiplier", 2000, "optimizer.head_lr_multiplier must be in [1, 1000]"),
    ("optimizer.frozen_backbone_steps", -1, "optimizer.frozen_backbone_steps must be >= 0"),
    ("trainer.label_smoothing", 1.0, "trainer.label_smoothing must be in [0, 1)"),
])
def test_bad_lever_values_are_one_line_config_errors(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        tiny_config(tmp_path, **{key: value})


@pytest.mark.integration  # a whole CLI job with export per task
@pytest.mark.parametrize("task, extra", [("sentiment", []),
                                         ("qa", ["--set", "qa.mode=intent"])])
def test_levers_train_end_to_end(tmp_path, task, extra):
    result = run_cli("tfapp.train", "--task", task, "--backbone", "tiny", "--epochs", 1,
                     "--set", "optimizer.layer_decay=0.8",
                     "--set", "optimizer.frozen_backbone_steps=3",
                     "--set", "trainer.label_smoothing=0.1",
                     "--set", "optimizer.head_lr_multiplier=5", *extra,
                     "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "layer_decay: 0.8" in result.stdout and "label_smoothing: 0.1" in result.stdout
    assert "head_lr_multiplier: 5" in result.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.integration
def test_task_adaptive_pretraining_switch(tmp_path):
    import yaml

    corpus = tmp_path / "unlabelled.txt"
    corpus.write_text("the bank raised its dividend\nshares fell after the results\n" * 20)
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                     "--set", "levers.tapt.epochs=1", "--set", f"levers.tapt.corpus=[{corpus}]",
                     "--set", "backbone.max_seq_length=32", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "task-adaptive pretraining: 1 epoch(s) of masked-LM on 474 training texts" \
        in result.stdout
    tapt = json.loads((run_dir / "tapt" / "metrics.json").read_text())
    assert tapt["train_texts"] + tapt["validation_texts"] == 474 + 40
    assert (run_dir / "tapt" / "backbone" / "model.weights.h5").is_file()
    assert f"keras-hub preset {run_dir / 'tapt' / 'backbone'}" in result.stdout
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["backbone"]["name"] == str(run_dir / "tapt" / "backbone")
    assert (run_dir / "export" / "sentiment" / "1" / "saved_model.pb").is_file()


def test_freeze_token_embeddings_keeps_only_the_word_pieces_fixed(tmp_path):
    from tfapp.core import distribute
    from tfapp.core.backbone import TextPacker, load_backbone
    from tfapp.core.task_contract import get_task
    from tfapp.training.driver import build_compiled_model

    def trained(freeze, where):
        cfg = tiny_config(where, **{"levers.frozen_embeddings.enabled": freeze,
                                    "runtime.precision": "float32"})
        task = get_task("sentiment")(cfg)
        train = task.load_splits()["train"]
        loaded = load_backbone("tiny")
        model = build_compiled_model(task, cfg, loaded, distribute.resolve(cfg.runtime), 10 ** 6)
        x, y, *_ = next(iter(task.dataset(train, TextPacker(loaded.tokenizer, 32), 16,
                                          training=True)))
        table = loaded.backbone.get_layer("token_embedding").embeddings
        positions = loaded.backbone.get_layer("position_embedding").position_embeddings
        before = table.numpy().copy(), positions.numpy().copy()
        for _ in range(2):
            model.train_on_batch(x, y)
        return (float(np.abs(table.numpy() - before[0]).max()),
                float(np.abs(positions.numpy() - before[1]).max()),
                any(v is table for v in model.trainable_variables))

    table_moved, positions_moved, listed = trained(True, tmp_path / "frozen")
    assert table_moved == 0.0 and positions_moved > 0 and not listed
    table_moved, _, listed = trained(False, tmp_path / "free")
    assert table_moved > 0 and listed


def test_freeze_token_embeddings_must_be_a_boolean(tmp_path):
    with pytest.raises(ConfigError, match="levers.frozen_embeddings.enabled"):
        tiny_config(tmp_path, **{"levers.frozen_embeddings.enabled": 3})
