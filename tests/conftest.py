import csv
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tasks" / "samples" / "sentiment.csv"


def write_csv(path: Path, rows: list[dict], fieldnames=None) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_rows(n=None) -> list[dict]:
    with open(SAMPLE, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[:n] if n else rows


def run_cli(module: str, *args, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python -m module args` as a user would, from the repo root."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def tiny_config(tmp_path, **overrides):
    """A typed sentiment config on the tiny backbone, with dotted-key overrides."""
    import tasks
    from tfapp.config import apply_overrides, build_config, read_yaml

    raw = read_yaml(REPO / "configs" / "sentiment.yaml")
    sets = {"backbone.name": "tiny", "train.epochs": 1, "run.root": str(tmp_path / "runs"),
            **overrides}
    raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    return build_config(raw, tasks.get_task("sentiment").Config, "test")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished tiny-backbone training run through the real CLI, shared by tests."""
    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                     "--epochs", "2", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The README's main job on the real packaged backbone (run dir redirected); slow."""
    import time

    run_dir = tmp_path_factory.mktemp("default_run") / "run"
    start = time.time()
    result = run_cli("tfapp.train", "--task", "sentiment", "--run-dir", run_dir, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout, time.time() - start
