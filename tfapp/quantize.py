"""python -m tfapp.quantize --run RUN_DIR [--version N]

Post-training int8 quantisation of a finished classification run, TF-native: Keras'
`model.quantize("int8")` stores Dense / EinsumDense / Embedding kernels as int8 with
per-channel scales and quantises activations on the fly (dynamic range), so the export
stays a plain SavedModel that TF Serving loads (same op check as every export).

Writes RUN/export-int8/<task>/<version>/ and RUN/quantization.json: float vs int8 metrics
on the run's validation and test splits, and how often their predictions agree.
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
    parser.add_argument("--version", type=int, help="export version (default: next)")
    args = parser.parse_args(argv)
    if args.version is not None and args.version < 1:
        raise ConfigError(f"--version must be >= 1 (TF Serving loads positive integer "
                          f"versions), got {args.version}")
    from tfapp.compression.quantize import quantize_run

    quantize_run(args.run, args.version)


if __name__ == "__main__":
    main()
