"""python -m tfapp.serving_config --base EXPORT_BASE: writes TF Serving's models.config (one
entry per exported model under BASE) and batching_parameters.txt next to it."""
from __future__ import annotations

import argparse
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.errors import TfappError, cli_main


def exported_models(base: Path) -> dict[str, list[int]]:
    """{model name: versions} for each BASE/<name>/ holding integer version directories."""
    if not base.is_dir():
        raise TfappError(f"{base}: export base directory not found")
    models = {}
    for child in sorted(base.iterdir()):
        versions = sorted(int(p.name) for p in child.iterdir()
                          if p.name.isdigit() and (p / "saved_model.pb").is_file()) \
            if child.is_dir() else []
        if versions:
            models[child.name] = versions
    if not models:
        raise TfappError(f"{base}: no exported models (expected BASE/<model>/<version>/)")
    return models


def models_config(models: dict, base_path: str, num_versions: int) -> str:
    """model_config_list in protobuf text format; serves the newest `num_versions`."""
    entries = []
    for name in models:
        entries.append(
            "  config {\n"
            f'    name: "{name}"\n'
            f'    base_path: "{base_path.rstrip("/")}/{name}"\n'
            '    model_platform: "tensorflow"\n'
            f"    model_version_policy {{ latest {{ num_versions: {num_versions} }} }}\n"
            "  }\n")
    return "model_config_list {\n" + "".join(entries) + "}\n"


def batching_parameters(max_batch_size: int, timeout_micros: int, threads: int,
                        max_enqueued: int) -> str:
    """Server-side batching (--enable_batching): merge concurrent requests into one run."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {timeout_micros} }}\n"
            f"num_batch_threads {{ value: {threads} }}\n"
            f"max_enqueued_batches {{ value: {max_enqueued} }}\n"
            "pad_variable_length_inputs: true\n")


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

    from tfapp.rundir import atomic_write_text
    from tfapp.trainer import say

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
    say(f"wrote {out / 'models.config'} and {out / 'batching_parameters.txt'}")


if __name__ == "__main__":
    main()
