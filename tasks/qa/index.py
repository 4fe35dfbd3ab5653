"""Re-indexing a QA export with a new answer bank, without retraining (the scenario behind
`python -m tfapp.qa_index`): new answers are embedded by the export's own encoder
(retrieval mode), or an intent-mode export's answer texts are replaced; the hand-off
threshold is kept or recalibrated on labelled questions."""
from __future__ import annotations

from pathlib import Path

from tfapp.core.errors import DataError

RECORD_FILE = Path("assets.extra") / "qa_index.json"


def intent_bank(loaded, bank, path):
    """For an intent export: the new texts in the model's fixed class order."""
    from tasks.qa.answer_bank import AnswerBank

    trained = [i.decode() for i in loaded.bank_ids.numpy()]
    texts = dict(zip(bank.ids, bank.texts))
    new = [i for i in bank.ids if i not in set(trained)]
    if new:
        raise DataError(path, f"answer id '{new[0]}' is not one of the model's intents; an "
                              f"intent-mode model cannot learn new answers without "
                              f"retraining (retrieval mode can)")
    missing = [i for i in trained if i not in texts]
    if missing:
        raise DataError(path, f"intent '{missing[0]}' of the model has no row (intent-mode "
                              f"banks must cover every intent)")
    return AnswerBank(trained, [texts[i] for i in trained], bank.source)


def calibrate(root, path: Path, question_column: str, answer_column: str, fmt: str,
              target: float) -> dict:
    """Recomputes the hand-off threshold of `root` on labelled questions against its bank."""
    import numpy as np
    import tensorflow as tf

    from tasks.qa.ranking import calibrate_threshold
    from tfapp.core.datasets import read_rows

    index = {i.decode(): k for k, i in enumerate(root.bank_ids.numpy())}
    rows = read_rows(path, [question_column, answer_column], fmt)
    questions, truth = [], []
    for row, values in rows:
        answer_id = values[answer_column].strip()
        if answer_id not in index:
            raise DataError(path, f"answer id '{answer_id}' is not in the new answers file",
                            row, answer_column)
        questions.append(values[question_column])
        truth.append(index[answer_id])
    parts = [root.scores_and_confidence(tf.constant(questions[i:i + 64]))
             for i in range(0, len(questions), 64)]
    scores = np.concatenate([s.numpy() for s, _ in parts])
    confidence = np.concatenate([c.numpy() for _, c in parts])
    correct = scores.argmax(axis=1) == np.array(truth)
    result = calibrate_threshold(confidence, correct, target)
    return {**result, "calibrated_on": str(path)}


def reindexed_root(source: Path, bank, top_k, calibration, question_column: str,
                   answer_id_column: str, fmt: str, target_precision, say):
    """(serving root with the new bank, record of what was done) for the export at `source`."""
    from tasks.qa.answer_bank import AnswerBankModule, embed_texts, load_exported

    loaded = load_exported(source)
    retrieval = hasattr(loaded, "bank_embeddings")
    if not retrieval:
        bank = intent_bank(loaded, bank, bank.source)
    embeddings = embed_texts(loaded.encoder.embed, bank.texts) if retrieval else None
    top_k = top_k or int(loaded.top_k.numpy())
    target = (target_precision if target_precision is not None
              else float(loaded.target_precision.numpy()) if hasattr(loaded, "target_precision")
              else 0.9)
    out_of_scope = (loaded.out_of_scope_id.numpy().decode()
                    if hasattr(loaded, "out_of_scope_id") else "")
    # The hand-off reference (qa.handoff_score centroid / nearest) is the training
    # questions' and stays valid when only the answer texts change.
    reference = (loaded.handoff_reference.numpy()
                 if hasattr(loaded, "handoff_reference") else None)
    root = AnswerBankModule(loaded.encoder, bank, embeddings, float(loaded.threshold.numpy()),
                            top_k, float(loaded.temperature.numpy()), target, out_of_scope,
                            reference)
    record = {"source_export": str(source), "answers": bank.source, "bank_size": len(bank),
              "mode": "retrieval" if retrieval else "intent", "top_k": root._k,
              "threshold": float(root.threshold.numpy()), "calibration": None}
    if calibration:
        result = calibrate(root, Path(calibration), question_column, answer_id_column, fmt,
                           target)
        root.threshold.assign(result["threshold"])
        record.update(threshold=result["threshold"], calibration=result)
        say(f"recalibrated hand-off threshold {result['threshold']:.4f}: precision "
            f"{result['precision']:.4f} at coverage {result['coverage']:.4f} on "
            f"{result['examples']} questions" + ("" if result["reached"] else
                                                 " (target NOT reached: all handed off)"))
    return root, record
