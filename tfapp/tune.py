"""python -m tfapp.tune --task TASK --trials N [--max-minutes M] [--set ...] [--search ...]

Hyperparameter search (KerasTuner, Bayesian optimisation by default) in which every trial
is a normal training run judged on validation data only. Keys fixed with --set are not
searched; --search KEY=log|float|int:LOW:HIGH or KEY=choice:A,B adds or replaces a range.
Writes OUT/best.yaml for `python -m tfapp.train --task TASK --config OUT/best.yaml`.
Started again with the same command, a killed search resumes."""
from __future__ import annotations

import argparse
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.cli import SHORTCUTS, add_config_args, resolve_config
from tfapp.core.errors import ConfigError, cli_main


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--trials", type=_positive(int), required=True,
                        help="number of trials (training runs)")
    parser.add_argument("--max-minutes", type=_positive(float),
                        help="start no new trial after this many minutes")
    parser.add_argument("--algorithm", choices=["bayesian", "random"], default="bayesian")
    parser.add_argument("--search", action="append", default=[],
                        metavar="SECTION.KEY=KIND:...", help="add or replace a search range")
    parser.add_argument("--out", help="search directory (default: runs/<task>/tune)")
    args = parser.parse_args(argv)
    cfg, task_cls = resolve_config(args)
    from tfapp.hyperparameter_search.space import search_space

    fixed = {text.split("=", 1)[0].strip() for text in args.set}
    fixed |= {key for flag, key in SHORTCUTS.items() if getattr(args, flag, None) is not None}
    space = search_space(args.search, fixed)
    from tfapp.hyperparameter_search.trials import SearchSettings, search  # heavy: TensorFlow

    out = Path(args.out) if args.out else Path(cfg.run.root) / cfg.task / "tune"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    best = search(cfg, task_cls, space, SearchSettings(args.trials, args.algorithm,
                                                       args.max_minutes, out))
    print(f"train the best configuration with: python -m tfapp.train --task {cfg.task} "
          f"--config {best}")


if __name__ == "__main__":
    main()
