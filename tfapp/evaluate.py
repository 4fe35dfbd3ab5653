"""python -m tfapp.evaluate --run RUN_DIR --data FILE: metrics of a trained run on a
labelled file."""
from __future__ import annotations

import argparse
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core import run_layout as layout
from tfapp.core.errors import cli_main


def default_out(run: Path, data: Path) -> Path:
    """RUN/eval/<stem>, or <stem>-2, -3, ... when that one holds another file's metrics."""
    import json

    base, n = run / layout.EVAL_DIR / data.stem, 1
    while True:
        out = base if n == 1 else base.with_name(f"{base.name}-{n}")
        metrics = out / layout.METRICS_FILE
        if not metrics.is_file() or json.loads(metrics.read_text()).get("data") == str(data):
            return out
        n += 1


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.evaluate", description=__doc__)
    parser.add_argument("--run", required=True, help="run directory written by tfapp.train")
    parser.add_argument("--data", required=True, help="labelled CSV / TSV / JSONL file")
    parser.add_argument("--out", help="output directory (default: RUN/eval/<data file stem>, "
                        "with -2, -3, ... when another file of that stem was evaluated)")
    parser.add_argument("--format", default="auto", choices=["auto", "csv", "tsv", "jsonl"],
                        help="file format (default: from the extension)")
    args = parser.parse_args(argv)

    from tfapp.core.log import say
    from tfapp.core.rundir import check_writable, write_json
    from tfapp.training.restore import restore_run

    out = Path(args.out) if args.out else default_out(Path(args.run), Path(args.data))
    restored = restore_run(args.run)
    cfg, task, _, packer = restored
    model = restored.served()  # the export's precision: the run's own metrics reproduce
    check_writable(out, "evaluation output")
    if args.format != "auto":
        cfg.data.format = args.format
    examples = task.read_file(args.data)  # validated before anything is written
    metrics = task.evaluate(model, examples, packer)
    print(task.format_metrics(metrics))
    write_json(out / layout.METRICS_FILE, {"data": str(args.data), **metrics})
    say(f"wrote {out / 'metrics.json'}")


if __name__ == "__main__":
    main()
