"""Argument handling shared by the CLIs: --task, --config, --set and flag shortcuts."""
from __future__ import annotations

import argparse
from pathlib import Path

from tfapp.core.config import (
    Config,
    apply_overrides,
    apply_recipe,
    build_config,
    default_config_path,
    read_yaml,
)
from tfapp.core.errors import ConfigError
from tfapp.core.task_contract import get_task

# Flags that are shortcuts for --set overrides.
SHORTCUTS = {
    "backbone": "backbone.name",
    "strategy": "runtime.strategy",
    "precision": "runtime.precision",
    "tpu": "runtime.tpu",
    "epochs": "trainer.epochs",
    "profile_steps": "runtime.profile_steps",
}


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="task name, e.g. sentiment")
    parser.add_argument("--config", help="YAML config (default: configs/<task>.yaml)")
    parser.add_argument("--recipe", help="a shipped recipe (configs/recipes/NAME.yaml) over the "
                        "config, e.g. best; --set still wins")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable; value parsed as YAML)")
    parser.add_argument("--backbone", help="default | tiny | HF BERT dir | keras-hub preset dir")
    parser.add_argument("--strategy",
                        choices=["auto", "default", "mirrored", "multiworker", "tpu"])
    parser.add_argument("--precision",
                        choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--tpu", help="TPU name or grpc:// address")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--profile_steps", metavar="A,B",
                        help="capture training steps A..B with the TensorBoard profiler "
                             "(view with tensorboard-plugin-profile)")


def resolve_config(args: argparse.Namespace) -> tuple[Config, type]:
    """Loads the task's YAML (or its defaults), applies --set and shortcut flags."""
    task_cls = get_task(args.task)
    path = Path(args.config) if args.config else default_config_path(args.task)
    raw = read_yaml(path) if path else {}
    raw.setdefault("task", args.task)
    if raw["task"] != args.task:
        raise ConfigError(f"{path}: is a config for task '{raw['task']}', not '{args.task}'")
    overrides = list(args.set)
    for flag, key in SHORTCUTS.items():
        value = getattr(args, flag, None)
        if value is not None:
            # "A,B" for list-valued shortcuts becomes the YAML list [A,B].
            overrides.append(f"{key}=[{value}]" if flag == "profile_steps" else f"{key}={value}")
    raw = apply_overrides(apply_recipe(raw, getattr(args, "recipe", None)), overrides)
    return build_config(raw, task_cls.Config, str(path or "defaults")), task_cls

