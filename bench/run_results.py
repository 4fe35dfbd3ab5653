"""bench.run's results: the Markdown table, the files under --out, and (--write) one
section of bench/RESULTS.md per machine kind with the raw JSON beside it, so results from
different CPUs sit side by side and never overwrite each other."""
from __future__ import annotations

import re
from pathlib import Path

from bench.machine import label as machine_label
from bench.results_file import write_section

REPO = Path(__file__).resolve().parents[1]


def machine_kind(info: dict) -> str:
    """A file-name-safe name for a machine kind: CPU model, cores and its fastest matrix
    instructions, e.g. 'amd-epyc-2c-avx512_bf16'."""
    model = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-")[:40]
    flags = info.get("flags", [])
    matrix = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags),
                  "generic")
    return f"{model}-{info.get('cores')}c-{matrix}"


def markdown(r: dict) -> str:
    t, i, f = r["train"], r["inference"], r["flops"]
    m = r["machine"]
    lines = [
        f"# Benchmark ({r['suite']} suite, backbone {r['backbone']}, batch {r['batch']})", "",
        f"{r['date']} · {machine_label(m)} · tensorflow {m['tensorflow']}, "
        f"keras {m['keras']}, keras-hub {m['keras-hub']}, torch {m['torch']}, "
        f"transformers {m['transformers']}", "",
        "| measure | tfapp (keras-hub/TF) | transformers (torch) | ours / theirs |",
        "|---|---|---|---|",
        f"| training examples/s | {t['ours']['examples_per_s']} | "
        f"{t['theirs']['examples_per_s']} | {t['ratio']} |",
        f"| training real tokens/s | {t['ours']['real_tokens_per_s']} | "
        f"{t['theirs']['real_tokens_per_s']} | {t['ratio']} |",
        f"| single-request latency p50 (ms) | {i['ours']['p50_ms']} | {i['theirs']['p50_ms']} "
        f"| {i['p50_ratio']} |",
        f"| single-request latency p99 (ms) | {i['ours']['p99_ms']} | {i['theirs']['p99_ms']} "
        f"| {round(i['ours']['p99_ms'] / i['theirs']['p99_ms'], 2)} |",
        f"| batch-32 inference examples/s | {i['ours']['batch32_examples_per_s']} | "
        f"{i['theirs']['batch32_examples_per_s']} | {i['batch32_ratio']} |",
        "",
        f"Training compute: {f['train_achieved_gflops']} GFLOP/s achieved vs "
        f"{f['matmul_peak_gflops']} GFLOP/s float32 matmul peak "
        f"({100 * f['fraction_of_peak']:.1f}% of peak).", "",
        *([f"Defaults chosen from this CPU's flags: training precision "
           f"{r['precision']['train']}, export precision {r['precision']['export']}.", ""]
          if r.get("precision") else []),
        f"Padding waste: {r['padding_waste_pct']['padded_to_batch_max']}% of tokens are "
        f"padding when batches pad to their longest text, "
        f"{r['padding_waste_pct']['bucketed']}% with length bucketing.",
    ]
    if r.get("ablation"):
        lines += ["", "| our training variant | examples/s | real tokens/s |", "|---|---|---|"]
        for label, v in r["ablation"].items():
            lines.append(f"| {label} | {v['examples_per_s']} | {v['real_tokens_per_s']} |")
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path) -> None:
    from tfapp.core.rundir import atomic_write_text, write_json

    stem = f"{result['suite']}-{result['date'].replace(':', '')}"
    write_json(out_dir / f"{stem}.json", result)
    atomic_write_text(out_dir / f"{stem}.md", markdown(result))


def write_results(result: dict, bench_dir: Path = REPO / "bench") -> None:
    """The run's table as the RESULTS.md section of its machine kind (replaced on a rerun
    on the same kind) and its raw JSON as bench/run-<kind>.json."""
    kind = machine_kind(result["machine"])
    begin, end = f"<!-- side by side {kind}: begin -->", f"<!-- side by side {kind}: end -->"
    table = markdown(result).split("\n", 2)[2]  # without its title line
    body = (f"`python -m bench.run --suite {result['suite']} --write`; raw results in "
            f"bench/run-{kind}.json.\n\n{table}")
    write_section(bench_dir, begin, end, f"## Side by side on {machine_label(result['machine'])}",
                  body, f"run-{kind}.json", result)
