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
from tfapp.core.errors import ConfigError, cli_main


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
    if args.target_precision is not None and not 0 < args.target_precision <= 1:
        raise ConfigError(f"--target-precision must be in (0, 1], got {args.target_precision}")
    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be >= 1, got {args.version}")

    from tasks.qa.answer_bank import example_inputs, read_answer_bank
    from tasks.qa.index import RECORD_FILE, reindexed_root
    from tfapp.core.export_layout import resolve_export
    from tfapp.core.log import say
    from tfapp.core.rundir import dir_size_bytes
    from tfapp.serving.saved_model import publish_saved_model

    source = resolve_export(Path(args.model))
    bank = read_answer_bank(args.answers, args.id_column, args.text_column, args.format)
    root, record = reindexed_root(source, bank, args.top_k, args.calibration,
                                  args.question_column, args.answer_id_column, args.format,
                                  args.target_precision, say)
    base = Path(args.base) if args.base else source.parent
    out = publish_saved_model(root, root.signatures(), {}, example_inputs(), base,
                              args.version,
                              extra_files={str(RECORD_FILE): json.dumps(record, indent=2)})
    say(f"indexed {len(bank)} answers from {bank.source} into {out} "
        f"({dir_size_bytes(out) / 2**20:.1f} MiB), hand-off threshold "
        f"{record['threshold']:.4f}")


if __name__ == "__main__":
    main()
