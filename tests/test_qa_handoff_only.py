"""Hand-off without out-of-scope training rows (a support bot's usual data, e.g. HINT3):
qa.out_of_scope_label names no class; its questions exist only in validation and test, are
left out of training and of the ranking metrics, calibrate a balanced threshold on
validation, and are scored as hand-offs on test."""
import json
import random

import numpy as np
import pytest

from tfapp.core.errors import ConfigError
from tfapp.core.task_contract import get_task

from conftest import run_cli, serve_fresh, write_csv

TOPICS = ["shares", "dividend", "merger", "inflation"]
FILLER = ["the", "a", "of", "to", "in", "on", "for", "and", "with", "by", "from", "at"]


def bot_files(tmp_path, seed=0):
    """Intents topic_<word>; 'oos' questions (filler words only) in validation and test."""
    rng = random.Random(seed)
    files = {}
    for split, n in (("train", 10), ("validation", 3), ("test", 3)):
        rows = [{"question": " ".join(rng.sample(FILLER, 3) + [topic]),
                 "answer_id": f"topic_{topic}"} for topic in TOPICS for _ in range(n)]
        if split != "train":
            rows += [{"question": " ".join(rng.sample(FILLER, 4)), "answer_id": "oos"}
                     for _ in range(2 * n)]
        rng.shuffle(rows)
        files[split] = write_csv(tmp_path / f"{split}.csv", rows)
    return files


def task_for(tmp_path, files, label="oos"):
    from test_qa import qa_config

    cfg = qa_config(tmp_path, **{"qa.mode": "intent", "qa.out_of_scope_label": label,
                                 **{f"data.{s}_file": str(f) for s, f in files.items()}})
    return get_task("qa")(cfg)


def test_out_of_scope_questions_only_in_evaluation_are_hand_off_only(tmp_path, capsys):
    from tasks.qa.data import HANDOFF_ONLY

    task = task_for(tmp_path, bot_files(tmp_path))
    splits = task.load_splits()
    assert "oos" not in task.params.intents and len(task.params.intents) == 4
    assert (splits["train"].answers != HANDOFF_ONLY).all()
    for split in ("validation", "test"):
        assert int((splits[split].answers == HANDOFF_ONLY).sum()) == 6
    assert "handed off by the threshold alone" in capsys.readouterr().out
    from tfapp.core.backbone import TextPacker, load_backbone

    packer = TextPacker(load_backbone("tiny").tokenizer, 16)
    rows = sum(int(batch[1].shape[0]) for batch in task.dataset(
        splits["validation"], packer, 4, training=False))
    assert rows == 12  # the in-scope questions only


def test_a_label_found_nowhere_is_still_a_one_line_error(tmp_path):
    files = bot_files(tmp_path)
    files = {s: files["train"] if s == "train" else write_csv(
        tmp_path / f"{s}_in_scope.csv", [r for r in _rows(files[s]) if r["answer_id"] != "oos"])
        for s in files}
    with pytest.raises(ConfigError, match="'oos' is not one of the .* and no validation or "
                                          "test question has it"):
        task_for(tmp_path, files).load_splits()


def _rows(path):
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_balanced_calibration_and_metrics_with_hand_off_only_questions():
    from tasks.qa.data import HANDOFF_ONLY
    from tasks.qa.ranking import calibrate_handoff, out_of_scope_metrics

    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.6, 0.4], [0.5, 0.5]])
    answers = np.array([0, 1, HANDOFF_ONLY, HANDOFF_ONLY, 0])
    c = calibrate_handoff(scores, answers, HANDOFF_ONLY, 0.9)
    assert c["objective"] == "balanced" and 0.6 < c["threshold"] <= 0.8
    m = out_of_scope_metrics(scores, answers, HANDOFF_ONLY, c["threshold"])
    assert (m["in_scope"], m["out_of_scope"]) == (3, 2)
    assert m["out_of_scope_recall"] == 1.0 and m["in_scope_coverage"] == pytest.approx(2 / 3)


@pytest.mark.integration  # a CLI training job and a fresh-process export check (~1 minute)
def test_hand_off_only_end_to_end(tmp_path):
    files = bot_files(tmp_path)
    run_dir = tmp_path / "run"
    result = run_cli(
        "tfapp.train", "--task", "qa", "--backbone", "tiny", "--epochs", 8,
        "--run-dir", run_dir, "--set", "qa.mode=intent", "--set", "qa.out_of_scope_label=oos",
        *[x for s, f in files.items() for x in ("--set", f"data.{s}_file={f}")],
        "--set", "optimizer.learning_rate=3e-3", "--set", "backbone.max_seq_length=16")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    oos = metrics["test"]["out_of_scope"]
    assert (oos["in_scope"], oos["out_of_scope"]) == (12, 6)
    assert metrics["test"]["ranking"]["examples"] == 12
    assert metrics["calibration"]["objective"] == "balanced"
    threshold = metrics["calibration"]["threshold"]
    served = serve_fresh(run_dir / "export" / "qa" / "1", ["the of dividend", "to a in for"])
    assert served["handoff"] == [c < threshold for c in served["confidence"]]
    # The default qa.handoff_score in intent mode: the nearest training question.
    assert metrics["calibration"]["handoff_score"] == "nearest"
    assert metrics["calibration"]["reference_size"] >= 4
