"""python -m tfapp.evaluate --run RUN_DIR --data FILE: metrics of a trained run on a labelled file."""
from __future__ import annotations

import argparse
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.evaluate", description=__doc__)
    parser.add_argument("--run", required=True, help="run directory written by tfapp.train")
    parser.add_argument("--data", required=True, help="labelled CSV / TSV / JSONL file")
    parser.add_argument("--out", help="output directory (default: RUN/eval/<data file stem>)")
    args = parser.parse_args(argv)

    from tfapp.core.rundir import write_json
    from tfapp.core.log import say
    from tfapp.training.restore import restore_run

    cfg, task, model, packer = restore_run(args.run)
    examples = task.read_file(args.data)  # validated before anything is written
    metrics = task.evaluate(model, examples, packer)
    print(task.format_metrics(metrics))
    out = Path(args.out) if args.out else Path(args.run) / "eval" / Path(args.data).stem
    write_json(out / "metrics.json", {"data": str(args.data), **metrics})
    say(f"wrote {out / 'metrics.json'}")


if __name__ == "__main__":
    main()
