"""Shared pieces of the quality benchmarks: CSV reading and writing, seeded stratified
samples, one `tfapp.train` run as a user runs it, the machine description."""
from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from tfapp.core import run_layout as layout

REPO = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample_by(rows: list[dict], key: str, per_key: int | None, total: int | None,
              seed: int = 0, keep_all: tuple = ()) -> list[dict]:
    """A seeded sample: `per_key` rows of each value of `key` (every row of the values in
    `keep_all`), or `total` rows stratified by it; everything when both are None. The same
    sample for every recipe and seed."""
    if per_key is None and total is None:
        return rows
    groups = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    rng = random.Random(seed)
    out = []
    for value in sorted(groups):
        group = groups[value]
        n = per_key if per_key is not None else max(1, round(total * len(group) / len(rows)))
        n = len(group) if value in keep_all else n
        out += rng.sample(group, min(n, len(group)))
    rng.shuffle(out)
    return out


def train_cli(args: list[str], sets: list[str], run_dir: Path, what: str) -> tuple[dict, float]:
    """`python -m tfapp.train ARGS --set ... --run-dir RUN` as a user runs it; returns
    (its metrics.json, wall seconds of the whole command)."""
    command = [sys.executable, "-m", "tfapp.train", *args, "--run-dir", str(run_dir)]
    for s in sets:
        command += ["--set", s]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{what} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((run_dir / layout.METRICS_FILE).read_text())
    return metrics, round(time.perf_counter() - start, 1)


def machine() -> dict:
    from bench.machine import describe

    return describe()


def train_recipe(task: str, sets: list[str], recipe_sets: list[str], seed: int,
                 backbone: str, epochs: int | None, run_dir: Path, what: str):
    """One recipe of a quality benchmark: `tfapp.train` on the data set's overrides plus the
    recipe's, with the seed, no export and the suite's epochs; (metrics.json, seconds)."""
    sets = [*sets, *recipe_sets, f"seed={seed}", "export.enabled=false"]
    if epochs:
        sets.append(f"trainer.epochs={epochs}")
    return train_cli(["--task", task, "--backbone", backbone], sets, run_dir, what)
