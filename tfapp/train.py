"""python -m tfapp.train --task TASK [--config FILE] [--set section.key=value ...]"""
from __future__ import annotations

import argparse

import tfapp  # noqa: F401
from tfapp.cli import add_config_args, resolve_config
from tfapp.core.errors import cli_main


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.train", description=__doc__)
    add_config_args(parser)
    parser.add_argument("--run-dir", help="run directory (default: runs/<task>/<timestamp>); "
                        "an interrupted run resumes when given the same directory")
    args = parser.parse_args(argv)
    cfg, task_cls = resolve_config(args)
    # Heavy imports after the arguments are known good.
    from tfapp.training.driver import train

    train(cfg, task_cls, args.run_dir)


if __name__ == "__main__":
    main()
