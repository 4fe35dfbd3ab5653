"""python -m bench.compression --data DIR [--seeds 2] [--work DIR] [--write]
python -m bench.compression --run [NAME=]RUN_DIR ... [--out DIR]

Compression on real text. With --data (a directory with train.csv and validation.csv of
text,label sentiment rows, e.g. ../shared/data/tfns): per seed a teacher (the default
recipe), a 3-layer distilled student, a pruned teacher, the chain distil -> prune -> int8
and the teacher's int8 exports in every mode, all made by the user-facing commands (see
bench.compression_pipeline); then for each: size on disk of the SavedModel, single-request
p50 / p99 latency and batch-32 throughput through the exported `serving_default` (in-graph
tokenisation included, real validation texts), and validation accuracy and macro-F1 (mean
and standard deviation over the seeds). --write puts the table into bench/RESULTS.md and
the raw results into bench/compression.json.

With --run: the same measurements for finished runs (and their int8 exports).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np

import tfapp  # noqa: F401
from bench.machine import describe as machine
from bench.machine import label
from bench.results_file import write_outputs, write_section
from tfapp.core import run_layout as layout
from tfapp.core.errors import ConfigError, cli_main

REPO = Path(__file__).resolve().parent.parent
REQUEST = "Shares of Northwind Bank jumped 9% after quarterly earnings beat estimates."
HEADLINE_KEYS = ("accuracy", "top1_accuracy", "auc")
BEGIN, END = "<!-- compression table: begin -->", "<!-- compression table: end -->"


def headline(metrics: dict):
    """(name, value) of the first accuracy-like metric in a task's evaluation dict."""
    for key in HEADLINE_KEYS:
        if key in metrics:
            return key, metrics[key]
    for key, value in metrics.items():
        if isinstance(value, dict):
            found = headline(value)
            if found:
                return f"{key} {found[0]}", found[1]
    return None


def latest_version(base: Path) -> Path | None:
    from tfapp.core.export_layout import existing_versions

    versions = existing_versions(base, complete_only=True)
    return base / str(versions[-1]) if versions else None


def _signature(export: Path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokeniser ops)

    fn = tf.saved_model.load(str(export)).signatures["serving_default"]
    (name,) = fn.structured_input_signature[1]
    return lambda texts: fn(**{name: tf.constant(texts)})


def size_mb(path: Path) -> float:
    from tfapp.core.rundir import dir_size_bytes

    return dir_size_bytes(path) / 2**20


# --- --run mode ------------------------------------------------------------------------

def rows_for(name: str, run: Path, requests: int) -> list[dict]:
    from tfapp.compression.quantization import MODES, export_base, report_name
    from tfapp.core.config import read_yaml

    metrics_file = run / layout.METRICS_FILE
    if not metrics_file.is_file():
        raise ConfigError(f"{run}: no metrics.json (not a finished run)")
    metrics = json.loads(metrics_file.read_text())
    task = read_yaml(run / layout.CONFIG_FILE)["task"]
    variants = [(name, latest_version(layout.export_base(run, task)),
                 metrics.get("validation", {}))]
    for mode in MODES:
        quant = run / report_name(mode)
        if quant.is_file():
            report = json.loads(quant.read_text())
            variants.append((f"{name} int8 {mode}",
                             latest_version(run / export_base(mode) / task),
                             report["int8"].get("validation", {})))
    rows = []
    for label_, export, validation in variants:
        if export is None:
            raise ConfigError(f"{run}: no export for {label_}")
        ((p50, p99, _),) = interleaved([_signature(export)], [REQUEST], requests)
        metric = headline(validation) or ("metric", float("nan"))
        rows.append({"model": label_, "export": str(export),
                     "size_mb": round(size_mb(export), 1),
                     "latency_p50_ms": round(p50, 2), "latency_p99_ms": round(p99, 2),
                     "metric": metric[0], "validation": round(float(metric[1]), 4)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | size on disk (MiB) | latency p50 (ms) | latency p99 (ms) | validation |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size_mb']} | {r['latency_p50_ms']} | "
                     f"{r['latency_p99_ms']} | {r['metric']} {r['validation']} |")
    return "\n".join(lines)


# --- --data mode -----------------------------------------------------------------------

def _validation(run: Path, report: str | None) -> dict:
    if report:
        return json.loads((run / report).read_text())["int8"]["validation"]["sentiment"]
    return json.loads((run / layout.METRICS_FILE).read_text())["validation"]["sentiment"]


def _mean_std(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4),
            "std": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
            "values": [round(v, 4) for v in values]}


def variants(runs: dict, modes: list[str],
             student_layers: int) -> list[tuple[str, str, str, str | None, list]]:
    """(row name, run kind, export base, int8 report or None, seeds) of every table row."""
    from tfapp.compression.quantization import DEFAULT_MODE, export_base, report_name

    seeds = sorted(runs)
    rows = [("teacher", "teacher", "export", None, seeds)]
    for mode in modes:
        rows.append((f"teacher int8 ({mode})", "teacher", export_base(mode),
                     report_name(mode), seeds if mode == DEFAULT_MODE else seeds[:1]))
    rows += [(f"student ({student_layers} layers, distilled)", "student", "export", None,
              seeds),
             ("pruned teacher", "pruned", "export", None, seeds),
             ("chain: student, pruned", "chain", "export", None, seeds),
             (f"chain: student, pruned, int8 ({DEFAULT_MODE})", "chain",
              export_base(DEFAULT_MODE), report_name(DEFAULT_MODE), seeds)]
    return rows


def interleaved(calls: list, texts: list[str], requests: int, batches: int = 20) -> list:
    """(p50 ms, p99 ms, batch-32 examples/s) per call, measured round-robin over the calls
    so that drift in the machine's speed hits every model alike."""
    singles = [[texts[i % len(texts)]] for i in range(requests)]
    chunks = [c for c in (texts[i * 32:(i + 1) * 32] for i in range(batches)) if len(c) == 32]
    chunks = chunks or [[REQUEST] * 32]
    for call in calls:  # warm-up: every shape path compiled and cached
        for i in range(10):
            call(singles[i % len(singles)])
        call(chunks[0])
    times = [[] for _ in calls]
    for one in singles:
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call(one)
            times[i].append((time.perf_counter() - start) * 1000)
    batch_seconds = [0.0 for _ in calls]
    for chunk in chunks:
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call(chunk)
            batch_seconds[i] += time.perf_counter() - start
    out = []
    for t, seconds in zip(times, batch_seconds):
        t.sort()
        out.append((statistics.median(t), t[min(len(t) - 1, int(0.99 * len(t)))],
                    len(chunks) * 32 / seconds))
    return out


def measure(runs: dict, modes: list[str], texts: list[str], requests: int,
            student_layers: int) -> list[dict]:
    rows, calls = [], []
    first = min(runs)
    for name, kind, base, report, seeds in variants(runs, modes, student_layers):
        export = latest_version(runs[first][kind] / base / "sentiment")
        if export is None:
            raise ConfigError(f"{runs[first][kind]}: no export under {base}")
        validation = [_validation(runs[s][kind], report) for s in seeds]
        # Each command's own wall time (training, evaluation, export), from its run.
        wall = [json.loads((runs[s][kind] / layout.METRICS_FILE).read_text()).get("wall_seconds")
                for s in seeds] if report is None else []
        calls.append(_signature(export))
        rows.append({
            "model": name, "export": str(export), "size_mb": round(size_mb(export), 1),
            "accuracy": _mean_std([v["accuracy"] for v in validation]),
            "macro_f1": _mean_std([v["macro_f1"] for v in validation]), "seeds": seeds,
            "run_wall_seconds": [w for w in wall if w is not None]})
    for r, (p50, p99, rate) in zip(rows, interleaved(calls, texts, requests)):
        r.update({"latency_p50_ms": round(p50, 2), "latency_p99_ms": round(p99, 2),
                  "batch32_examples_per_s": round(rate, 1)})
        print(f"[bench] {r['model']}: {r['size_mb']} MiB, p50 {p50:.2f} ms", flush=True)
    return rows


def teacher_f1(rows: list[dict], row: dict) -> float:
    """The teacher's mean macro-F1 over the seeds `row` was measured on (like with like)."""
    t = rows[0]
    by_seed = dict(zip(t["seeds"], t["macro_f1"]["values"]))
    return float(np.mean([by_seed[s] for s in row["seeds"]]))


def data_table(rows: list[dict]) -> str:
    t = rows[0]
    lines = ["| model | size (MiB) | smaller | p50 (ms) | p99 (ms) | faster (p50) | "
             "batch-32 ex/s | val accuracy | val macro-F1 | F1 vs teacher (pt) | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    # "F1 vs teacher" compares with the teacher of the same seeds.
    for r in rows:
        a, f = r["accuracy"], r["macro_f1"]
        lines.append(
            f"| {r['model']} | {r['size_mb']} | {t['size_mb'] / r['size_mb']:.2f}x | "
            f"{r['latency_p50_ms']} | {r['latency_p99_ms']} | "
            f"{t['latency_p50_ms'] / r['latency_p50_ms']:.2f}x | "
            f"{r['batch32_examples_per_s']} | {a['mean']:.4f} ± {a['std']:.4f} | "
            f"{f['mean']:.4f} ± {f['std']:.4f} | "
            f"{100 * (f['mean'] - teacher_f1(rows, r)):+.2f} | "
            f"{', '.join(map(str, r['seeds']))} |")
    return "\n".join(lines)


def goal(rows: list[dict]) -> str:
    """Which rows meet the issue's goal: >= 2x faster single requests, >= 3x smaller,
    <= 1 point macro-F1 lost, against the teacher."""
    t = rows[0]
    verdicts = []
    for r in rows[1:]:
        faster = t["latency_p50_ms"] / r["latency_p50_ms"]
        smaller = t["size_mb"] / r["size_mb"]
        lost = 100 * (teacher_f1(rows, r) - r["macro_f1"]["mean"])
        ok = faster >= 2 and smaller >= 3 and lost <= 1
        verdicts.append(f"- {r['model']}: {faster:.2f}x faster, {smaller:.2f}x smaller, "
                        f"{lost:+.2f} pt macro-F1 lost: **{'meets' if ok else 'misses'}**")
    return "\n".join(verdicts)


def write_results(result: dict) -> None:
    rows = result["rows"]
    body = "\n".join([
        f"Run of {result['date']} on {label(result['machine'])}: `python -m bench.compression "
        f"--data {result['data']} --seeds {len(result['seeds'])} --write`; raw results in "
        f"bench/compression.json. Validation: the data set's validation.csv "
        f"({result['validation_examples']} texts); latency and throughput through each "
        f"export's `serving_default` (seed {result['seeds'][0]}'s export; tokenisation "
        f"included; {result['requests']} single requests after 10 warm-up calls, 20 batches "
        f"of 32, the models called round-robin so drift hits all alike), all in one process "
        f"with nothing else running.",
        "", data_table(rows), "",
        "Goal (>= 2x faster single requests, >= 3x smaller, <= 1 pt macro-F1 lost):", "",
        goal(rows)])
    write_section(REPO / "bench", BEGIN, END, "## Compression on real text", body,
                  "compression.json", result)


def run_data(args) -> dict:
    import csv

    from bench.compression_pipeline import Recipe, run_all
    from tfapp.compression.quantization import MODES

    data = Path(args.data)
    for name in ("train.csv", "validation.csv"):
        if not (data / name).is_file():
            raise ConfigError(f"{data}: no {name} (expected text,label CSV files)")
    with open(data / "validation.csv", encoding="utf-8", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    seeds = list(range(1, args.seeds + 1))
    modes = list(MODES)
    recipe = Recipe(teacher_epochs=args.teacher_epochs, student_layers=args.student_layers,
                    backbone=args.backbone)
    made = run_all(data, Path(args.work), seeds, recipe, modes)
    rows = measure(made["runs"], modes, texts, args.requests, args.student_layers)
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "data": str(args.data), "seeds": seeds, "validation_examples": len(texts),
            "requests": args.requests, "recipe": vars(recipe),
            "step_seconds": made["seconds"], "rows": rows}


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="directory with train.csv and validation.csv")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--work", default=str(REPO / "bench" / "results" / "compression"))
    parser.add_argument("--write", action="store_true",
                        help="write bench/RESULTS.md's table and bench/compression.json")
    parser.add_argument("--backbone", default="default", help="the teacher's backbone")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--run", action="append", metavar="[NAME=]RUN_DIR")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", help="directory for the JSON and table (--data: "
                                      "compression.json/.md; --run: compression-<date>.*)")
    args = parser.parse_args(argv)
    if bool(args.data) == bool(args.run):
        raise ConfigError("give either --data DIR or one or more --run RUN_DIR")
    if args.data:
        result = run_data(args)
        print(data_table(result["rows"]))
        print(goal(result["rows"]))
        if args.write:
            write_results(result)
        if args.out:
            write_outputs(args.out, "compression", result,
                          data_table(result["rows"]) + "\n\n" + goal(result["rows"]))
        return
    rows = []
    for spec in args.run:
        name, _, path = spec.rpartition("=")
        rows += rows_for(name or Path(path).name, Path(path), args.requests)
    table = markdown(rows)
    print(table)
    if args.out:
        write_outputs(args.out, f"compression-{dt.date.today().isoformat()}", rows, table)


if __name__ == "__main__":
    main()
