"""python -m tfapp.distill --teacher RUN_DIR --student-layers N [--temperature T] [--alpha A]

Knowledge distillation of a finished classification run into a smaller student: the same
backbone architecture with N transformer layers, initialised from the teacher's embeddings,
evenly spaced encoder layers (0, L/N, 2L/N, ...) and head. It trains on the teacher run's
data with alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * the task's
hard-label loss, then evaluates and exports like any run (its own run directory).
"""
from __future__ import annotations

import argparse

import tfapp  # noqa: F401
from tfapp.core.errors import cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="finished run directory")
    parser.add_argument("--student-layers", type=int, required=True)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of the soft-label loss (1 - alpha: hard labels)")
    parser.add_argument("--epochs", type=int, help="default: the teacher's")
    parser.add_argument("--learning-rate", type=float, help="default: the teacher's")
    parser.add_argument("--run-dir", help="student run directory (default: runs/<task>/...)")
    args = parser.parse_args(argv)
    from tfapp.compression.distillation import distill

    distill(args.teacher, args.student_layers, args.temperature, args.alpha, args.epochs,
            args.learning_rate, args.run_dir)


if __name__ == "__main__":
    main()
