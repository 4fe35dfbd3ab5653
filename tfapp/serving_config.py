"""python -m tfapp.serving_config --base EXPORT_BASE: writes TF Serving's models.config (one
entry per exported model under BASE), batching_parameters.txt and model_server_flags.txt
(the tensorflow_model_server flags of the exports' serving profile, export.profile) next
to it, and prints the command that starts the server with them."""
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
    # Batching values: these flags, else the exports' profile's, else these defaults.
    parser.add_argument("--max-batch-size", type=int, help="default 32")
    parser.add_argument("--batch-timeout-micros", type=int, help="default 5000")
    parser.add_argument("--num-batch-threads", type=int, help="default 4")
    parser.add_argument("--max-enqueued-batches", type=int, help="default 100")
    args = parser.parse_args(argv)
    for flag in ("num_versions", "max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, "
                              f"got {getattr(args, flag)}")
    if args.batch_timeout_micros is not None and args.batch_timeout_micros < 0:
        raise ConfigError(f"--batch-timeout-micros must be >= 0, got {args.batch_timeout_micros}")

    from tfapp.core.export_layout import exported_models
    from tfapp.core.log import say
    from tfapp.core.rundir import atomic_write_text
    from tfapp.serving.model_server_files import (
        batching_parameters,
        models_config,
        read_profile,
        server_flags,
        uses_xla,
    )

    base = Path(args.base)
    models = exported_models(base)
    out = Path(args.out) if args.out else base
    served_base = args.model_base_path or str(base.resolve())
    served = {name: [base / name / str(v) for v in versions[-args.num_versions:]]
              for name, versions in models.items()}
    profiles = {}
    for name, dirs in served.items():
        say(f"model {name}: versions {', '.join(map(str, models[name]))}")
        for d in dirs:
            profiles[str(d)] = read_profile(d) or {"profile": "auto", "server_flags": {},
                                                   "batching": None}
    names = sorted({p["profile"] for p in profiles.values()} - {"auto"})
    if len(names) > 1:
        raise ConfigError(f"{base}: the served exports have different serving profiles "
                          f"({', '.join(names)}); one server runs one profile: re-export "
                          f"them with the same export.profile")
    profile = next((p for p in profiles.values() if p["profile"] in names),
                   {"profile": "auto", "server_flags": {}, "batching": None})
    batching = {**{"max_batch_size": 32, "batch_timeout_micros": 5000, "num_batch_threads": 4,
                   "max_enqueued_batches": 100}, **(profile["batching"] or {})}
    for key in batching:
        if getattr(args, key) is not None:
            batching[key] = getattr(args, key)
    xla = any(uses_xla(d) for dirs in served.values() for d in dirs)
    config_file = out / "models.config"
    batching_file = out / "batching_parameters.txt"
    flags = server_flags(profile, xla, config_file, batching_file)
    atomic_write_text(config_file, models_config(models, served_base, args.num_versions))
    atomic_write_text(batching_file, batching_parameters(**batching))
    atomic_write_text(out / "model_server_flags.txt", "\n".join(flags) + "\n")
    say(f"serving profile {profile['profile']}" + (
        "; XLA-compiled functions need --xla_cpu_compilation_enabled=true" if xla else ""))
    say(f"wrote {config_file}, {batching_file} and {out / 'model_server_flags.txt'}; start "
        f"the server with:\n  tensorflow_model_server " + " ".join(flags))


if __name__ == "__main__":
    main()
