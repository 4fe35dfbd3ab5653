"""python -m tfapp.qa_index --model EXPORT --answers NEW_FAQ.csv

Writes a new version of a QA export with a new answer bank, without retraining: the new
answers are embedded by the export's own encoder (retrieval mode), or, for intent-mode
exports, the intents' answer texts are replaced. The hand-off threshold is kept, or
recalibrated against the new bank with --calibration QUESTIONS_FILE.

EXPORT is a version directory (.../qa/3) or a model base (.../qa: its highest version).
The new version is the next one under the same base, unless --base / --version say
otherwise; it is published atomically like every export.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.errors import ConfigError, DataError, cli_main

RECORD_FILE = Path("assets.extra") / "qa_index.json"


def intent_bank(loaded, bank, path):
    """For an intent export: the new texts in the model's fixed class order."""
    from tfapp.answer_bank import AnswerBank

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

    from tfapp.data import read_rows
    from tfapp.ranking import calibrate_threshold

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
    scores = np.concatenate([root.scores(tf.constant(questions[i:i + 64])).numpy()
                             for i in range(0, len(questions), 64)])
    correct = scores.argmax(axis=1) == np.array(truth)
    result = calibrate_threshold(scores.max(axis=1), correct, target)
    return {**result, "calibrated_on": str(path)}


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.qa_index", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="QA export: version dir or model base")
    parser.add_argument("--answers", required=True, help="new FAQ bank (CSV / TSV / JSONL)")
    parser.add_argument("--id-column", default="answer_id")
    parser.add_argument("--text-column", default="answer")
    parser.add_argument("--format", default="auto", choices=["auto", "csv", "tsv", "jsonl"])
    parser.add_argument("--top-k", type=int, help="answers per question (default: the "
                        "export's)")
    parser.add_argument("--calibration", help="labelled questions (question, answer id) to "
                        "recalibrate the hand-off threshold against the new bank")
    parser.add_argument("--question-column", default="question")
    parser.add_argument("--answer-id-column", default="answer_id")
    parser.add_argument("--target-precision", type=float,
                        help="target precision for --calibration (default: the export's)")
    parser.add_argument("--base", help="model base for the new version (default: EXPORT's)")
    parser.add_argument("--version", type=int, help="version number (default: next)")
    args = parser.parse_args(argv)
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError("--top-k must be >= 1")

    from tfapp.answer_bank import (AnswerBankModule, embed_texts, example_inputs,
                                   load_exported, read_answer_bank)
    from tfapp.export import publish_saved_model
    from tfapp.predict import resolve_export
    from tfapp.rundir import dir_size_bytes
    from tfapp.trainer import say

    source = resolve_export(Path(args.model))
    bank = read_answer_bank(args.answers, args.id_column, args.text_column, args.format)
    loaded = load_exported(source)
    retrieval = hasattr(loaded, "bank_embeddings")
    if not retrieval:
        bank = intent_bank(loaded, bank, args.answers)
    embeddings = embed_texts(loaded.encoder.embed, bank.texts) if retrieval else None
    top_k = args.top_k or int(loaded.top_k.numpy())
    target = (args.target_precision if args.target_precision is not None
              else float(loaded.target_precision.numpy()) if hasattr(loaded, "target_precision")
              else 0.9)
    root = AnswerBankModule(loaded.encoder, bank, embeddings, float(loaded.threshold.numpy()),
                            top_k, float(loaded.temperature.numpy()), target)
    record = {"source_export": str(source), "answers": bank.source, "bank_size": len(bank),
              "mode": "retrieval" if retrieval else "intent", "top_k": root._k,
              "threshold": float(root.threshold.numpy()), "calibration": None}
    if args.calibration:
        result = calibrate(root, Path(args.calibration), args.question_column,
                           args.answer_id_column, args.format, target)
        root.threshold.assign(result["threshold"])
        record.update(threshold=result["threshold"], calibration=result)
        say(f"recalibrated hand-off threshold {result['threshold']:.4f}: precision "
            f"{result['precision']:.4f} at coverage {result['coverage']:.4f} on "
            f"{result['examples']} questions" + ("" if result["reached"] else
                                                 " (target NOT reached: all handed off)"))
    base = Path(args.base) if args.base else source.parent
    out = publish_saved_model(root, root.signatures(), {}, example_inputs(), base,
                              args.version,
                              extra_files={str(RECORD_FILE): json.dumps(record, indent=2)})
    say(f"indexed {len(bank)} answers from {bank.source} into {out} "
        f"({dir_size_bytes(out) / 2**20:.1f} MiB), hand-off threshold "
        f"{record['threshold']:.4f}")


if __name__ == "__main__":
    main()
