"""python -m bench.compression --run [NAME=]RUN_DIR ... [--requests N] [--out DIR]

Compression report: for every run given (e.g. a teacher and its distilled student) and,
where `tfapp.quantize` made one, its int8 export: size on disk of the SavedModel,
single-request latency through the exported `serving_default` (tokenisation included,
p50 / p99 over N requests after warm-up), and the headline validation metric from the
run's own evaluation (runs of one teacher share its seeded validation split).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, cli_main

REQUEST = "Shares of Northwind Bank jumped 9% after quarterly earnings beat estimates."
HEADLINE_KEYS = ("accuracy", "top1_accuracy", "auc")


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


def latency_ms(export: Path, requests: int) -> tuple[float, float]:
    """p50 and p99 of one-text requests to the export's serving_default."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokeniser ops)

    fn = tf.saved_model.load(str(export)).signatures["serving_default"]
    (name,) = fn.structured_input_signature[1]
    feed = {name: tf.constant([REQUEST])}
    for _ in range(10):
        fn(**feed)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        fn(**feed)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def size_mb(path: Path) -> float:
    from tfapp.core.rundir import dir_size_bytes

    return dir_size_bytes(path) / 2**20


def rows_for(name: str, run: Path, requests: int) -> list[dict]:
    from tfapp.core.config import read_yaml
    from tfapp.compression.quantize import INT8_BASE, REPORT

    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise ConfigError(f"{run}: no metrics.json (not a finished run)")
    metrics = json.loads(metrics_file.read_text())
    task = read_yaml(run / "config.yaml")["task"]
    variants = [(name, latest_version(run / "export" / task), metrics.get("validation", {}))]
    quant = run / REPORT
    if quant.is_file():
        report = json.loads(quant.read_text())
        variants.append((f"{name} int8", latest_version(run / INT8_BASE / task),
                         report["int8"].get("validation", {})))
    rows = []
    for label, export, validation in variants:
        if export is None:
            raise ConfigError(f"{run}: no export for {label}")
        p50, p99 = latency_ms(export, requests)
        metric = headline(validation) or ("metric", float("nan"))
        rows.append({"model": label, "export": str(export), "size_mb": round(size_mb(export), 1),
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


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="[NAME=]RUN_DIR")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", help="directory for compression-<date>.json and .md")
    args = parser.parse_args(argv)
    rows = []
    for spec in args.run:
        name, _, path = spec.rpartition("=")
        rows += rows_for(name or Path(path).name, Path(path), args.requests)
    table = markdown(rows)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"compression-{dt.date.today().isoformat()}"
        (out / f"{stem}.json").write_text(json.dumps(rows, indent=2))
        (out / f"{stem}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
