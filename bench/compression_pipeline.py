"""The compression benchmark's runs on a real data set, each made by the user-facing command:
per seed a teacher (`tfapp.train`, the default recipe), a 3-layer student (`tfapp.distill`),
a pruned teacher (`tfapp.prune`), the chain distil -> prune -> int8 (`tfapp.prune` on the
student, then `tfapp.quantize`), and the teacher's int8 exports (`tfapp.quantize`, the
default mode for every seed, every mode for the first seed). A finished step is kept, so an
interrupted benchmark resumes where it stopped."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from tfapp.core import run_layout as layout

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Recipe:
    teacher_epochs: int = 3
    student_layers: int = 3
    prune_heads: float = 0.5
    prune_ffn: float = 0.5
    prune_epochs: int = 1
    backbone: str = "default"


def command(module: str, args: list, log: Path, what: str) -> float:
    """Runs `python -m module args` from the repository root as a user would; its output
    goes to `log`; returns wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{what} failed ({module}, log {log}):\n{tail}")
    seconds = round(time.perf_counter() - start, 1)
    print(f"[bench] {what}: {seconds:.0f} s", flush=True)
    return seconds


def run_all(data: Path, work: Path, seeds: list[int], recipe: Recipe,
            modes: list[str]) -> dict:
    """Makes (or finds) every run; returns {seed: {variant: run dir}} and step seconds."""
    from tfapp.compression.quantization import DEFAULT_MODE, report_name

    runs, seconds = {}, {}
    for seed in seeds:
        d = {name: work / "runs" / name / f"seed{seed}"
             for name in ("teacher", "student", "pruned", "chain")}
        steps = [
            ("teacher", "tfapp.train", [
                "--task", "sentiment", "--backbone", recipe.backbone, "--run-dir", d["teacher"],
                "--set", f"data.train_file={data / 'train.csv'}",
                "--set", f"data.validation_file={data / 'validation.csv'}",
                "--set", "data.split=[0.9,0.0,0.1]", "--set", "sentiment.topic_column=null",
                "--set", f"seed={seed}", "--set", f"trainer.epochs={recipe.teacher_epochs}"]),
            ("student", "tfapp.distill", [
                "--teacher", d["teacher"], "--student-layers", recipe.student_layers,
                "--run-dir", d["student"]]),
            ("pruned", "tfapp.prune", [
                "--run", d["teacher"], "--heads", recipe.prune_heads, "--ffn",
                recipe.prune_ffn, "--epochs", recipe.prune_epochs, "--run-dir", d["pruned"]]),
            ("chain", "tfapp.prune", [
                "--run", d["student"], "--heads", recipe.prune_heads, "--ffn",
                recipe.prune_ffn, "--epochs", recipe.prune_epochs, "--run-dir", d["chain"]]),
        ]
        for name, module, args in steps:
            if not (d[name] / layout.METRICS_FILE).is_file():
                seconds[f"{name}/seed{seed}"] = command(
                    module, args, work / "logs" / f"{name}-seed{seed}.log",
                    f"{name} seed {seed}")
        quantize = [("teacher", m) for m in (modes if seed == seeds[0] else [DEFAULT_MODE])]
        quantize.append(("chain", DEFAULT_MODE))
        for name, mode in quantize:
            if not (d[name] / report_name(mode)).is_file():
                args = ["--run", d[name]] + ([] if mode == DEFAULT_MODE else ["--mode", mode])
                seconds[f"{name} int8 {mode}/seed{seed}"] = command(
                    "tfapp.quantize", args, work / "logs" / f"{name}-int8-{mode}-seed{seed}.log",
                    f"{name} int8 ({mode}) seed {seed}")
        runs[seed] = d
    return {"runs": runs, "seconds": seconds}
