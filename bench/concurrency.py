"""python -m bench.concurrency --run RUN_DIR [--clients 1,2,4] [--requests 200]
[--no-transformers] [--write] [--out DIR]

Single requests from concurrent clients, as an interactive service receives them: for each
serving profile (export.profile latency and throughput, exported from one finished
sentiment run by tfapp.train's export path) and for the transformers pipeline on the same
checkpoint, C client threads (C in --clients) each send one text per call, back to back,
for --requests calls in all, through the exported signature loaded in this process (the
pipeline: the same threads calling it). Reports p50 / p99 latency over every request and
requests/s over the whole wall time, and ours against theirs at the same client count.
Thread pools are TensorFlow's and torch's defaults for the machine; the profiles' server
flags (tfapp.serving_config) are for TF Serving, not applied here. --write puts the table
into bench/RESULTS.md and the raw numbers into bench/concurrency.json.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import statistics
import tempfile
import threading
import time
from pathlib import Path

import tfapp  # noqa: F401
from bench.compression import _signature
from bench.machine import describe as machine
from bench.machine import label
from bench.results_file import write_outputs, write_section
from bench.run_texts import run_bench_parser, sentiment_run_texts
from tfapp.core.errors import ConfigError, cli_main

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- concurrency: begin -->", "<!-- concurrency: end -->"
PROFILES = ("latency", "throughput")


def profile_exports(run: Path, base: Path) -> dict:
    """{profile: export dir} written by the training run's export path for each profile
    (its precision and XLA buckets as the profile resolves them on this machine)."""
    from tfapp.core.config import ExportConfig
    from tfapp.serving.saved_model import export_saved_model
    from tfapp.training.restore import restore_run
    from tfapp.training.serving_precision import model_to_serve

    restored = restore_run(run)
    cfg, task, model, packer = restored
    out = {}
    for profile in PROFILES:
        export = ExportConfig(profile=profile)
        export.problems()  # resolves the profile's buckets
        served, _ = model_to_serve(task, restored.loaded, model, "float32", export)
        packer.xla_batch_buckets = tuple(export.xla_batch_buckets)
        out[profile] = export_saved_model(task, served, packer, base / profile / cfg.task,
                                          profile=profile)
    packer.xla_batch_buckets = ()
    return out


def clients_run(call, texts: list[str], clients: int, requests: int) -> dict:
    """p50 / p99 ms and requests/s of `requests` single-text calls from `clients` threads."""
    for text in texts[:5]:  # warm-up: the single-request path compiled and cached
        call([text])
    latencies: list[float] = []
    lock = threading.Lock()
    share = [requests // clients + (1 if k < requests % clients else 0) for k in range(clients)]

    def client(k: int) -> None:
        mine = []
        for i in range(share[k]):
            start = time.perf_counter()
            call([texts[(k * 7919 + i) % len(texts)]])
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {"p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
            "requests_per_s": round(len(latencies) / wall, 1)}


def pipeline_call(run: Path):
    """The transformers text-classification pipeline on the run's checkpoint."""
    import torch  # noqa: F401
    import transformers

    from bench.transformers_reference import hf_model_dir
    from tfapp.training.restore import restore_run

    restored = restore_run(run)
    model_dir = hf_model_dir(restored.loaded, restored.cfg.backbone.name,
                             len(restored.task.class_labels() or [0, 1, 2]))
    pipe = transformers.pipeline("text-classification", model=str(model_dir),
                                 tokenizer=str(model_dir), device="cpu")

    def call(texts):
        with torch.inference_mode():
            return pipe(texts[0])
    return call


def measure(run: Path, texts: list[str], clients: list[int], requests: int,
            transformers: bool) -> dict:
    exports = profile_exports(run, Path(tempfile.mkdtemp(prefix="concurrency_")))
    systems = {f"tfapp {p}": _signature(e) for p, e in exports.items()}
    if transformers:
        systems["transformers pipeline"] = pipeline_call(run)
    return {name: {str(c): clients_run(call, texts, c, requests) for c in clients}
            for name, call in systems.items()}


def table(result: dict) -> str:
    rows = result["rows"]
    theirs = rows.get("transformers pipeline")
    lines = ["| system | clients | p50 (ms) | p99 (ms) | requests/s | p50 ours/theirs | "
             "requests/s ours/theirs |", "|---|---|---|---|---|---|---|"]
    for name, by_clients in rows.items():
        for c, r in by_clients.items():
            ratio = ["", ""]
            if theirs and name != "transformers pipeline":
                t = theirs[c]
                ratio = [f"{r['p50_ms'] / t['p50_ms']:.2f}",
                         f"{r['requests_per_s'] / t['requests_per_s']:.2f}"]
            lines.append(f"| {name} | {c} | {r['p50_ms']} | {r['p99_ms']} | "
                         f"{r['requests_per_s']} | {ratio[0]} | {ratio[1]} |")
    return "\n".join(lines)


@cli_main
def main(argv=None):
    parser = run_bench_parser("python -m bench.concurrency", __doc__, "concurrency")
    parser.add_argument("--clients", default="1,2,4")
    parser.add_argument("--no-transformers", action="store_true")
    args = parser.parse_args(argv)
    try:
        clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        raise ConfigError(f"--clients must be comma-separated integers, got "
                          f"{args.clients!r}") from None
    if args.requests < 1 or not clients or min(clients) < 1:
        raise ConfigError("--requests and every --clients value must be >= 1")
    run = Path(args.run)
    texts = sentiment_run_texts(run)
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "run_label": args.run_label or str(run), "requests": args.requests,
              "rows": measure(run, texts, clients, args.requests, not args.no_transformers)}
    print(table(result))
    if args.write:
        body = (f"Run of {result['date']} on {label(result['machine'])}: `python -m "
                f"bench.concurrency --run RUN --write` on {result['run_label']}; "
                f"{result['requests']} single requests in all per row, from that many client "
                f"threads in one process; raw numbers in bench/concurrency.json.\n\n"
                + table(result))
        write_section(REPO / "bench", BEGIN, END, "## Concurrent single requests", body,
                      "concurrency.json", result)
    if args.out:
        write_outputs(args.out, "concurrency", result, table(result))


if __name__ == "__main__":
    main()
