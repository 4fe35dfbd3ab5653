"""python -m tfapp.recommend_index --model EXPORT --items NEW_ITEMS.csv

Writes a new version of a recommend export whose `recommend` signature retrieves from a
new catalogue, without retraining: the new items are embedded by the export's own item
encoder. EXPORT is a version directory (.../recommend/3) or a model base (its highest
version); the new version is the next one under the same base unless --base / --version
say otherwise, published atomically like every export.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.recommend_index",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="recommend export: version dir or model base")
    parser.add_argument("--items", required=True, help="new catalogue (CSV / TSV / JSONL)")
    parser.add_argument("--id-column", default="item_id")
    parser.add_argument("--text-columns", default="title,category,body",
                        help="comma-separated columns joined with '. ' into the item text, "
                             "as the model was trained (default: title,category,body)")
    parser.add_argument("--format", default="auto", choices=["auto", "csv", "tsv", "jsonl"])
    parser.add_argument("--top-k", type=int, help="items per user (default: the export's)")
    parser.add_argument("--base", help="model base for the new version (default: EXPORT's)")
    parser.add_argument("--version", type=int, help="version number (default: next)")
    args = parser.parse_args(argv)
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be >= 1, got {args.version}")
    columns = [c.strip() for c in args.text_columns.split(",") if c.strip()]
    if not columns:
        raise ConfigError("--text-columns must name at least one column")

    from tasks.recommend.catalogue import CATALOGUE_RECORD, reindexed_root
    from tfapp.core.export_layout import resolve_export
    from tfapp.core.log import say
    from tfapp.core.rundir import dir_size_bytes
    from tfapp.serving.saved_model import publish_saved_model

    source = resolve_export(Path(args.model))
    try:
        root, examples, record = reindexed_root(source, args.items, args.id_column, columns,
                                                args.format, args.top_k)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    base = Path(args.base) if args.base else source.parent
    out = publish_saved_model(root, root.signatures(), {}, examples, base, args.version,
                              extra_files={f"assets.extra/{CATALOGUE_RECORD}":
                                           json.dumps(record, indent=2)})
    say(f"indexed {record['catalogue_size']} items from {args.items} into {out} "
        f"({dir_size_bytes(out) / 2**20:.1f} MiB), top {record['top_k']} per user")


if __name__ == "__main__":
    main()
