"""levers.rdrop.alpha: R-Drop, two dropout passes of each training example with the
symmetric KL between their predictions added to the loss."""
import json

import numpy as np
import pytest

from conftest import run_cli, tiny_config


def _kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


def test_paired_consistency_adds_half_alpha_times_the_symmetric_kl():
    import tensorflow as tf

    from tfapp.levers.rdrop import PairedConsistency

    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0],  # one example, two passes
                       [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], np.float32)  # agreeing passes
    layer = PairedConsistency(0.8)
    out = layer(tf.constant(logits), training=True)
    np.testing.assert_array_equal(out.numpy(), logits)  # logits pass through unchanged
    p, q = tf.nn.softmax(logits[0]).numpy(), tf.nn.softmax(logits[1]).numpy()
    expected = 0.8 / 2 * np.mean([(_kl(p, q) + _kl(q, p)) / 2, 0.0])
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-5)

    quiet = PairedConsistency(0.8)
    quiet(tf.constant(logits), training=False)
    assert quiet.losses == []


def test_repeat_rows_puts_each_example_twice_side_by_side():
    import tensorflow as tf

    from tfapp.levers.rdrop import repeat_rows

    ds = tf.data.Dataset.from_tensor_slices(
        ({"ids": np.arange(6).reshape(3, 2)}, np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0])))
    x, y, w = next(iter(repeat_rows(ds.batch(3))))
    np.testing.assert_array_equal(x["ids"].numpy(), [[0, 1], [0, 1], [2, 3], [2, 3],
                                                     [4, 5], [4, 5]])
    np.testing.assert_array_equal(y.numpy(), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(w.numpy(), [1, 1, 2, 2, 3, 3])
    only_inputs = next(iter(repeat_rows(tf.data.Dataset.from_tensor_slices(
        np.array([5, 6])).batch(2))))
    np.testing.assert_array_equal(only_inputs.numpy(), [5, 5, 6, 6])


def test_with_consistency_regularises_only_the_named_outputs():
    import keras
    import tensorflow as tf

    from tfapp.levers.rdrop import with_consistency

    inputs = keras.Input((4,))
    hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, {"label": keras.layers.Dense(3, name="label")(hidden),
                                 "score": keras.layers.Dense(1, name="score")(hidden)})
    wrapped = with_consistency(model, ["label"], 1.0)
    assert [x.name for x in wrapped.layers if "consistency" in x.name] == ["label_consistency"]
    assert {v.path for v in wrapped.trainable_weights} == {v.path for v in model.trainable_weights}
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    wrapped(x, training=True)
    assert len(wrapped.losses) == 1 and float(wrapped.losses[0]) > 0

    single = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    assert any(x.name == "consistency" for x in with_consistency(single, [None], 1.0).layers)


def test_rdrop_alpha_range_is_checked(tmp_path):
    from tfapp.core.errors import ConfigError

    assert tiny_config(tmp_path).levers.rdrop.alpha == 0.0
    with pytest.raises(ConfigError, match=r"levers.rdrop.alpha must be in \[0, 100\]"):
        tiny_config(tmp_path, **{"levers.rdrop.alpha": -1})


def test_rdrop_is_skipped_with_a_note_for_a_model_without_class_logits(tmp_path, capsys):
    from tfapp.core.config import apply_overrides, build_config, read_yaml
    from tfapp.core.task_contract import get_task
    from tfapp.levers.rdrop import RDrop

    from conftest import REPO

    qa_raw = apply_overrides(read_yaml(REPO / "configs" / "qa.yaml"),
                             ["backbone.name=tiny", "levers.rdrop.alpha=1", "qa.mode=retrieval",
                              f"run.root={tmp_path}"])
    qa_cfg = build_config(qa_raw, get_task("qa").Config, "test")
    lever = RDrop(qa_cfg, qa_cfg.levers.rdrop)
    assert lever.enabled and lever.regularised(get_task("qa")(qa_cfg), distilling=False) == []
    assert ("levers.rdrop.alpha 1 not applied: this qa model has no class-logit output"
            in capsys.readouterr().out)
    cfg = tiny_config(tmp_path, **{"levers.rdrop.alpha": 1.0})
    assert RDrop(cfg, cfg.levers.rdrop).regularised(get_task("sentiment")(cfg),
                                                    distilling=True) == []
    assert "not applied: the distiller is its own training model" in capsys.readouterr().out


def test_consistency_outputs_follow_the_task(tmp_path):
    from tfapp.core.lever import active_levers
    from tfapp.core.task_contract import get_task
    from tfapp.levers.rdrop import RDrop

    cfg = tiny_config(tmp_path, **{"levers.rdrop.alpha": 1.0})
    sentiment = get_task("sentiment")(cfg)
    lever = RDrop(cfg, cfg.levers.rdrop)
    assert lever.regularised(sentiment, distilling=False) == ["sentiment", "topic"]
    assert [type(x) for x in active_levers(cfg)] == [RDrop]
    assert active_levers(tiny_config(tmp_path)) == []


@pytest.mark.integration  # a whole CLI job with export
def test_rdrop_run_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                     "--set", "levers.rdrop.alpha=1", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rdrop:\n    alpha: 1.0" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["history"]["loss"][0])
    assert (run_dir / "export" / "sentiment" / "1" / "saved_model.pb").is_file()
