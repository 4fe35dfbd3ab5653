"""python -m bench.scoring --model EXPORT [--texts 100000] [--source FILE] [--workers 1,2]
[--write] [--out DIR]

Batch scoring at scale: --texts texts (a real set's texts repeated, default the TFNS
training file under --data) scored by `tfapp.predict --file` (one process) and by
`tfapp.score` on the DirectRunner in multi-process mode with each --workers count, one
after the other on this machine. Reports texts/s over each command's whole wall time
(model loading and start-up included), the peak resident memory of the command's process
tree (workers summed, sampled every 0.2 s), RunInference's batch sizes, and whether every
row's label equals predict's (largest probability difference beside it). --write puts the
table into bench/RESULTS.md and the raw numbers into bench/scoring.json.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.machine import describe as machine
from bench.machine import label
from bench.results_file import write_outputs, write_section
from tfapp.core.errors import ConfigError, cli_main

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- scoring: begin -->", "<!-- scoring: end -->"


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f
                              if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total


def timed(cmd: list[str], stdout) -> dict:
    """Runs `cmd`; its wall seconds and the peak memory of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE, text=True)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {err[-2000:]}")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_memory_mb":
            round(peak[0] / 2 ** 20)}


def source_texts(path: Path, column: str = "text") -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [r[column].replace("\n", " ").strip() for r in csv.DictReader(f)
                if r[column].strip()]


def compare(predicted: list[dict], scored: list[dict]) -> dict:
    """Rows whose label differs from predict's, and the largest probability difference."""
    by_row = {r["_row"]: r for r in scored}
    differing, largest = 0, 0.0
    for line, p in enumerate(predicted, start=1):
        s = by_row.get(line)
        if s is None or s["label"] != p["label"]:
            differing += 1
            continue
        largest = max(largest, *(abs(s["probabilities"][k] - v)
                                 for k, v in p["probabilities"].items()))
    return {"rows": len(predicted), "scored_rows": len(scored), "labels_differing": differing,
            "max_probability_difference": largest}


def measure(model: str, texts: list[str], workers: list[int], work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    inputs = work / "texts.txt"
    inputs.write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = []
    with open(work / "predict.jsonl", "w", encoding="utf-8") as out:
        run = timed([sys.executable, "-m", "tfapp.predict", "--model", model, "--file",
                     str(inputs)], out)
    predicted = [json.loads(line) for line in open(work / "predict.jsonl", encoding="utf-8")]
    rows.append({"command": "tfapp.predict --file", "workers": 1, **run,
                 "texts_per_second": round(len(texts) / run["seconds"], 1)})
    print(json.dumps(rows[-1]), flush=True)
    for n in workers:
        prefix = work / f"score{n}" / "out"
        run = timed([sys.executable, "-m", "tfapp.score", "--model", model, "--input",
                     str(inputs), "--output", str(prefix), f"--direct_num_workers={n}"],
                    subprocess.DEVNULL)
        summary = json.loads(Path(f"{prefix}-summary.json").read_text())
        scored = [json.loads(line) for path in sorted(glob.glob(f"{prefix}-0*.jsonl"))
                  for line in open(path, encoding="utf-8")]
        rows.append({"command": "tfapp.score (DirectRunner, multi-processing)", "workers": n,
                     **run, "texts_per_second": round(len(texts) / run["seconds"], 1),
                     "threads_per_worker": summary["threads_per_worker"],
                     "batch_sizes": summary["batch_sizes"], "bad": summary["bad"],
                     "same_as_predict": compare(predicted, scored)})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["texts_per_second"]
    for row in rows:
        row["vs_predict"] = round(row["texts_per_second"] / base, 2)
    return {"rows": rows}


def table(result: dict) -> str:
    lines = ["| command | workers | texts/s | vs predict | peak memory (MB) | batch sizes "
             "(min / mean / max) | labels differing from predict | largest probability "
             "difference |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        b, same = r.get("batch_sizes") or {}, r.get("same_as_predict")
        lines.append(
            f"| {r['command']} | {r['workers']} | {r['texts_per_second']:.1f} | "
            f"{r['vs_predict']:.2f}x | {r['peak_memory_mb']} | "
            + (f"{b['min']} / {b['mean']} / {b['max']}" if b else "64 (fixed)") + " | "
            + (f"{same['labels_differing']} of {same['rows']}" if same else "") + " | "
            + (f"{same['max_probability_difference']:.1e}" if same else "") + " |")
    return "\n".join(lines)


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a sentiment export (version or base)")
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--source", help="CSV with a text column (default: DATA/tfns/train.csv)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--work", help="scratch directory (default: a temporary one)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        raise ConfigError(f"--workers must be comma-separated integers, got "
                          f"{args.workers!r}") from None
    if args.texts < 1 or min(workers) < 1:
        raise ConfigError("--texts and every --workers value must be >= 1")
    source = Path(args.source or Path(args.data) / "tfns" / "train.csv")
    if not source.is_file():
        raise ConfigError(f"{source}: no such file (pass --source or --data)")
    real = source_texts(source)
    texts = (real * (args.texts // len(real) + 1))[:args.texts]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        result = {"date": dt.datetime.now().isoformat(timespec="seconds"),
                  "machine": machine(), "texts": len(texts), "distinct_texts": len(real),
                  "source": source.name if not args.source else str(source),
                  "model": args.model, **measure(args.model, texts, workers, work)}
    print(table(result))
    if args.write:
        body = (f"Run of {result['date']} on {label(result['machine'])}: `python -m "
                f"bench.scoring --model EXPORT --texts {result['texts']} --write` with the "
                f"default sentiment job's export; {result['texts']} texts "
                f"({result['distinct_texts']} distinct TFNS training texts repeated) in one "
                f".txt file; texts/s over each command's whole wall time, model loading "
                f"and start-up included; raw numbers in bench/scoring.json.\n\n"
                + table(result))
        write_section(REPO / "bench", BEGIN, END, "## Batch scoring on Apache Beam", body,
                      "scoring.json", result)
    if args.out:
        write_outputs(args.out, "scoring", result, table(result))


if __name__ == "__main__":
    main()
