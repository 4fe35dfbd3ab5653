import csv
import json
import os
import random
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


# Generated sentiment task whose label is decided by one keyword (learnable in seconds).
KEYWORDS = {"positive": ["rose", "gained", "jumped", "surged", "climbed", "rallied"],
            "negative": ["fell", "dropped", "slumped", "plunged", "declined", "slid"],
            "neutral": ["steady", "flat", "unchanged", "stable"]}


def keyword_sentiment_csv(path, n=360, seed=0):
    """A CSV (text, label) of n generated sentences whose label one keyword decides."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ["negative", "neutral", "positive"][i % 3]
        subject = rng.choice(["shares", "stocks", "the market", "the bank", "the fund"])
        tail = rng.choice(["after earnings", "on the deal", "after the results", "in trading"])
        rows.append({"text": f"{subject} {rng.choice(KEYWORDS[label])} {tail}",
                     "label": label})
    return write_csv(path, rows)


def run_cli(module: str, *args, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python -m module args` as a user would, from the repo root."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def tiny_config(tmp_path, **overrides):
    """A typed sentiment config on the tiny backbone, with dotted-key overrides."""
    from tfapp.core.config import apply_overrides, build_config, read_yaml
    from tfapp.core.task_contract import get_task

    raw = read_yaml(REPO / "configs" / "sentiment.yaml")
    sets = {"backbone.name": "tiny", "trainer.epochs": 1, "run.root": str(tmp_path / "runs"),
            **overrides}
    raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    return build_config(raw, get_task("sentiment").Config, "test")


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


SENTIMENT_SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the ops a model server links)
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
assert not {"tfapp", "tasks", "keras_hub"} & {m.split(".")[0] for m in sys.modules}
print(json.dumps({"labels": [x.decode() for x in out["label"].numpy().tolist()],
                  "probabilities": out["probabilities"].numpy().tolist()}))
"""


def serve_sentiment_fresh(export, texts) -> dict:
    """A sentiment export's labels and probabilities from a fresh process with only
    tensorflow + tensorflow_text, as a model server loads it."""
    result = subprocess.run([sys.executable, "-c", SENTIMENT_SERVE, str(export),
                             json.dumps(texts)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- QA exports served as a model server would (tensorflow + tensorflow_text only) -------

QA_SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the ops a model server links)
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](question=tf.constant(json.loads(sys.argv[2])))
emb = model.signatures["encode"](text=tf.constant(json.loads(sys.argv[2])))["embedding"]
assert not {"tfapp", "tasks", "keras_hub"} & {m.split(".")[0] for m in sys.modules}
dec = lambda v: [[x.decode() for x in row] for row in v.numpy().tolist()]
print(json.dumps({"answer_ids": dec(out["answer_ids"]), "answer_texts": dec(out["answer_texts"]),
                  "scores": out["scores"].numpy().tolist(),
                  "confidence": out["confidence"].numpy().tolist(),
                  "handoff": out["handoff"].numpy().tolist(), "embedding": emb.numpy().tolist()}))
"""


def serve_fresh(export, questions) -> dict:
    """The export's outputs from a fresh process with only tensorflow + tensorflow_text."""
    result = subprocess.run([sys.executable, "-c", QA_SERVE, str(export), json.dumps(questions)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
    """A test that trains in process may set Keras' global dtype policy (precision auto
    picks mixed_bfloat16 on CPUs with bf16): later tests in the same worker start from
    float32 again."""
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.mixed_precision.set_global_policy("float32")
