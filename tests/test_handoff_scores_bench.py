"""bench.handoff_scores: softmax, centroid and nearest-question hand-off scores of the same
finished QA intent runs, thresholded on validation and judged on test."""
import json

import numpy as np
import pytest

from conftest import run_cli


def test_auroc_is_the_probability_in_scope_scores_higher():
    from bench.handoff_scores import auroc

    assert auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert auroc(np.array([0.1]), np.array([0.9])) == 0.0
    assert auroc(np.array([0.5, 0.5]), np.array([0.5])) == 0.5
    assert auroc(np.array([0.9, 0.3]), np.array([0.5])) == 0.5


def test_centroid_and_nearest_confidences():
    from bench.handoff_scores import confidences

    train = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    answers = np.array([0, 0, 1])
    emb = np.array([[1.0, 0.0]])
    c = confidences(train, answers, emb, np.array([[0.7, 0.3]]))
    assert c["softmax"][0] == pytest.approx(0.7)
    assert c["nearest"][0] == pytest.approx(1.0)
    centroid = np.array([0.9, 0.3]) / np.linalg.norm([0.9, 0.3])
    assert c["centroid"][0] == pytest.approx(centroid[0])


@pytest.mark.integration  # two QA trainings
def test_the_bench_scores_finished_runs_and_writes_its_table(tmp_path):
    from test_qa_handoff_only import bot_files

    files = bot_files(tmp_path)
    runs = []
    for seed in (1, 2):
        run_dir = tmp_path / f"run{seed}"
        result = run_cli("tfapp.train", "--task", "qa", "--backbone", "tiny", "--epochs", "1",
                         "--run-dir", run_dir, "--set", f"seed={seed}", "--set",
                         "qa.mode=intent", "--set", "qa.out_of_scope_label=oos",
                         "--set", "qa.question_column=question",
                         *[x for s, f in files.items() for x in ("--set", f"data.{s}_file={f}")])
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(str(run_dir))
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("bench.handoff_scores", "--runs", "bot=" + ",".join(runs), "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "quality_handoff.json").read_text())
    scored = data["sets"]["bot"]["runs"]
    assert len(scored) == 2 and set(scored[0]) == {"softmax", "centroid", "nearest"}
    for score in scored[0].values():
        assert 0 <= score["auroc"] <= 1 and 0 <= score["in_scope_coverage_at_90"] <= 1
    table = (out / "QUALITY.md").read_text()
    assert "## Hand-off score" in table and "| bot | 2 | centroid |" in table
