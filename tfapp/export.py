"""python -m tfapp.export --run RUN_DIR [--version N] [--base DIR]: re-export a finished
run's final weights as a new SavedModel version, without retraining."""
from __future__ import annotations

import argparse
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core import run_layout as layout
from tfapp.core.errors import ConfigError, cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.export", description=__doc__)
    parser.add_argument("--run", required=True, help="run directory written by tfapp.train")
    parser.add_argument("--version", type=int, help="version number (default: next)")
    parser.add_argument("--base", help="export base (default: RUN/export); the model "
                        "goes to BASE/<task>/<version>")
    args = parser.parse_args(argv)
    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be >= 1 (TF Serving loads positive integer "
                          f"versions), got {args.version}")
    from tfapp.core.log import say
    from tfapp.core.rundir import check_writable, dir_size_bytes
    from tfapp.serving.saved_model import export_saved_model
    from tfapp.training.restore import restore_run
    from tfapp.training.serving_precision import model_to_serve

    restored = restore_run(args.run)
    cfg, task, model, packer = restored
    base = Path(args.base) if args.base else layout.export_base(args.run)
    check_writable(base / cfg.task, "export base")
    # Restored weights are float32; export.precision decides what the export computes in.
    model, _ = model_to_serve(task, restored.loaded, model, "float32", cfg.export)
    out = export_saved_model(task, model, packer, base / cfg.task, args.version,
                             cfg.export.profile)
    say(f"exported SavedModel: {out} ({dir_size_bytes(out) / 2**20:.1f} MiB)")
    metrics_file = Path(args.run) / layout.METRICS_FILE
    if not metrics_file.is_file():
        # The run was killed after its weights and before its metrics: write them now.
        from tfapp.core.rundir import write_json

        splits = task.load_splits()
        metrics = {split: task.evaluate(model, splits[split], packer)
                   for split in ("validation", "test")}
        metrics["export"] = {"path": str(out), "size_mb": round(dir_size_bytes(out) / 2**20, 1)}
        metrics["written_by"] = "tfapp.export (the training run ended before its metrics)"
        write_json(metrics_file, metrics)
        say(f"wrote the missing {metrics_file}")


if __name__ == "__main__":
    main()
