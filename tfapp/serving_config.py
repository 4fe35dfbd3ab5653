"""python -m tfapp.serving_config --base EXPORT_BASE: writes TF Serving's models.config (one
entry per exported model under BASE) and batching_parameters.txt next to it."""
from __future__ import annotations

import argparse
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.serving_config", description=__doc__)
    parser.add_argument("--base", required=True, help="export base: BASE/<model>/<version>/")
    parser.add_argument("--out", help="output directory (default: BASE)")
    parser.add_argument("--model-base-path", default=None,
                        help="BASE as the server sees it, e.g. /models inside a container "
                             "(default: BASE's absolute path)")
    parser.add_argument("--num-versions", type=int, default=1,
                        help="newest versions to serve side by side (2 allows canaries)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=5000)
    parser.add_argument("--num-batch-threads", type=int, default=4)
    parser.add_argument("--max-enqueued-batches", type=int, default=100)
    args = parser.parse_args(argv)
    for flag in ("num_versions", "max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, "
                              f"got {getattr(args, flag)}")
    if args.batch_timeout_micros < 0:
        raise ConfigError(f"--batch-timeout-micros must be >= 0, got {args.batch_timeout_micros}")

    from tfapp.core.export_layout import exported_models
    from tfapp.core.log import say
    from tfapp.core.rundir import atomic_write_text
    from tfapp.serving.model_server_files import batching_parameters, models_config, uses_xla

    base = Path(args.base)
    models = exported_models(base)
    out = Path(args.out) if args.out else base
    served_base = args.model_base_path or str(base.resolve())
    atomic_write_text(out / "models.config",
                      models_config(models, served_base, args.num_versions))
    atomic_write_text(out / "batching_parameters.txt", batching_parameters(
        args.max_batch_size, args.batch_timeout_micros, args.num_batch_threads,
        args.max_enqueued_batches))
    for name, versions in models.items():
        say(f"model {name}: versions {', '.join(map(str, versions))}")
        if any(uses_xla(base / name / str(v)) for v in versions[-args.num_versions:]):
            say(f"model {name} serves XLA-compiled functions (export.xla_batch_buckets): start "
                f"tensorflow_model_server with --xla_cpu_compilation_enabled=true")
    say(f"wrote {out / 'models.config'} and {out / 'batching_parameters.txt'}")


if __name__ == "__main__":
    main()
