"""bench.scoring: the comparison of tfapp.score with tfapp.predict row by row, the memory
sampler, and one small run of the whole bench on the tiny export."""
from __future__ import annotations

import json
import os

import pytest

from bench.scoring import compare, table, tree_rss

from conftest import REPO, run_cli


def test_compare_counts_differing_labels_and_the_largest_probability_gap():
    predicted = [{"label": "a", "probabilities": {"a": 0.6, "b": 0.4}},
                 {"label": "b", "probabilities": {"a": 0.3, "b": 0.7}},
                 {"label": "a", "probabilities": {"a": 0.9, "b": 0.1}}]
    scored = [{"_row": 2, "label": "b", "probabilities": {"a": 0.31, "b": 0.69}},
              {"_row": 1, "label": "a", "probabilities": {"a": 0.6, "b": 0.4}},
              {"_row": 3, "label": "b", "probabilities": {"a": 0.4, "b": 0.6}}]
    same = compare(predicted, scored)
    assert same["labels_differing"] == 1 and same["rows"] == 3
    assert same["max_probability_difference"] == pytest.approx(0.01)
    assert compare(predicted, scored[:2])["labels_differing"] == 1  # a missing row counts


def test_the_memory_sampler_sees_this_process():
    assert tree_rss(os.getpid()) > 10 * 2 ** 20
    assert tree_rss(2 ** 22 + 12345) == 0  # a process that is gone counts nothing


@pytest.mark.integration
def test_bench_scoring_runs_end_to_end(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    result = run_cli("bench.scoring", "--model", run_dir / "export" / "sentiment",
                     "--texts", 300, "--workers", 1, "--source",
                     REPO / "tasks" / "samples" / "sentiment.csv", "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = json.loads((tmp_path / "scoring.json").read_text())
    predict, score = raw["rows"]
    assert raw["texts"] == 300 and predict["vs_predict"] == 1.0
    assert score["same_as_predict"]["labels_differing"] == 0
    assert score["same_as_predict"]["scored_rows"] == 300 and score["bad"] == 0
    assert score["peak_memory_mb"] > predict["peak_memory_mb"] > 100
    assert 1 <= score["batch_sizes"]["min"] <= score["batch_sizes"]["max"] <= 64
    assert (tmp_path / "scoring.md").read_text().strip() == table(raw)
