"""levers.weight_soup.enabled: a greedy soup of the run's epochs, judged on validation only."""
import json

import numpy as np
import pytest

from conftest import run_cli, tiny_config


def _dense():
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    return model


def _ingredient(epoch, score, kernel, bias):
    from tfapp.levers.weight_soup import Ingredient

    return Ingredient(epoch, score, [np.array(kernel, np.float32).reshape(2, 1),
                                     np.array([bias], np.float32)])


def _closeness_to(target):
    """A validation score that is higher the nearer the model's kernel is to `target`."""
    def score(model):
        kernel = model.trainable_weights[0].numpy().ravel()
        return -float(np.abs(kernel - np.asarray(target)).sum())
    return score


def test_greedy_soup_keeps_what_helps_and_drops_what_hurts():
    from tfapp.levers.weight_soup import greedy_soup

    model = _dense()
    score = _closeness_to([1.0, 1.0])
    ingredients = [_ingredient(1, -4.0, [-1, -1], 0.0),   # far: would pull the soup away
                   _ingredient(2, -1.0, [0.5, 1.5], 1.0),  # best alone
                   _ingredient(3, -1.5, [1.5, 0.25], 3.0)]  # averages with 2 to near [1, 1]
    chosen = greedy_soup(model, ingredients, lambda: score(model), "max", log=lambda _: None)
    assert chosen["epochs"] == [2, 3] and chosen["best_epoch"] == 2
    assert chosen["validation"] > chosen["best_epoch_validation"] == -1.0
    kernel, bias = (w.numpy() for w in model.trainable_weights)
    np.testing.assert_allclose(kernel.ravel(), [1.0, 0.875])
    np.testing.assert_allclose(bias, [2.0])


def test_soup_is_the_best_epoch_alone_when_averaging_never_helps():
    from tfapp.levers.weight_soup import greedy_soup

    model = _dense()
    score = _closeness_to([0.0, 0.0])
    ingredients = [_ingredient(1, -2.0, [1, 1], 5.0), _ingredient(2, 0.0, [0, 0], 7.0)]
    chosen = greedy_soup(model, ingredients, lambda: score(model), "max", log=lambda _: None)
    assert chosen["epochs"] == [2]
    np.testing.assert_allclose(model.trainable_weights[1].numpy(), [7.0])


def test_soup_minimises_a_loss_monitor():
    from tfapp.levers.weight_soup import greedy_soup

    model = _dense()
    loss = lambda: -_closeness_to([1.0, 1.0])(model)  # noqa: E731
    ingredients = [_ingredient(1, 1.0, [0.5, 1.5], 0.0), _ingredient(2, 1.5, [1.5, 0.5], 0.0),
                   _ingredient(3, 3.0, [3, 3], 0.0)]
    chosen = greedy_soup(model, ingredients, loss, "min", log=lambda _: None)
    assert chosen["epochs"] == [1, 2] and chosen["validation"] == pytest.approx(0.0)


def test_best_epoch_from_before_a_resume_joins_the_soup():
    from tfapp.levers.weight_soup import greedy_soup

    model = _dense()
    score = _closeness_to([1.0, 1.0])
    kept_after_resume = [_ingredient(3, -1.5, [1.5, 0.25], 0.0)]
    restored_best = _ingredient(2, -1.0, [0.5, 1.5], 0.0)
    chosen = greedy_soup(model, kept_after_resume, lambda: score(model), "max",
                         current=restored_best, log=lambda _: None)
    assert chosen["best_epoch"] == 2 and chosen["epochs"] == [2, 3]
    # The restored best is not added twice when its epoch was kept.
    again = greedy_soup(model, [restored_best], lambda: score(model), "max",
                        current=_ingredient(2, -1.0, [9, 9], 0.0), log=lambda _: None)
    assert again["epochs"] == [2]
    np.testing.assert_allclose(model.trainable_weights[0].numpy().ravel(), [0.5, 1.5])


def test_epoch_weights_and_scorer_reproduce_what_fit_logged():
    import keras
    import tensorflow as tf

    from tfapp.core.task_callbacks import EpochMetrics
    from tfapp.levers.weight_soup import EpochWeights, validation_scorer

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    y = x @ np.array([[2.0], [-1.0]], np.float32)
    val = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = _dense()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    extra = EpochMetrics(lambda m: {"val_kernel_sum": float(m.trainable_weights[0].numpy().sum())})
    kept = EpochWeights("val_loss")
    history = model.fit(x, y, batch_size=16, epochs=3, validation_data=val, verbose=0,
                        callbacks=[extra, kept])
    assert [i.epoch for i in kept.ingredients] == [1, 2, 3]
    assert [i.score for i in kept.ingredients] == pytest.approx(history.history["val_loss"])
    assert not np.allclose(kept.ingredients[0].weights[0], kept.ingredients[2].weights[0])
    assert validation_scorer(model, val, [extra], "val_loss")() == pytest.approx(
        history.history["val_loss"][-1], rel=1e-5)
    assert validation_scorer(model, val, [extra], "val_kernel_sum")() == pytest.approx(
        history.history["val_kernel_sum"][-1])
    with pytest.raises(KeyError, match="val_missing"):
        validation_scorer(model, val, [extra], "val_missing")()


def test_epoch_weights_survive_a_kill_through_the_backup_folder(tmp_path):
    import keras

    from tfapp.levers.weight_soup import EpochWeights

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(32, 2)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = _dense()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    before = EpochWeights("val_loss", tmp_path / "backup")
    model.fit(x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=[before])
    (tmp_path / "backup" / "soup" / "epoch_0003.partial.npz").write_bytes(b"cut short")

    after = EpochWeights("val_loss", tmp_path / "backup")  # the resumed process
    after.set_model(model)
    after.on_train_begin()
    assert [(i.epoch, i.score) for i in after.ingredients] == [
        (i.epoch, pytest.approx(i.score)) for i in before.ingredients]
    for a, b in zip(after.ingredients, before.ingredients):
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa, wb)
    after.on_epoch_end(1, {"val_loss": 0.5})  # epoch 2 run again after the kill
    assert sorted(i.epoch for i in after.ingredients) == [1, 2]
    assert [i.score for i in after.ingredients if i.epoch == 2] == [0.5]


def test_weight_soup_is_off_by_default_and_must_be_a_boolean(tmp_path):
    from tfapp.core.errors import ConfigError

    assert tiny_config(tmp_path).levers.weight_soup.enabled is False
    soup = tiny_config(tmp_path, **{"levers.weight_soup.enabled": True}).levers.weight_soup
    assert soup.enabled is True
    with pytest.raises(ConfigError, match="levers.weight_soup.enabled"):
        tiny_config(tmp_path, **{"levers.weight_soup.enabled": "sometimes"})


@pytest.mark.integration  # a whole CLI job with export
def test_weight_soup_run_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 3,
                     "--set", "levers.weight_soup.enabled=true", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "weight_soup:\n    enabled: true" in result.stdout
    assert "weight soup: epochs" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    soup = metrics["weight_soup"]
    history = metrics["history"]["val_sentiment_macro_f1"]
    assert soup["best_epoch"] in soup["epochs"] and set(soup["epochs"]) <= {1, 2, 3}
    assert soup["best_epoch_validation"] == pytest.approx(max(history))
    assert soup["validation"] >= soup["best_epoch_validation"] and soup["seconds"] >= 0
    assert (run_dir / "export" / "sentiment" / "1" / "saved_model.pb").is_file()
    assert f"the average of epochs {soup['epochs']}" in (run_dir / "MODEL_CARD.md").read_text()
