"""python -m bench.serving_levers --run RUN_DIR [--requests N] [--write] [--out DIR]

The inference levers, each measured through a real export of one finished sentiment run
(tfapp.train's export path, with the run's weights) on the run's validation texts:

  float32        export.precision=float32 (the reference)
  bfloat16       export.precision=bfloat16
  xla            export.xla_batch_buckets=[1, 2, 4, 8] (float32, XLA for small batches)
  threads I/J    the float32 export in a fresh process with inter-op I, intra-op J threads

Single-request p50/p99 and batch-32 examples/s are timed round-robin over the exports in
one process (threads: one process each, after the others), and every export's
predictions on the whole validation split are compared with float32's (argmax agreement,
largest probability difference). --write puts the table into bench/RESULTS.md and the raw
numbers into bench/serving_levers.json.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import tempfile
from pathlib import Path

import tfapp  # noqa: F401
from bench.compression import _signature, interleaved
from bench.machine import describe as machine
from bench.machine import label
from bench.results_file import write_outputs, write_section
from bench.run_texts import run_bench_parser, sentiment_run_texts
from tfapp.core.errors import ConfigError, cli_main

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- serving levers: begin -->", "<!-- serving levers: end -->"
EXPORTS = {"float32": ("float32", []), "bfloat16": ("bfloat16", []),
           "xla": ("float32", [1, 2, 4, 8])}
THREADS = [(1, 2), (1, 1), (2, 1)]


def make_exports(run: Path, base: Path) -> dict:
    """{name: export dir} for EXPORTS, written by the training run's export path."""
    from tfapp.core.config import ExportConfig
    from tfapp.serving.saved_model import export_saved_model
    from tfapp.training.restore import restore_run
    from tfapp.training.serving_precision import model_to_serve

    restored = restore_run(run)
    cfg, task, model, packer = restored
    out = {}
    for name, (precision, buckets) in EXPORTS.items():
        served, _ = model_to_serve(task, restored.loaded, model, "float32",
                                   ExportConfig(precision=precision, xla_batch_buckets=buckets))
        packer.xla_batch_buckets = tuple(buckets)
        out[name] = export_saved_model(task, served, packer, base / name / cfg.task)
    packer.xla_batch_buckets = ()
    return out


def probabilities(export: Path, texts: list[str]):
    import numpy as np

    call = _signature(export)
    return np.concatenate([call(texts[i:i + 64])["probabilities"].numpy()
                           for i in range(0, len(texts), 64)])


def _timed_with_threads(export: str, texts: list[str], requests: int, inter: int,
                        intra: int) -> tuple:
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(inter)
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    return interleaved([_signature(Path(export))], texts, requests)[0]


def measure(run: Path, texts: list[str], requests: int) -> dict:
    exports = make_exports(run, Path(tempfile.mkdtemp(prefix="serving_levers_")))
    reference = probabilities(exports["float32"], texts)
    rows = {}
    timings = interleaved([_signature(e) for e in exports.values()], texts, requests)
    for (name, export), (p50, p99, batch) in zip(exports.items(), timings):
        probs = probabilities(export, texts)
        rows[name] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                      "batch32_examples_per_s": round(batch, 1),
                      "argmax_agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
                      "max_probability_difference": float(abs(probs - reference).max())}
    for inter, intra in THREADS:  # thread pools are sized once per process
        with concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")) as pool:
            p50, p99, batch = pool.submit(_timed_with_threads, str(exports["float32"]), texts,
                                          requests, inter, intra).result()
        rows[f"float32, threads inter={inter} intra={intra}"] = {
            "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
            "batch32_examples_per_s": round(batch, 1)}
    return rows


def table(result: dict) -> str:
    rows = result["rows"]
    ref = rows["float32"]
    lines = ["| export | p50 (ms) | p99 (ms) | p50 vs float32 | batch-32 ex/s | "
             "batch vs float32 | argmax agreement | max prob. diff |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        agree = (f"{100 * r['argmax_agreement']:.2f}%" if "argmax_agreement" in r else "-")
        diff = (f"{r['max_probability_difference']:.4f}"
                if "max_probability_difference" in r else "-")
        lines.append(f"| {name} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{ref['p50_ms'] / r['p50_ms']:.2f}x | {r['batch32_examples_per_s']} | "
                     f"{r['batch32_examples_per_s'] / ref['batch32_examples_per_s']:.2f}x | "
                     f"{agree} | {diff} |")
    return "\n".join(lines)


def write_results(result: dict) -> None:
    body = "\n".join([
        f"Run of {result['date']} on {label(result['machine'])}: `python -m "
        f"bench.serving_levers --run RUN --write` on {result['run_label']}; "
        f"{result['requests']} single requests and batches of 32 from its "
        f"{result['texts']} validation texts, exports called round-robin (thread variants: "
        f"a fresh process each, after the others); agreement over all validation texts. Raw "
        f"numbers in bench/serving_levers.json. `x` columns: speed relative to float32 "
        f"(higher is faster).", "", table(result)])
    write_section(REPO / "bench", BEGIN, END, "## Inference levers", body,
                  "serving_levers.json", result)


@cli_main
def main(argv=None):
    args = run_bench_parser("python -m bench.serving_levers", __doc__,
                            "serving_levers").parse_args(argv)
    if args.requests < 1:
        raise ConfigError(f"--requests must be >= 1, got {args.requests}")
    run = Path(args.run)
    texts = sentiment_run_texts(run)
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "run_label": args.run_label or str(run), "requests": args.requests,
              "texts": len(texts), "rows": measure(run, texts, args.requests)}
    print(table(result))
    if args.write:
        write_results(result)
    if args.out:
        write_outputs(args.out, "serving_levers", result, table(result))


if __name__ == "__main__":
    main()
