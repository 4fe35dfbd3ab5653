"""QA intent mode with an explicit out-of-scope intent (qa.out_of_scope_label): test metrics
report in-scope accuracy, out-of-scope recall and in-scope coverage, and the export hands
off every question whose best answer is the out-of-scope intent."""
import json
import random

import pytest

from conftest import run_cli, serve_fresh, write_csv

# Three training jobs (~1 minute): with the integration set, which .ci/run also runs.
pytestmark = [pytest.mark.slow, pytest.mark.integration]

TOPICS = ["shares", "dividend", "merger", "inflation", "earnings", "debt"]
FILLER = ["the", "a", "of", "to", "in", "on", "for", "and", "with", "by", "from", "at"]


def intent_files(tmp_path, seed=0):
    """Intents topic_<word> plus 'oos' questions made of filler words only."""
    rng = random.Random(seed)
    files = {}
    for split, n in (("train", 10), ("validation", 3), ("test", 3)):
        rows = []
        for topic in TOPICS:
            for _ in range(n):
                words = rng.sample(FILLER, 4)
                words.insert(rng.randrange(5), topic)
                rows.append({"question": " ".join(words), "answer_id": f"topic_{topic}"})
        for _ in range(2 * n):
            rows.append({"question": " ".join(rng.sample(FILLER, 5)), "answer_id": "oos"})
        rng.shuffle(rows)
        files[split] = write_csv(tmp_path / f"{split}.csv", rows)
    return files


def train(tmp_path, files, *extra):
    return run_cli(
        "tfapp.train", "--task", "qa", "--backbone", "tiny", "--epochs", 10,
        "--set", "trainer.early_stopping_patience=20",
        "--run-dir", tmp_path / "run", "--set", "qa.mode=intent",
        "--set", f"data.train_file={files['train']}",
        "--set", f"data.validation_file={files['validation']}",
        "--set", f"data.test_file={files['test']}",
        "--set", "optimizer.learning_rate=3e-3", "--set", "backbone.max_seq_length=16", *extra)


@pytest.fixture(scope="module")
def oos_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa_oos")
    files = intent_files(tmp)
    result = train(tmp, files, "--set", "qa.out_of_scope_label=oos")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp / "run", files, result.stdout


def test_out_of_scope_metrics_on_test(oos_run):
    run_dir, _, stdout = oos_run
    oos = json.loads((run_dir / "metrics.json").read_text())["test"]["out_of_scope"]
    assert oos["in_scope"] == 18 and oos["out_of_scope"] == 6
    for key in ("in_scope_accuracy", "out_of_scope_recall", "in_scope_coverage"):
        assert 0.0 <= oos[key] <= 1.0
    # A learnable task: topics are one keyword, out-of-scope questions have none.
    assert oos["in_scope_accuracy"] >= 0.4  # chance: 1 in 7
    assert "out-of-scope recall" in stdout
    # Calibrated balanced: the validation set holds out-of-scope questions.
    assert "balanced on validation" in (run_dir / "MODEL_CARD.md").read_text()


def test_export_hands_off_the_out_of_scope_intent(oos_run):
    run_dir, _, _ = oos_run
    threshold = json.loads((run_dir / "calibration.json").read_text())["threshold"]
    questions = ["the dividend of a", "to the and for", "from at by with", "merger in the"]
    served = serve_fresh(run_dir / "export" / "qa" / "1", questions)
    expected = [ids[0] == "oos" or confidence < threshold
                for ids, confidence in zip(served["answer_ids"], served["confidence"])]
    assert served["handoff"] == expected


def test_unknown_out_of_scope_label_is_a_one_line_error(tmp_path):
    files = intent_files(tmp_path)
    result = train(tmp_path, files, "--set", "qa.out_of_scope_label=nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: qa.out_of_scope_label 'nope' is not one of the")
    assert "no validation or test question has it" in result.stderr
    assert not (tmp_path / "run").exists()
