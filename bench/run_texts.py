"""What the per-run benches (bench.breakdown, bench.serving_levers) share: their command
line and the real texts of the run they time."""
from __future__ import annotations

import argparse
from pathlib import Path

from tfapp.core.errors import ConfigError


def run_bench_parser(prog: str, doc: str, stem: str) -> argparse.ArgumentParser:
    """--run, --run-label, --requests, --write and --out, as both benches take them."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="finished sentiment run")
    parser.add_argument("--run-label", help="how the table names the run (default: its path)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--out", help=f"directory for {stem}.json and {stem}.md")
    return parser


def sentiment_run_texts(run: Path) -> list[str]:
    """The validation texts (else the training texts) of a finished sentiment run; at
    least 32, so that a batch can be timed."""
    from tfapp.training.restore import restore_run

    if not run.is_dir():
        raise ConfigError(f"{run}: no such run directory")
    cfg, task, _, _ = restore_run(run)
    if cfg.task != "sentiment":
        raise ConfigError(f"{run}: a sentiment run is needed, this one is {cfg.task}")
    splits = task.load_splits()
    texts = task.texts(splits["validation"]) or task.texts(splits["train"])
    if len(texts) < 32:
        raise ConfigError(f"{run}: fewer than 32 texts to time a batch with")
    return texts
