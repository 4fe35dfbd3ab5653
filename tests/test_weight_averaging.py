"""levers.ema.momentum: validation, checkpoints, early stopping and the final weights use
the exponential moving average of the weights, and a killed run resumes to the same
result as one that was never interrupted."""
import numpy as np
import pytest

from conftest import run_cli, tiny_config


def _dense_fit(tmp_path, ema_momentum, epochs=3, kill_at_epoch=None, lr=0.05):
    """A one-layer regression fitted with the project's optimizer and EMA callbacks;
    returns (final weights, validation losses seen by the callbacks)."""
    import keras

    from tfapp.levers.ema import ResumableEMASwap
    from tfapp.training.optimizer import make_optimizer

    keras.utils.set_random_seed(0)
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(-1, 1)
    y = 3 * x + 1
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    cfg = tiny_config(tmp_path, **{"optimizer.learning_rate": lr,
                                   "levers.ema.momentum": ema_momentum,
                                   "optimizer.warmup_ratio": 0.0})
    model.compile(make_optimizer(cfg.optimizer, total_steps=10 ** 6,
                                 ema_momentum=cfg.levers.ema.momentum), "mse")

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == kill_at_epoch:
                raise KeyboardInterrupt

    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append(float(logs["val_loss"])))
    backup = tmp_path / "backup"
    callbacks = [ResumableEMASwap(backup), record, Kill(),
                 keras.callbacks.BackupAndRestore(str(backup))]
    if not ema_momentum:
        callbacks.pop(0)
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, validation_data=(x, y),
              callbacks=callbacks, verbose=0)
    return [w.copy() for w in model.get_weights()], seen


def test_ema_weights_lag_the_raw_weights(tmp_path):
    raw, _ = _dense_fit(tmp_path / "raw", 0.0)
    # Momentum near 1: the average barely moves from the weights after the first step.
    slow, _ = _dense_fit(tmp_path / "slow", 0.999999)
    averaged, _ = _dense_fit(tmp_path / "ema", 0.9)
    kernel = lambda w: float(w[0].ravel()[0])  # noqa: E731
    assert abs(kernel(raw) - 3) < abs(kernel(slow) - 3)
    assert kernel(averaged) != pytest.approx(kernel(raw), abs=1e-6)
    assert kernel(averaged) != pytest.approx(kernel(slow), abs=1e-6)


def test_ema_validation_uses_the_averaged_weights(tmp_path):
    import keras

    weights, seen = _dense_fit(tmp_path, 0.999999, epochs=2)
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(-1, 1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.set_weights(weights)
    final = float(np.mean((model.predict(x, verbose=0) - (3 * x + 1)) ** 2))
    # The last epoch's validation loss is the loss of the weights the model ends with.
    assert seen[-1] == pytest.approx(final, rel=1e-4)


def test_killed_ema_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, _ = _dense_fit(tmp_path / "whole", 0.9, epochs=4)
    with pytest.raises(KeyboardInterrupt):
        _dense_fit(tmp_path / "killed", 0.9, epochs=4, kill_at_epoch=2)
    assert (tmp_path / "killed" / "backup" / "latest.weights.h5").is_file()
    resumed, _ = _dense_fit(tmp_path / "killed", 0.9, epochs=4)
    for a, b in zip(whole, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_bad_ema_momentum_is_a_config_error(tmp_path, value):
    from tfapp.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"levers.ema.momentum must be in \[0, 1\)"):
        tiny_config(tmp_path, **{"levers.ema.momentum": value})


@pytest.mark.integration  # a whole CLI job with export
def test_ema_run_end_to_end(tmp_path):
    import json

    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 2,
                     "--set", "levers.ema.momentum=0.9", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ema:\n    momentum: 0.9" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]["val_loss"]) == 2
    assert (run_dir / "export" / "sentiment" / "1" / "saved_model.pb").is_file()
