"""Customer-service QA task: whole-bank metrics, calibration, both modes training on a
generated task, export served from a fresh process, and re-indexing without retraining."""
import json
import random

import numpy as np
import pytest

from tasks.qa.ranking import calibrate_threshold, precision_coverage, ranking_metrics, true_ranks
from tfapp.core.backbone import _TINY_WORDS
from tfapp.core.errors import ConfigError, DataError
from tfapp.core.task_contract import get_task

from conftest import REPO, run_cli, serve_fresh, write_csv

# --- whole-bank ranking metrics ------------------------------------------------------


def test_ranking_metrics_on_hand_built_ranks():
    scores = np.array([[0.9, 0.1, 0.3, 0.2],    # true 0: rank 1
                       [0.5, 0.2, 0.8, 0.1],    # true 1: 0.5 and 0.8 above it -> rank 3
                       [0.4, 0.4, 0.1, 0.0],    # true 1: tied with 0 -> rank 2 (pessimistic)
                       [0.1, 0.2, 0.3, 0.4]])   # true 0: last -> rank 4
    truth = np.array([0, 1, 1, 0])
    assert true_ranks(scores, truth).tolist() == [1, 3, 2, 4]
    m = ranking_metrics(scores, truth, ks=(1, 3, 5, 10))
    assert m["top1_accuracy"] == m["recall@1"] == 0.25
    assert m["recall@3"] == 0.75 and m["recall@5"] == 1.0 and m["recall@10"] == 1.0
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1 / 4) / 4)
    assert m["bank_size"] == 4 and m["examples"] == 4


def test_equal_scores_rank_at_chance_not_first():
    m = ranking_metrics(np.zeros([5, 10]), np.arange(5))
    assert m["top1_accuracy"] == 0.0 and m["recall@10"] == 1.0 and m["mrr"] == 0.1


# --- hand-off threshold calibration --------------------------------------------------


def test_calibration_hits_target_with_most_coverage():
    scores = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0], bool)
    # Precision of the top-n answered: 1,1,1,1,1,.833,.857,.75,.667,.6
    c = calibrate_threshold(scores, correct, 0.9)
    assert (c["threshold"], c["coverage"], c["precision"], c["reached"]) == (0.6, 0.5, 1.0, True)
    c = calibrate_threshold(scores, correct, 0.85)
    assert c["threshold"] == 0.4 and c["coverage"] == 0.7 and c["precision"] == pytest.approx(6 / 7)
    assert calibrate_threshold(scores, correct, 0.5)["coverage"] == 1.0


def test_calibration_on_random_scores_is_the_lowest_threshold_reaching_target():
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=2000)
    correct = rng.uniform(size=2000) < scores  # higher score, more often right
    for target in (0.7, 0.8, 0.9, 0.95):
        c = calibrate_threshold(scores, correct, target)
        assert c["reached"] and c["precision"] >= target
        assert c == {**c, **precision_coverage(scores, correct, c["threshold"])}
        lower = scores[scores < c["threshold"]]
        # No lower observed score reaches the target: coverage is maximal.
        assert all(precision_coverage(scores, correct, t)["precision"] < target
                   for t in np.sort(lower)[-50:])


def test_unreachable_target_hands_everything_off_and_ties_are_not_split():
    c = calibrate_threshold(np.array([0.9, 0.8]), np.array([False, False]), 0.9)
    assert not c["reached"] and c["coverage"] == 0.0 and c["threshold"] > 0.9
    # The right answer at 0.9 is tied with a wrong one: a threshold cannot take only it.
    c = calibrate_threshold(np.array([0.9, 0.9, 0.5]), np.array([True, False, True]), 0.9)
    assert not c["reached"]


# --- data validation -----------------------------------------------------------------


def qa_config(tmp_path, **overrides):
    from tfapp.core.config import apply_overrides, build_config, read_yaml

    raw = read_yaml(REPO / "configs" / "qa.yaml")
    sets = {"backbone.name": "tiny", "trainer.epochs": 1, "run.root": str(tmp_path / "runs"),
            **overrides}
    raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    return build_config(raw, get_task("qa").Config, "test")


def small_files(tmp_path, answers=None, questions=None):
    answers = answers or [{"answer_id": "a", "answer": "reset your passcode in the app"},
                          {"answer_id": "b", "answer": "freeze the card and order a new one"}]
    questions = questions or [{"question": f"question {i}", "answer_id": "ab"[i % 2]}
                              for i in range(20)]
    return (write_csv(tmp_path / "answers.csv", answers),
            write_csv(tmp_path / "questions.csv", questions))


@pytest.mark.parametrize("case, message", [
    ("duplicate", "answers.csv: row 3: field 'answer_id': duplicate answer id 'a' "
                  "(first at row 2)"),
    ("empty_text", "answers.csv: row 3: field 'answer': empty answer text for 'b'"),
    ("id_column", "answers.csv: row 1: field 'answer_id': column 'answer_id' not found in "
                  "header (columns: id, answer)"),
    ("unknown_answer", "questions.csv: row 4: field 'answer_id': answer id 'zzz' is not in "
                       "the answers file"),
])
def test_bad_answers_and_questions_are_one_clear_line(tmp_path, case, message):
    answers = [{"answer_id": "a", "answer": "one"}, {"answer_id": "b", "answer": "two"}]
    questions = [{"question": f"q {i}", "answer_id": "ab"[i % 2]} for i in range(20)]
    if case == "duplicate":
        answers[1]["answer_id"] = "a"
    elif case == "empty_text":
        answers[1]["answer"] = "  "
    elif case == "id_column":
        answers = [{"id": r["answer_id"], "answer": r["answer"]} for r in answers]
    elif case == "unknown_answer":
        questions[2]["answer_id"] = "zzz"
    answers_file, questions_file = small_files(tmp_path, answers, questions)
    cfg = qa_config(tmp_path, **{"data.train_file": str(questions_file),
                                 "qa.answers_file": str(answers_file)})
    with pytest.raises(DataError) as e:
        get_task("qa")(cfg).load_splits()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_retrieval_without_answers_file_and_bad_mode_are_config_errors(tmp_path):
    _, questions = small_files(tmp_path)
    with pytest.raises(ConfigError, match="qa.answers_file is required"):
        get_task("qa")(qa_config(tmp_path, **{"data.train_file": str(questions)})
                             ).load_splits()
    with pytest.raises(ConfigError, match="qa.mode must be retrieval or intent"):
        get_task("qa")(qa_config(tmp_path, **{"qa.mode": "generative"}))


def test_cli_bad_answers_file_exits_2_and_writes_nothing(tmp_path):
    answers, questions = small_files(tmp_path, answers=[
        {"answer_id": "a", "answer": "one"}, {"answer_id": "a", "answer": "two"}])
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "qa", "--backbone", "tiny", "--run-dir", run_dir,
                     "--set", f"data.train_file={questions}", "--set",
                     f"qa.answers_file={answers}")
    assert result.returncode == 2
    # (TensorFlow's own start-up lines may precede it on stderr.)
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [
        f"error: {answers}: row 3: field 'answer_id': duplicate answer id 'a' (first at row 2)"]
    assert not run_dir.exists()


# --- training on a generated task ----------------------------------------------------

FILLER = "the a of to in on for and with by from at is are was it this".split()


def keyword_task(tmp_path, n_answers: int, per_answer: int, seed: int = 0):
    """Answer i is about keyword i; its questions mention the keyword among filler words.
    Writes answers.csv and train/validation/test question files; returns their paths."""
    rng = random.Random(seed)
    keywords = [w for w in dict.fromkeys(_TINY_WORDS) if w not in FILLER][:n_answers]
    assert len(keywords) == n_answers
    answers = [{"answer_id": f"faq_{i:03d}", "answer": f"{kw} is handled by our {kw} team"}
               for i, kw in enumerate(keywords)]
    files = {}
    for split, n in (("train", per_answer), ("validation", 2), ("test", 2)):
        rows = []
        for i, kw in enumerate(keywords):
            for _ in range(n):
                words = rng.sample(FILLER, 4)
                words.insert(rng.randrange(5), kw)
                rows.append({"question": " ".join(words) + "?", "answer_id": f"faq_{i:03d}"})
        rng.shuffle(rows)
        files[split] = write_csv(tmp_path / f"{split}.csv", rows)
    files["answers"] = write_csv(tmp_path / "answers.csv", answers)
    return files


def train_keyword_task(tmp_path, mode, n_answers, per_answer, epochs):
    files = keyword_task(tmp_path, n_answers, per_answer)
    run_dir = tmp_path / f"run_{mode}"
    result = run_cli(
        "tfapp.train", "--task", "qa", "--backbone", "tiny", "--epochs", epochs,
        "--run-dir", run_dir,
        "--set", f"qa.mode={mode}", "--set", f"qa.answers_file={files['answers']}",
        "--set", f"data.train_file={files['train']}",
        "--set", f"data.validation_file={files['validation']}",
        "--set", f"data.test_file={files['test']}",
        "--set", "optimizer.learning_rate=3e-3", "--set", "trainer.early_stopping_patience=10",
        "--set", "backbone.max_seq_length=32")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, files, result.stdout


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory):
    return train_keyword_task(tmp_path_factory.mktemp("qa_retrieval"), "retrieval",
                              n_answers=24, per_answer=8, epochs=8)


def test_retrieval_mode_learns_far_above_chance(retrieval_run):
    run_dir, _, stdout = retrieval_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]["ranking"]
    assert test["bank_size"] == 24 and test["examples"] == 48
    # Chance: top-1 1/24 = 0.04, MRR ~0.16.
    assert test["top1_accuracy"] >= 0.3 and test["mrr"] >= 0.45, test
    assert test["recall@5"] >= test["recall@3"] >= test["top1_accuracy"]
    cal = metrics["calibration"]
    assert cal["target_precision"] == 0.9 and set(cal) >= {"threshold", "coverage", "reached"}
    assert json.loads((run_dir / "calibration.json").read_text()) == cal
    assert "val_mrr" in stdout and "calibration: threshold" in stdout
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "hand-off threshold" in card and "mode: retrieval" in card


def test_retrieval_run_logs_bank_metrics_and_projector(retrieval_run):
    import tensorflow as tf

    run_dir, _, _ = retrieval_run
    tags = set()
    for path in (run_dir / "logs" / "validation").rglob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(v.tag for v in event.summary.value)
    assert {"epoch_mrr", "epoch_recall_at_5", "epoch_top1_accuracy", "epoch_loss"} <= tags
    projector = run_dir / "logs" / "projector"
    assert (projector / "projector_config.pbtxt").is_file()
    assert len((projector / "metadata.tsv").read_text().splitlines()) == 1 + 24


@pytest.mark.integration  # a minute of multi-process or large-model training
def test_intent_mode_learns_105_intents_far_above_chance(tmp_path):
    run_dir, _, _ = train_keyword_task(tmp_path, "intent", n_answers=105, per_answer=6,
                                       epochs=8)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]["ranking"]
    assert test["bank_size"] == 105
    # Chance: top-1 1/105 = 0.01.
    assert test["top1_accuracy"] >= 0.5 and test["recall@10"] >= 0.8, test
    served = serve_fresh(run_dir / "export" / "qa" / "1", ["in the deal for a?"])
    assert len(served["answer_ids"][0]) == 5
    assert all(i.startswith("faq_") for i in served["answer_ids"][0])


# --- export and re-indexing ----------------------------------------------------------

def test_export_in_fresh_process_matches_in_process_top_k(retrieval_run):
    import tensorflow as tf

    from tfapp.training.restore import restore_run

    run_dir, files, _ = retrieval_run
    questions = ["of the profit for a?", "is it about revenue", "Hello!", ""]
    served = serve_fresh(run_dir / "export" / "qa" / "1", questions)
    restored = restore_run(run_dir)
    _, task, _, packer = restored
    root, signatures = task.serving_root(restored.served(), packer)
    local = signatures["serving_default"](question=tf.constant(questions))
    ids = [[x.decode() for x in row] for row in local["answer_ids"].numpy().tolist()]
    assert served["answer_ids"] == ids and len(ids[0]) == 5
    np.testing.assert_allclose(served["scores"], local["scores"].numpy(), atol=1e-5)
    assert served["handoff"] == local["handoff"].numpy().tolist()
    # handoff is exactly "best score below the calibrated threshold".
    threshold = json.loads((run_dir / "calibration.json").read_text())["threshold"]
    assert served["handoff"] == [row[0] < threshold for row in served["scores"]]
    assert served["confidence"] == [row[0] for row in served["scores"]]  # softmax in retrieval
    emb = np.array(served["embedding"])
    assert emb.shape == (4, 256)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # In-process ranking over the bank agrees with the export's first answer.
    scores = task.bank_scores(restored.served(), questions, packer)
    assert [task.bank.ids[i] for i in scores.argmax(axis=1)] == [row[0] for row in ids]


def test_reindexing_adds_an_answer_that_is_then_retrieved(retrieval_run, tmp_path):
    run_dir, files, _ = retrieval_run
    base = run_dir / "export" / "qa"
    before = {p: p.read_bytes() for p in (base / "1").rglob("*") if p.is_file()}
    new_text = "dividend dividend payout schedule"
    rows = [{"answer_id": "new_dividend_faq", "answer": new_text}]
    with open(files["answers"], encoding="utf-8") as f:
        import csv
        rows += list(csv.DictReader(f))
    new_bank = write_csv(tmp_path / "new_faq.csv", rows)

    # A broken bank is refused before anything is written.
    bad = write_csv(tmp_path / "bad.csv", rows + [rows[0]])
    result = run_cli("tfapp.qa_index", "--model", base, "--answers", bad)
    assert result.returncode == 2 and "duplicate answer id 'new_dividend_faq'" in result.stderr
    assert sorted(p.name for p in base.iterdir()) == ["1"]

    result = run_cli("tfapp.qa_index", "--model", base, "--answers", new_bank,
                     "--calibration", files["validation"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recalibrated hand-off threshold" in result.stdout
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    assert before == {p: p.read_bytes() for p in (base / "1").rglob("*") if p.is_file()}
    record = json.loads((base / "2" / "assets.extra" / "qa_index.json").read_text())
    assert record["bank_size"] == 25 and record["calibration"]["examples"] == 48

    served = serve_fresh(base / "2", [new_text, "of the profit for a?"])
    assert served["answer_ids"][0][0] == "new_dividend_faq"
    assert served["answer_texts"][0][0] == new_text
    old = serve_fresh(base / "1", ["of the profit for a?"])
    assert "new_dividend_faq" not in old["answer_ids"][0]
    # The encoder is unchanged: the same question embeds identically in both versions.
    np.testing.assert_allclose(served["embedding"][1], old["embedding"][0], atol=1e-6)


def test_evaluate_cli_ranks_a_labelled_file_against_the_runs_bank(retrieval_run):
    run_dir, files, _ = retrieval_run
    result = run_cli("tfapp.evaluate", "--run", run_dir, "--data", files["test"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "retrieval: top-1" in result.stdout and "hand-off at threshold" in result.stdout
    metrics = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert metrics["ranking"] == pytest.approx(saved["ranking"])
    assert metrics["handoff"]["threshold"] == saved["handoff"]["threshold"]


def test_hard_negatives_and_repeated_answers_in_the_dual_encoder_batch(tmp_path):
    import tensorflow as tf

    from tfapp.core.backbone import TextPacker, load_backbone

    answers = [{"answer_id": k, "answer": f"answer about {w}"}
               for k, w in (("a", "profit"), ("b", "loss"), ("c", "debt"), ("d", "rates"))]
    questions = [{"question": "profit up?", "answer_id": "a", "close": "c"},
                 {"question": "profit again?", "answer_id": "a", "close": ""},
                 {"question": "loss?", "answer_id": "b", "close": "d|c"}]
    answers_file = write_csv(tmp_path / "answers.csv", answers)
    questions_file = write_csv(tmp_path / "q.csv", questions * 4)
    cfg = qa_config(tmp_path, **{"data.train_file": str(questions_file),
                                 "data.validation_file": str(questions_file),
                                 "qa.answers_file": str(answers_file),
                                 "qa.hard_negatives_column": "close"})
    task = get_task("qa")(cfg)
    splits = task.load_splits()
    assert splits["validation"].negatives[:3] == [[2], [], [3, 2]]
    loaded = load_backbone("tiny")
    packer = TextPacker(loaded.tokenizer, 32)
    x, y = next(iter(task.dataset(splits["validation"], packer, 3, training=False)))
    assert x["answer_index"].numpy().tolist() == [0, 0, 1]
    assert x["negative_index"].numpy()[0] == 2 and x["negative_index"].numpy()[1] == -1
    assert x["negative_index"].numpy()[2] in (2, 3)
    assert y.numpy().tolist() == [0, 0, 0]
    model = task.build_model(loaded)
    logits = model(x).numpy()
    # Distinct candidates: answers a, b and the sampled negatives (c, maybe d).
    n_candidates = len({0, 1, 2, int(x["negative_index"].numpy()[2])})
    assert logits.shape == (3, 1 + n_candidates)
    # Each row's own answer appears only in column 0; its other copy is masked out.
    assert (logits[:, 1:] < -1e8).sum(axis=1).tolist() == [1, 1, 1]
    q0 = task._encoder_of(model)(packer(tf.constant(["profit up?"])))["embedding"]
    a0 = task._encoder_of(model)(packer(tf.constant(["answer about profit"])))["embedding"]
    expected = float(tf.reduce_sum(q0 * a0)) / cfg.params.temperature
    assert logits[0, 0] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    loss = task.compile_args()["loss"](y, model(x))
    assert np.isfinite(float(loss)) and float(loss) > 0


# --- balanced hand-off calibration (out-of-scope intent) -----------------------------


def _brute_force_balanced(top, correct, oos, said_oos):
    best, best_value = None, -1.0
    for t in np.concatenate([[-np.inf], np.sort(np.unique(top))]):
        handoff = said_oos | (top < t)
        value = (correct & ~handoff)[~oos].mean() + handoff[oos].mean()
        if value > best_value + 1e-12:
            best, best_value = t, value
    return best, best_value


def test_balanced_threshold_maximises_accuracy_plus_recall():
    from tasks.qa.ranking import balanced_threshold

    rng = np.random.default_rng(1)
    for trial in range(20):
        n = 300
        oos = rng.uniform(size=n) < 0.2
        top = np.round(np.where(oos, rng.beta(2, 3, n), rng.beta(5, 2, n)), 2)  # with ties
        correct = ~oos & (rng.uniform(size=n) < top)
        said_oos = oos & (rng.uniform(size=n) < 0.3)
        c = balanced_threshold(top, correct, oos, said_oos)
        threshold, value = _brute_force_balanced(top, correct, oos, said_oos)
        assert c["threshold"] == threshold
        assert c["in_scope_accuracy_answered"] + c["out_of_scope_recall"] == \
            pytest.approx(value)


def test_balanced_threshold_ignores_the_out_of_scope_share():
    """Repeating the out-of-scope questions (3% -> 18% of the set) moves a precision
    target's threshold but not the balanced one."""
    from tasks.qa.ranking import balanced_threshold

    rng = np.random.default_rng(2)
    n_in, n_out = 970, 30
    top = np.concatenate([rng.beta(6, 2, n_in), rng.beta(2, 3, n_out)])
    oos = np.arange(n_in + n_out) >= n_in
    correct = ~oos & (rng.uniform(size=n_in + n_out) < top)
    said = np.zeros_like(oos)
    few = balanced_threshold(top, correct, oos, said)
    many = np.concatenate([np.arange(n_in)] + [np.arange(n_in, n_in + n_out)] * 7)
    more = balanced_threshold(top[many], correct[many], oos[many], said[many])
    assert few["threshold"] == more["threshold"]
    assert calibrate_threshold(top, correct, 0.8)["threshold"] < \
        calibrate_threshold(top[many], correct[many], 0.8)["threshold"]


def test_calibrate_handoff_falls_back_to_precision_without_out_of_scope_questions():
    from tasks.qa.ranking import calibrate_handoff

    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.1, 0.3, 0.6]])
    with_oos = calibrate_handoff(scores, np.array([0, 1, 2, 2]), 2, 0.9)
    assert with_oos["objective"] == "balanced"
    # Question 2 (out of scope, best answer 0 at 0.5) is caught only by a threshold > 0.5;
    # the lowest observed top score above it is 0.6.
    assert with_oos["threshold"] == 0.6 and with_oos["out_of_scope_recall"] == 1.0
    assert calibrate_handoff(scores, np.array([0, 1, 0, 1]), 2, 0.9)["objective"] == "precision"
    assert calibrate_handoff(scores, np.array([0, 1, 2, 2]), None, 0.9)["objective"] == \
        "precision"


@pytest.mark.parametrize("sets, message", [
    ({"qa.threshold_objective": "best"},
     "qa.threshold_objective must be auto, precision or balanced"),
    ({"qa.threshold_objective": "balanced"},
     "qa.threshold_objective=balanced needs qa.out_of_scope_label"),
])
def test_bad_threshold_objective_is_a_config_error(tmp_path, sets, message):
    with pytest.raises(ConfigError, match=message):
        get_task("qa")(qa_config(tmp_path, **sets))


def test_balanced_objective_without_out_of_scope_validation_fails_before_training(tmp_path):
    rows = lambda n, ids: [{"question": f"question {i} {a}", "answer_id": a}  # noqa: E731
                           for i in range(n) for a in ids]
    train = write_csv(tmp_path / "train.csv", rows(6, ["a", "b", "oos"]))
    validation = write_csv(tmp_path / "validation.csv", rows(3, ["a", "b"]))
    cfg = qa_config(tmp_path, **{"qa.mode": "intent", "qa.out_of_scope_label": "oos",
                                 "qa.threshold_objective": "balanced",
                                 "data.train_file": str(train),
                                 "data.validation_file": str(validation)})
    with pytest.raises(DataError, match=r"validation.csv: qa.threshold_objective=balanced "
                                        r"needs both in-scope and 'oos' questions"):
        get_task("qa")(cfg).load_splits()
    # auto falls back to the precision target on such a validation set.
    cfg.params.threshold_objective = "auto"
    assert len(get_task("qa")(cfg).load_splits()["validation"]) == 6
