"""python -m tfapp.pretrain --corpus FILE_OR_GLOB [--backbone SPEC] [--out DIR]

Continues masked-language-model pretraining of the shared backbone on unlabelled domain
text (keras-hub's BertMaskedLM and its preprocessor), under the same strategy, precision,
TensorBoard and resume machinery as tfapp.train, and saves a keras-hub preset directory
that `--backbone` accepts in every task.

Corpus files: .txt (one text per non-empty line) or CSV / TSV / JSONL (--set
pretrain.text_column=...). Masking is per word piece (keras-hub's MaskedLMMaskGenerator
has no whole-word mode), re-drawn every epoch; validation masks are drawn once, so the
validation MLM loss before and after is comparable.
"""
from __future__ import annotations

import argparse
import json

import tfapp  # noqa: F401
from tfapp.core.errors import cli_main
from tfapp.pretraining.masked_lm import PretrainConfig, pretrain


@cli_main
def main(argv=None):
    from tfapp.cli import SHORTCUTS
    from tfapp.core.config import apply_overrides, build_config, read_yaml

    parser = argparse.ArgumentParser(prog="python -m tfapp.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", default=[], metavar="FILE_OR_GLOB",
                        help="plain-text corpus files or globs (repeatable)")
    parser.add_argument("--out", help="backbone directory to write (default: RUN/backbone)")
    parser.add_argument("--config", help="YAML with backbone/train/run/pretrain sections")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--run-dir", help="run directory; an interrupted run resumes")
    for flag in ("backbone", "strategy", "precision", "tpu", "epochs"):
        parser.add_argument(f"--{flag}")
    args = parser.parse_args(argv)
    raw = read_yaml(args.config) if args.config else {}
    raw.setdefault("task", "pretrain")
    overrides = list(args.set)
    for flag in ("backbone", "strategy", "precision", "tpu", "epochs"):
        if getattr(args, flag) is not None:
            overrides.append(f"{SHORTCUTS[flag]}={getattr(args, flag)}")
    if args.corpus:
        overrides.append(f"pretrain.corpus={json.dumps(args.corpus)}")
    if args.out:
        overrides.append(f"pretrain.out={json.dumps(args.out)}")
    cfg = build_config(apply_overrides(raw, overrides), PretrainConfig,
                       args.config or "pretrain")
    pretrain(cfg, args.run_dir)


if __name__ == "__main__":
    main()
