"""levers.refit.enabled: validation chooses the epochs, then a fresh model trains on training +
validation examples and is the one served."""
import json
import re

import numpy as np
import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def refit_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("refit") / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", "2",
                     "--set", "levers.refit.enabled=true", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout + result.stderr


def test_refit_trains_on_training_and_validation_for_the_best_epochs(refit_run):
    run_dir, log = refit_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    train, validation = map(int, re.search(r"data: (\d+) train / (\d+) validation", log).groups())
    history = metrics["history"]["val_sentiment_macro_f1"]
    assert metrics["refit"]["examples"] == train + validation
    assert metrics["refit"]["epochs"] == [int(np.argmax(history)) + 1]
    assert metrics["train_examples"] == train
    assert "refit: a fresh model on" in log
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert f"retrained on {train + validation} training + validation examples" in card
    assert (run_dir / "logs" / "refit").is_dir()


def test_the_refit_model_is_served_and_validation_metrics_are_the_first_models(refit_run):
    from tfapp.training.restore import restore_run

    run_dir, _ = refit_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    restored = restore_run(run_dir)
    cfg, task, model, packer = restored
    splits = task.load_splits()
    # The saved weights (the refit's) reproduce the test metrics ...
    test = task.evaluate(restored.served(), splits["test"], packer)
    assert test["sentiment"]["macro_f1"] == pytest.approx(
        metrics["test"]["sentiment"]["macro_f1"], abs=1e-6)
    # ... and are not the first model's best epoch, whose weights gave the validation metrics.
    refit_kernel = model.get_layer("sentiment").kernel.numpy().copy()
    model.load_weights(str(run_dir / "checkpoints" / "best.weights.h5"))
    assert not np.allclose(refit_kernel, model.get_layer("sentiment").kernel.numpy())
    validation = task.evaluate(restored.served(), splits["validation"], packer)
    assert validation["sentiment"]["accuracy"] == pytest.approx(
        metrics["validation"]["sentiment"]["accuracy"], abs=1e-6)


def test_epochs_to_refit_follow_the_soup_then_early_stopping_then_the_schedule():
    from types import SimpleNamespace

    from tfapp.levers.refit import epochs_to_refit

    stopped = SimpleNamespace(best_epoch=1, best=0.8)
    assert epochs_to_refit(4, stopped, [2, 3]) == [2, 3]
    assert epochs_to_refit(4, stopped, None) == [2]
    assert epochs_to_refit(4, SimpleNamespace(best_epoch=0, best=None), None) == [4]
    assert epochs_to_refit(4, None, None) == [4]


def test_keep_epochs_copies_the_listed_epochs_weights():
    import keras

    from tfapp.levers.refit import KeepEpochs

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    keep = KeepEpochs(model, [1, 3])
    x, y = np.ones((8, 2), np.float32), np.full((8, 1), 5.0, np.float32)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[keep])
    assert sorted(keep.kept) == [1, 3]
    assert not np.allclose(keep.kept[1][0], keep.kept[3][0])
    np.testing.assert_allclose(keep.kept[3][0], model.trainable_weights[0].numpy())


def test_assign_mean_averages_the_kept_epochs():
    import keras

    from tfapp.levers.refit import assign_mean

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    first = [np.array([[1.0], [3.0]], np.float32), np.array([2.0], np.float32)]
    second = [np.array([[3.0], [5.0]], np.float32), np.array([4.0], np.float32)]
    assign_mean(model, [first, second])
    np.testing.assert_allclose(model.trainable_weights[0].numpy(), [[2.0], [4.0]])
    np.testing.assert_allclose(model.trainable_weights[1].numpy(), [3.0])


@pytest.mark.parametrize("task, sets, message", [
    ("qa", [], "levers.refit: the qa task cannot train on its validation data"),
    ("sentiment", ["levers.ema.momentum=0.9"], "levers.refit: not supported with levers.ema"),
])
def test_refit_refuses_what_it_cannot_do_before_writing(tmp_path, task, sets, message):
    run_dir = tmp_path / "run"
    args = [x for s in ["levers.refit.enabled=true", *sets] for x in ("--set", s)]
    result = run_cli("tfapp.train", "--task", task, "--backbone", "tiny", *args,
                     "--run-dir", run_dir)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not run_dir.exists()


def test_refit_refuses_distillation():
    from types import SimpleNamespace

    from tfapp.core.errors import ConfigError
    from tfapp.levers.refit import Refit

    on = Refit(None, SimpleNamespace(enabled=True))
    with pytest.raises(ConfigError, match="not supported when distilling"):
        on.check(SimpleNamespace(distilling=True, levers=[on]))
    assert not Refit(None, SimpleNamespace(enabled=False)).enabled
