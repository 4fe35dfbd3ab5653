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
    from tfapp.training.trainer import train  # heavy imports after the arguments are known good

    run_dir = args.run_dir
    if cfg.train.tapt_epochs:
        from tfapp.core.rundir import new_run_dir
        from tfapp.pretraining.adaptive import adapt_backbone

        run_dir = run_dir or cfg.run.dir or str(new_run_dir(cfg.run.root, cfg.task))
        adapt_backbone(cfg, task_cls, run_dir)
    train(cfg, task_cls, run_dir)


if __name__ == "__main__":
    main()
