"""bench.ensemble_ceiling: ensembles and tuned class offsets of finished sentiment runs."""
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from bench.ensemble_ceiling import ensemble_f1, log_softmax, macro_f1, main, markdown, tune_offsets

from conftest import keyword_sentiment_csv, run_cli


def test_macro_f1_matches_scikit_learn():
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    assert macro_f1(labels, predicted, 3) == pytest.approx(
        f1_score(labels, predicted, average="macro"))


def test_offsets_undo_a_bias_towards_one_class():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    logits = 2.0 * np.eye(3)[labels] + rng.normal(0, 0.7, (600, 3)) + [2.5, 0.0, 0.0]
    before = macro_f1(labels, logits.argmax(axis=1), 3)
    offsets = tune_offsets(log_softmax(logits), labels)
    after = macro_f1(labels, (log_softmax(logits) + offsets).argmax(axis=1), 3)
    assert after > before + 0.1
    assert offsets[0] < offsets[1] and offsets[0] < offsets[2]
    assert offsets.mean() == pytest.approx(0.0)


def test_offsets_stay_zero_when_nothing_helps():
    labels = np.array([0, 1, 2, 0, 1, 2])
    logits = 5.0 * np.eye(3)[labels]
    assert np.allclose(tune_offsets(log_softmax(logits), labels), 0.0)


def test_an_ensemble_corrects_what_its_members_get_wrong_apart():
    labels = np.array([0, 1, 0, 1])
    confident = lambda wrong: np.array([  # noqa: E731
        [0.0, 3.0] if i == wrong else ([3.0, 0.0] if y == 0 else [0.0, 3.0])
        for i, y in enumerate(labels)])
    a, b = confident(0), confident(2)
    # Each member is wrong on one (different) example, less sure than the other is right.
    a[0], b[2] = [0.0, 1.0], [0.0, 1.0]
    assert macro_f1(labels, a.argmax(axis=1), 2) < 1.0
    assert ensemble_f1([a, b], labels) == pytest.approx(1.0)


def test_cli_reads_finished_runs_and_writes_the_table(tmp_path):
    train = keyword_sentiment_csv(tmp_path / "train.csv", n=180, seed=0)
    test = keyword_sentiment_csv(tmp_path / "test.csv", n=60, seed=1)
    runs = []
    for seed in (1, 2):
        run_dir = tmp_path / f"seed{seed}"
        result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                         "--epochs", "1", "--set", f"seed={seed}",
                         "--set", f"data.train_file={train}", "--set", f"data.test_file={test}",
                         "--set", "data.split=[0.8,0.2,0.0]",
                         "--set", "sentiment.topic_column=null",
                         "--run-dir", run_dir)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        runs.append(run_dir)
    out = tmp_path / "ceiling"
    main(["--runs", *map(str, runs), "--name", "tiny", "--out", str(out)])
    result = json.loads((out / "ceiling.json").read_text())
    recipe = result["recipes"][0]
    assert recipe["name"] == "tiny" and list(recipe["ensembles"]) == ["2"]
    for row, run_dir in zip(recipe["runs"], runs):
        # The run's own test metric, recomputed from its model.
        recorded = json.loads((run_dir / "metrics.json").read_text())["test"]["sentiment"]
        assert row["test_macro_f1"] == pytest.approx(recorded["macro_f1"], abs=1e-6)
        assert len(row["offsets"]) == 3 and row["validation_seen"] is False
        assert row["seconds"] == json.loads((run_dir / "metrics.json").read_text())["wall_seconds"]
        assert row["validation_macro_f1_offsets"] >= row["validation_macro_f1"]
    table = (out / "CEILING.md").read_text()
    assert "## tiny" in table
    assert "| recipe | one run | with tuned offsets | ensemble of 2 |" in table


def test_cli_refuses_a_name_count_that_differs_from_the_run_lists(tmp_path):
    with pytest.raises(SystemExit):
        main(["--runs", "a", "--runs", "b", "--name", "x", "--out", str(tmp_path)])


def test_the_table_warns_when_runs_trained_on_their_validation_split():
    row = {"run": "r", "seconds": 1.0, "test_macro_f1": 0.8, "validation_macro_f1": 0.9,
           "offsets": [0.0, 0.0], "validation_macro_f1_offsets": 0.9,
           "test_macro_f1_offsets": 0.8}
    result = {"command": "c", "date": "d", "machine": "m", "recipes": [
        {"name": "plain", "runs": [{**row, "validation_seen": False}], "ensembles": {}},
        {"name": "refit", "runs": [{**row, "validation_seen": True}], "ensembles": {}}]}
    table = markdown(result)
    assert "| recipe | one run | with tuned offsets |\n|---|---|---|\n" in table
    assert "| plain | 0.8000 ± 0.0000 | 0.8000 |" in table
    assert table.count("trained on") == 1
    assert table.index("trained on") > table.index("## refit")
