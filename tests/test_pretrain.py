"""Domain-adaptive MLM pretraining: lowers the masked-LM loss on a generated corpus and
saves a backbone directory that every task accepts."""
import json
import random

import pytest

from conftest import run_cli

SUBJECTS = ["the bank", "the company", "the fund", "investors", "analysts"]
VERBS = ["raised", "cut", "beat", "missed", "expects"]
OBJECTS = ["profit guidance", "the dividend", "earnings forecasts", "revenue growth",
           "the rate outlook"]


def corpus(path, n=600, seed=0):
    rng = random.Random(seed)
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} for the "
             f"quarter" for _ in range(n)]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    text = corpus(tmp / "domain.txt")
    run_dir = tmp / "run"
    result = run_cli("tfapp.pretrain", "--corpus", str(tmp / "*.txt"), "--backbone", "tiny",
                     "--epochs", 3, "--run-dir", run_dir, "--set", "optimizer.learning_rate=2e-3",
                     "--set", "backbone.max_seq_length=16", "--set", "pretrain.mask_rate=0.2",
                     "--set", "pretrain.whole_word=true", "--set", "pretrain.head_steps=3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, text, result.stdout


@pytest.mark.integration  # CLI jobs: pretrain, then train on its backbone
def test_pretraining_lowers_validation_mlm_loss(pretrained):
    run_dir, _, stdout = pretrained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    before = metrics["validation_before"]["loss"]
    after = metrics["validation_after"]["loss"]
    assert after < 0.7 * before, (before, after)
    assert metrics["validation_texts"] == 30 and metrics["train_texts"] == 570
    assert "validation MLM loss before" in stdout and "saved backbone" in stdout
    assert "MLM head alone: 3 steps" in stdout
    assert (run_dir / "logs").is_dir() and not (run_dir / "backup").exists()


@pytest.mark.integration  # CLI jobs: pretrain, then train on its backbone
def test_saved_backbone_loads_and_trains_a_task(pretrained, tmp_path):
    import numpy as np

    from tfapp.core.backbone import load_backbone

    run_dir, _, _ = pretrained
    backbone_dir = run_dir / "backbone"
    info = json.loads((backbone_dir / "tfapp_backbone.json").read_text())
    assert info["exact_gelu"] is True and info["validation_mlm_loss_after"] < \
        info["validation_mlm_loss_before"]
    loaded = load_backbone(str(backbone_dir))
    assert loaded.exact_gelu  # the tiny backbone's exact GELU survives the round trip
    original = load_backbone("tiny")
    assert loaded.tokenizer.get_vocabulary() == original.tokenizer.get_vocabulary()
    # The weights are the pretrained ones, not the random initialisation.
    emb = loaded.backbone.get_layer("token_embedding").get_weights()[0]
    assert emb.shape == original.backbone.get_layer("token_embedding").get_weights()[0].shape
    assert not np.allclose(emb, original.backbone.get_layer("token_embedding").get_weights()[0])

    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", backbone_dir,
                     "--epochs", 1, "--run-dir", tmp_path / "run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"keras-hub preset {backbone_dir}" in result.stdout


@pytest.mark.integration  # needs the pretraining job's output
def test_pretrain_refuses_missing_corpus_and_existing_output(pretrained, tmp_path):
    result = run_cli("tfapp.pretrain", "--corpus", tmp_path / "nothing*.txt",
                     "--backbone", "tiny")
    assert result.returncode == 2 and "nothing*.txt: file not found" in result.stderr
    run_dir, text, _ = pretrained
    result = run_cli("tfapp.pretrain", "--corpus", text, "--backbone", "tiny",
                     "--out", run_dir / "backbone", "--run-dir", tmp_path / "run2")
    assert result.returncode == 2 and "already exists" in result.stderr


def _mlm_loss_after(text: str) -> str:
    return text.split("validation MLM loss after:")[1].split("(")[0].strip()


@pytest.mark.integration  # a minute of multi-process or large-model training
def test_two_local_workers_pretrain_and_only_the_chief_writes(tmp_path):
    text = corpus(tmp_path / "domain.txt", n=256)
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.launch", "--workers", 2, "--module", "tfapp.pretrain", "--",
                     "--corpus", text, "--backbone", "tiny", "--epochs", 2,
                     "--run-dir", run_dir, "--set", "backbone.max_seq_length=16",
                     "--set", "optimizer.learning_rate=2e-3", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stdout = result.stdout
    assert "strategy multiworker (CollectiveAllReduceStrategy, 2 replica(s))" in stdout
    assert "this worker: worker 0" in stdout and "saved backbone" in stdout
    worker1 = (run_dir / ".launch" / "worker-1.log").read_text()
    assert "this worker: worker 1" in worker1 and "done in" in worker1
    assert "saved backbone" not in worker1
    # Same weights on both workers after training: the same validation loss.
    assert _mlm_loss_after(worker1) == _mlm_loss_after(stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2
    assert metrics["validation_after"]["loss"] < metrics["validation_before"]["loss"]
    assert (run_dir / "backbone" / "model.weights.h5").is_file()
    # Each worker had its own backup dir (the other one's lived in its scratch dir,
    # removed at the end); nothing is left behind.
    assert not list(run_dir.glob(".worker-*")) and not (run_dir / "backup").exists()
