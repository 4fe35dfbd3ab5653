"""python -m tfapp.quantize --run RUN_DIR [--mode MODE] [--version N]

Post-training int8 quantisation of a finished classification run (Keras int8 kernels with
per-channel scales), exported as a plain SavedModel that TF Serving loads. Modes:

  folded (default)  int8 weights stored as graph constants, dequantised once when the
                    model loads: int8 size on disk, float32 speed in service
  weights           int8 weight variables dequantised on every call
  dynamic           int8 weights and dynamic-range int8 activations
  ffn               dynamic int8 in the feed-forward layers only
  embeddings        int8 token-embedding table only

Writes RUN/export-int8/<task>/<version>/ and RUN/quantization.json for the default mode
(RUN/export-int8-<mode>/, RUN/quantization-<mode>.json otherwise): float vs int8 metrics on
the run's validation and test splits, and how often their predictions agree.
"""
from __future__ import annotations

import argparse

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.quantize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="finished run directory")
    parser.add_argument("--mode", default=None, help="folded (default) | weights | dynamic "
                                                     "| ffn | embeddings")
    parser.add_argument("--version", type=int, help="export version (default: next)")
    args = parser.parse_args(argv)
    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be >= 1 (TF Serving loads positive integer "
                          f"versions), got {args.version}")
    from tfapp.compression.quantization import DEFAULT_MODE, check_mode, quantize_run

    quantize_run(args.run, args.version, check_mode(args.mode or DEFAULT_MODE))


if __name__ == "__main__":
    main()
