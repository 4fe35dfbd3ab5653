"""python -m tfapp.tune: KerasTuner trials that are normal runs judged on validation,
a best.yaml that tfapp.train accepts, one-line errors, and a killed search that resumes."""
import json
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, run_cli

FAST = ["--task", "sentiment", "--backbone", "tiny", "--set", "trainer.epochs=1",
        "--set", "export.enabled=false", "--set", "sentiment.topic_column=null"]


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_search_writes_trials_and_a_best_config_that_train_accepts(tmp_path):
    out = tmp_path / "search"
    stdout = _ok(run_cli("tfapp.tune", *FAST, "--trials", 2, "--algorithm", "random",
                         "--search", "trainer.global_batch_size=choice:16,32", "--out", out))
    trials = json.loads((out / "trials.json").read_text())
    assert [t["status"] for t in trials] == ["COMPLETED", "COMPLETED"]
    # The sentiment task monitors macro-F1 (no topic head here: no prefix).
    assert "judged on validation val_macro_f1 (max)" in stdout
    # Keys fixed with --set are not searched.
    assert set(trials[0]["values"]) == {"optimizer.learning_rate", "optimizer.layer_decay",
                                        "optimizer.head_lr_multiplier", "optimizer.warmup_ratio",
                                         "trainer.global_batch_size",
                                        "backbone.dropout"}
    best = max(trials, key=lambda t: t["objective"])
    for t in trials:
        run = out / "trials" / f"trial_{t['trial']}"
        metrics = json.loads((run / "metrics.json").read_text())
        # The objective is the best validation epoch of the run, never a test number.
        assert t["objective"] == pytest.approx(max(metrics["history"]["val_macro_f1"]))
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["optimizer"]["learning_rate"] == pytest.approx(
            t["values"]["optimizer.learning_rate"])
        assert list((run / "logs").glob("events.out.tfevents*"))  # HParams for TensorBoard
    config = yaml.safe_load((out / "best.yaml").read_text())
    assert config["optimizer"]["learning_rate"] == pytest.approx(
        best["values"]["optimizer.learning_rate"])
    assert config["run"]["dir"] is None and config["trainer"]["epochs"] == 1
    assert f"--config {out / 'best.yaml'}" in stdout
    run_dir = tmp_path / "again"
    stdout = _ok(run_cli("tfapp.train", "--task", "sentiment", "--config", out / "best.yaml",
                         "--run-dir", run_dir))
    assert f"learning_rate: {config['optimizer']['learning_rate']}" in stdout
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--search", "optimizer.learning_rate=log:0:1e-3"], "both > 0 for log"),
    (["--search", "trainer.epochs=int:5:2"], "LOW < HIGH"),
    (["--search", "learning_rate=float:1:2"], "expected SECTION.KEY="),
    (["--search", "trainer.global_batch_size=choice:16"], "two or more distinct values"),
    (["--trials", "0"], "must be > 0"),
])
def test_bad_search_arguments_are_one_line_errors(tmp_path, args, message):
    argv = ["--trials", "1", *args] if args[0] != "--trials" else args
    result = run_cli("tfapp.tune", *FAST, *argv, "--out", tmp_path / "s")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "trials").exists()


def test_everything_fixed_is_refused(tmp_path):
    from tfapp.core.errors import ConfigError
    from tfapp.hyperparameter_search.space import DEFAULT_SPACE, search_space

    with pytest.raises(ConfigError, match="nothing to search"):
        search_space([], set(DEFAULT_SPACE))
    kept = search_space(["trainer.label_smoothing=float:0:0.2"], {"trainer.epochs"})
    assert "trainer.epochs" not in {r.key for r in kept}
    assert "trainer.label_smoothing" in {r.key for r in kept}


@pytest.mark.slow
@pytest.mark.integration
def test_killed_search_resumes_with_the_same_command(tmp_path):
    out = tmp_path / "search"
    argv = [sys.executable, "-m", "tfapp.tune", *FAST, "--trials", "3",
            "--algorithm", "random", "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = out / "trials" / "trial_0" / "metrics.json"
    deadline = time.time() + 300
    while not (out / "trials" / "trial_1").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert first.is_file(), "the first trial should have finished before the kill"
    stamp = first.stat().st_mtime_ns
    stdout = _ok(subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600))
    assert "Reloading Tuner" in stdout
    trials = json.loads((out / "trials.json").read_text())
    assert [t["trial"] for t in trials] == ["0", "1", "2"]
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert first.stat().st_mtime_ns == stamp  # the finished trial was not trained again
    # A different search in the same directory is refused, not mixed in.
    result = run_cli("tfapp.tune", *FAST, "--trials", 3, "--algorithm", "bayesian",
                     "--out", out)
    assert result.returncode != 0 and "cannot resume a search with different settings" \
        in result.stderr
