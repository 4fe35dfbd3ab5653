"""python -m bench.onednn_kernels --export DIR [--batch 32] [--calls 5] [--out DIR]

What oneDNN runs for an export's serving signature: the export is called in a fresh process
with ONEDNN_VERBOSE=1 (a batch of `--batch` copies of a sample text, `--calls` times after a
warm-up call), and every primitive execution oneDNN reports is grouped by primitive kind,
implementation (e.g. `brg_matmul:avx10_1_512_amx` is an AMX kernel, `gemm_api` the
float32 GEMM) and source data type, with its share of oneDNN's time. The call's wall time
beside the sum of oneDNN's times shows how much runs outside oneDNN (Eigen element-wise
ops, layer norms, softmax, casts). Answers "does the bfloat16 export run on AMX tiles, and
what does not?" for the machine at hand. Writes onednn_kernels.json and .md under --out.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

BEGIN, END = "<!-- onednn kernels: begin -->", "<!-- onednn kernels: end -->"
CALL = """
import json, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401
model = tf.saved_model.load(sys.argv[1])
fn = model.signatures["serving_default"]
name = list(fn.structured_input_signature[1])[0]
texts = tf.constant(["Shares of the bank rose after it beat quarterly profit estimates "
                     "and raised its dividend."] * int(sys.argv[2]))
fn(**{name: texts})
print("tfapp-bench-begin", flush=True)
walls = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    fn(**{name: texts})
    walls.append(time.perf_counter() - start)
print("tfapp-bench-end " + json.dumps(walls), flush=True)
"""


def parse(lines: list[str]) -> dict:
    """{(kind, implementation, source dtype): [count, milliseconds]} of the primitive
    executions between the begin and end markers."""
    out: dict = collections.defaultdict(lambda: [0, 0.0])
    inside = False
    for line in lines:
        if line.startswith("tfapp-bench-begin"):
            inside = True
        elif line.startswith("tfapp-bench-end"):
            inside = False
        elif inside and line.startswith("onednn_verbose") and ",exec," in line:
            fields = line.strip().split(",")
            # v1 layout: onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,PROP,MEMORY,...,TIME
            kind, impl, memory = fields[5], fields[6] or "-", fields[8]
            source = memory.split()[0] if memory else "-"
            dtype = source.split(":")[1] if ":" in source else source.split("_")[-1]
            if "_" in source.split(":")[0]:  # gemm_api writes src_f32
                dtype = source.split(":")[0].split("_")[-1]
            try:
                ms = float(fields[-1])
            except ValueError:
                continue
            entry = out[(kind, impl, dtype)]
            entry[0] += 1
            entry[1] += ms
    return dict(out)


def measure(export: Path, batch: int, calls: int) -> dict:
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", CALL, str(export), str(batch), str(calls)],
                            capture_output=True, text=True, env=env, timeout=1200)
    if result.returncode:
        raise SystemExit(f"error: {export}: the export call failed:\n{result.stderr[-2000:]}")
    lines = result.stdout.splitlines()
    walls = json.loads(next(x for x in lines if x.startswith("tfapp-bench-end"))[16:])
    groups = parse(lines)
    total = sum(ms for _, ms in groups.values())
    rows = sorted(({"kind": k, "implementation": i, "dtype": d, "executions": n,
                    "ms_per_call": ms / calls, "share": ms / total if total else 0.0}
                   for (k, i, d), (n, ms) in groups.items()),
                  key=lambda r: -r["ms_per_call"])
    wall_ms = 1000 * sum(walls) / len(walls)
    return {"export": str(export), "batch": batch, "calls": calls, "wall_ms_per_call": wall_ms,
            "onednn_ms_per_call": total / calls, "rows": rows,
            "amx_share": sum(r["share"] for r in rows if "amx" in r["implementation"])}


def markdown(result: dict) -> str:
    lines = [f"`{result['export']}`, batch {result['batch']}, {result['calls']} calls: wall "
             f"{result['wall_ms_per_call']:.1f} ms per call, of which oneDNN primitives "
             f"{result['onednn_ms_per_call']:.1f} ms "
             f"({result['onednn_ms_per_call'] / result['wall_ms_per_call']:.0%}); AMX kernels "
             f"{result['amx_share']:.0%} of oneDNN's time.", "",
             "| primitive | implementation | source dtype | executions per call | ms per call "
             "| share of oneDNN |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['kind']} | {r['implementation']} | {r['dtype']} | "
                     f"{r['executions'] / result['calls']:.0f} | {r['ms_per_call']:.2f} | "
                     f"{r['share']:.1%} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.onednn_kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, action="append",
                        help="a SavedModel version directory (repeat to compare exports)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", help="write onednn_kernels.json and onednn_kernels.md here")
    parser.add_argument("--write", action="store_true", help="put the tables into "
                        "bench/RESULTS.md and the raw results into bench/onednn_kernels.json")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.calls < 1:
        raise SystemExit("error: --batch and --calls must be >= 1")
    for export in args.export:
        if not (Path(export) / "saved_model.pb").is_file():
            raise SystemExit(f"error: {export}: not a SavedModel directory (no saved_model.pb)")
    results = [measure(Path(e), args.batch, args.calls) for e in args.export]
    text = "\n\n".join(markdown(r) for r in results)
    print(text)
    if args.write:
        from bench.machine import describe, label
        from bench.results_file import write_section

        info = describe()
        body = (f"`python -m bench.onednn_kernels {' '.join(argv or sys.argv[1:])}` on "
                f"{label(info)}; raw results in bench/onednn_kernels.json.\n\n{text}")
        write_section(Path(__file__).parent, BEGIN, END, "## What oneDNN runs", body,
                      "onednn_kernels.json", {"machine": info, "exports": results})
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "onednn_kernels.json").write_text(json.dumps(results, indent=1))
        (out / "onednn_kernels.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
