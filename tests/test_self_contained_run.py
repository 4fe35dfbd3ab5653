"""A run directory restores its model without the backbone it started from: evaluate,
re-export, quantise and distil a run after its backbone directory is deleted."""
import json
import shutil

import pytest

from conftest import REPO, run_cli

# Five CLI jobs in a row (~2 minutes): with the integration set, which .ci/run also runs.
pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def orphaned_run(tmp_path_factory):
    """A finished run whose --backbone directory no longer exists."""
    from tfapp.core.backbone import load_backbone, save_preset

    tmp = tmp_path_factory.mktemp("orphan")
    backbone_dir = save_preset(load_backbone("tiny"), tmp / "my_backbone", {})
    run_dir = tmp / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", backbone_dir,
                     "--epochs", 1, "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.rmtree(backbone_dir)
    return run_dir, tmp


def test_the_run_keeps_its_backbone_architecture_and_vocabulary_but_not_twice_its_weights(
        orphaned_run):
    run_dir, _ = orphaned_run
    saved = run_dir / "backbone"
    assert (saved / "config.json").is_file() and (saved / "tokenizer.json").is_file()
    assert list((saved / "assets").rglob("*.txt"))  # the vocabulary
    assert not (saved / "model.weights.h5").exists()  # RUN/model.weights.h5 holds them
    config = json.loads((saved / "config.json").read_text())
    assert "dtype" not in config["config"]  # restores under the loader's own policy


def test_evaluate_export_and_quantize_work_without_the_original_backbone(orphaned_run):
    run_dir, tmp = orphaned_run
    data = REPO / "tasks" / "samples" / "sentiment.csv"
    result = run_cli("tfapp.evaluate", "--run", run_dir, "--data", data, "--out", tmp / "eval")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp / "eval" / "metrics.json").read_text())
    assert metrics["sentiment"]["accuracy"] >= 0
    result = run_cli("tfapp.export", "--run", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "export" / "sentiment" / "2" / "saved_model.pb").is_file()
    result = run_cli("tfapp.quantize", "--run", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    # The restored float model is the one the run reported on: same test accuracy.
    report = json.loads((run_dir / "quantization.json").read_text())
    reported = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert report["float"]["test"]["sentiment"]["accuracy"] == pytest.approx(
        reported["sentiment"]["accuracy"])


def test_distill_works_without_the_original_backbone(orphaned_run):
    run_dir, tmp = orphaned_run
    student = tmp / "student"
    result = run_cli("tfapp.distill", "--teacher", run_dir, "--student-layers", 1,
                     "--epochs", 1, "--run-dir", student)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (student / "export" / "sentiment" / "1" / "saved_model.pb").is_file()
    assert "1-layer student (teacher layers [0])" in result.stdout
