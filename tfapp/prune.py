"""python -m tfapp.prune --run RUN_DIR --heads F --ffn F [--epochs N] [--batches N] ...

Structured pruning of a finished classification run (sentiment, qa intent mode, or a run
that distillation or pruning produced): removes the fraction F of attention heads and of
feed-forward neurons that matter least (Michel et al. 2019 importance, gradient x weight
of each unit's output, over --batches training batches of 8), rebuilds a physically smaller
backbone, fine-tunes it for --epochs (distilling from the unpruned model with weight
--alpha at temperature --temperature), and saves a new run that evaluates, exports and
quantises like any other. RUN/pruning.json records what was kept.
"""
from __future__ import annotations

import argparse

import tfapp  # noqa: F401
from tfapp.core.errors import cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.prune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="finished run directory")
    parser.add_argument("--heads", default="0.0",
                        help="fraction of attention heads to remove, in [0, 1)")
    parser.add_argument("--ffn", default="0.0",
                        help="fraction of feed-forward neurons to remove, in [0, 1)")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (>= 1)")
    parser.add_argument("--learning-rate", type=float, help="default: the run's")
    parser.add_argument("--batches", type=int, default=64,
                        help="training batches (of 8) to measure importance on")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of distillation from the unpruned model (0: off)")
    parser.add_argument("--run-dir", help="new run directory (default: runs/<task>/...)")
    args = parser.parse_args(argv)
    from tfapp.compression.pruning import prune

    prune(args.run, args.heads, args.ffn, args.epochs, args.learning_rate, args.batches,
          args.temperature, args.alpha, args.run_dir)


if __name__ == "__main__":
    main()
