"""qa.handoff_score: the confidence the hand-off threshold applies to (softmax, or cosine
similarity to the nearest intent centroid / training question), the same in calibration,
evaluation, the export and re-indexing."""
import numpy as np
import pytest
from test_qa import qa_config
from test_qa_handoff_only import bot_files

from tfapp.core.errors import ConfigError
from tfapp.core.task_contract import get_task

from conftest import write_csv


def test_reference_sets_leave_out_out_of_scope_questions():
    from tasks.qa.data import HANDOFF_ONLY
    from tasks.qa.handoff import reference_set

    e = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1.0]])
    answers = np.array([0, 0, 1, 1, 2, HANDOFF_ONLY])  # 2 is the out-of-scope class
    nearest = reference_set("nearest", e, answers, out_of_scope=2)
    # The repeated question counts once; class 2 and the hand-off-only row are left out.
    assert sorted(map(tuple, nearest.round(3))) == [(0, 1, 0), (0.6, 0.8, 0), (1, 0, 0)]
    centroid = reference_set("centroid", e, answers, out_of_scope=2)
    np.testing.assert_allclose(centroid, [[0.8 / np.sqrt(0.8), 0.4 / np.sqrt(0.8), 0],
                                          [0, 1, 0]], atol=1e-3)
    assert centroid.dtype == np.float32
    np.testing.assert_array_equal(centroid, centroid.astype(np.float16))  # as served
    # Without an out-of-scope class, class 2 is an intent like the others.
    assert len(reference_set("centroid", e, answers, out_of_scope=None)) == 3
    with pytest.raises(ValueError, match="no in-scope training question"):
        reference_set("nearest", e[:1], np.array([HANDOFF_ONLY]), None)


def test_confidence_is_the_top_probability_or_the_nearest_similarity():
    from tasks.qa.handoff import confidence

    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    np.testing.assert_allclose(confidence(probs, None, None), [0.7, 0.6])
    reference = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    emb = np.array([[0.6, 0.8], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(confidence(probs, emb, reference), [0.8, 1.0])


@pytest.mark.parametrize("sets, message", [
    ({"qa.handoff_score": "distance"},
     "qa.handoff_score must be auto, softmax, centroid or nearest"),
    ({"qa.handoff_score": "nearest"},
     "qa.handoff_score=nearest needs qa.mode=intent"),
])
def test_bad_handoff_score_is_a_config_error(tmp_path, sets, message):
    with pytest.raises(ConfigError, match=message):
        get_task("qa")(qa_config(tmp_path, **sets))


def _intent_task(tmp_path, score):
    files = bot_files(tmp_path)
    cfg = qa_config(tmp_path, **{"qa.mode": "intent", "qa.out_of_scope_label": "oos",
                                 "qa.handoff_score": score, "backbone.max_seq_length": 16,
                                 **{f"data.{s}_file": str(f) for s, f in files.items()}})
    return get_task("qa")(cfg)


def _untrained(tmp_path, score):
    """(task, splits, untrained tiny model, packer) for the bot files at `score`."""
    from tfapp.core.backbone import TextPacker, load_backbone

    task = _intent_task(tmp_path, score)
    splits = task.load_splits()
    loaded = load_backbone("tiny")
    return task, splits, task.build_model(loaded), TextPacker(loaded.tokenizer, 16)


@pytest.mark.parametrize("score", ["auto", "centroid", "softmax"])
def test_calibration_evaluation_and_export_share_the_confidence(tmp_path, score):
    import tensorflow as tf

    task, splits, model, packer = _untrained(tmp_path, score)
    calibration = task.calibrate(model, splits["validation"], packer)
    task.set_calibration(calibration)
    resolved = {"auto": "nearest"}.get(score, score)
    assert calibration["handoff_score"] == resolved
    reference = task.handoff_reference(model, packer)
    if resolved == "softmax":
        assert reference is None and "reference_size" not in calibration
    else:  # 40 distinct training questions, or the 4 intents' centroids
        assert calibration["reference_size"] == len(reference) == \
            {"nearest": len(set(splits["train"].questions)), "centroid": 4}[resolved]
    test = splits["test"]
    scores, confidence = task.scored(model, test.questions, packer)
    metrics = task.evaluate(model, test, packer)
    threshold = calibration["threshold"]
    handed_off = confidence < threshold
    assert metrics["out_of_scope"]["in_scope_coverage"] == pytest.approx(
        float((~handed_off)[test.answers >= 0].mean()))
    root, signatures = task.serving_root(model, packer)
    served = signatures["serving_default"](question=tf.constant(test.questions))
    np.testing.assert_allclose(served["confidence"].numpy(), confidence, atol=2e-3)
    np.testing.assert_allclose(served["scores"].numpy()[:, 0], scores.max(axis=1), atol=1e-4)
    assert served["handoff"].numpy().tolist() == (
        served["confidence"].numpy() < np.float32(threshold)).tolist()
    if resolved == "softmax":
        np.testing.assert_array_equal(served["confidence"].numpy(),
                                      served["scores"].numpy()[:, 0])
    else:  # the export's reference is the one calibration used
        np.testing.assert_array_equal(root.handoff_reference.numpy().astype(np.float32),
                                      reference)


def test_reindexed_intent_export_keeps_the_reference_and_recalibrates_on_it(tmp_path):
    import tensorflow as tf

    from tasks.qa.answer_bank import AnswerBank
    from tasks.qa.index import reindexed_root
    task, splits, model, packer = _untrained(tmp_path, "nearest")
    task.set_calibration(task.calibrate(model, splits["validation"], packer))
    root, signatures = task.serving_root(model, packer)
    export = tmp_path / "export"
    tf.saved_model.save(root, str(export), signatures=signatures)
    bank = AnswerBank(list(task.bank.ids), [f"new text {i}" for i in task.bank.ids], "new.csv")
    in_scope = [{"question": q, "answer_id": task.bank.ids[a]}
                for q, a in zip(splits["test"].questions, splits["test"].answers) if a >= 0]
    labelled = write_csv(tmp_path / "labelled.csv", in_scope)
    new_root, record = reindexed_root(export, bank, None, str(labelled), "question",
                                      "answer_id", "csv", 0.5, lambda _: None)
    np.testing.assert_array_equal(new_root.handoff_reference.numpy(),
                                  root.handoff_reference.numpy())
    questions = [r["question"] for r in in_scope]
    _, confidence = new_root.scores_and_confidence(tf.constant(questions))
    # The recalibrated threshold is one of the labelled questions' confidences (or above all).
    assert record["calibration"]["threshold"] >= float(confidence.numpy().min())
    assert record["calibration"]["examples"] == len(questions)
    out = new_root.answer(tf.constant(questions))
    assert [t.decode() for t in out["answer_texts"].numpy()[:, 0]][0].startswith("new text")


def test_a_run_calibrated_before_handoff_scores_keeps_softmax(tmp_path):
    task, splits, model, packer = _untrained(tmp_path, "auto")
    task.set_calibration({"threshold": 0.5, "objective": "balanced"})  # an older run's file
    assert task.handoff_score() == "softmax" and task.handoff_reference(model, packer) is None
    scores, confidence = task.scored(model, splits["test"].questions, packer)
    np.testing.assert_array_equal(confidence, scores.max(axis=1))
