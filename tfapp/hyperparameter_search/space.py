"""The search space of `tfapp.tune`: config keys and the ranges they are drawn from.

A range is written `KEY=log:LOW:HIGH` (log-uniform float), `KEY=float:LOW:HIGH`,
`KEY=int:LOW:HIGH` or `KEY=choice:A,B,C` (values parsed as YAML)."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import yaml

from tfapp.core.errors import ConfigError

# Where fine-tuning BERT-sized models is known to be sensitive (Devlin et al. 2019,
# Mosbach et al. 2021): learning rate, epochs, batch size, warm-up; plus layer decay and
# dropout, which matter most on small data sets, and how much faster the new head learns.
DEFAULT_SPACE = {
    "optimizer.learning_rate": "log:1e-5:2e-4",
    "trainer.epochs": "int:2:6",
    "optimizer.layer_decay": "float:0.7:1.0",
    "optimizer.head_lr_multiplier": "log:1:50",
    "optimizer.warmup_ratio": "float:0.0:0.2",
    "trainer.global_batch_size": "choice:16,32,64",
    "backbone.dropout": "float:0.0:0.2",
}
KINDS = ("log", "float", "int", "choice")


@dataclasses.dataclass(frozen=True)
class Range:
    key: str  # dotted config key, e.g. optimizer.learning_rate
    kind: str
    values: tuple  # (low, high) or the choices

    def declare(self, hp) -> None:
        """Adds this range to KerasTuner HyperParameters `hp`."""
        if self.kind == "choice":
            hp.Choice(self.key, list(self.values))
        elif self.kind == "int":
            hp.Int(self.key, *self.values)
        else:
            hp.Float(self.key, *self.values, sampling="log" if self.kind == "log" else "linear")


def parse_range(text: str) -> Range:
    """`KEY=KIND:...` → Range, with one-line errors."""
    key, _, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    key = key.strip()
    if not key or "." not in key or kind not in KINDS or not rest:
        raise ConfigError(f"--search {text!r}: expected SECTION.KEY=log|float|int:LOW:HIGH "
                          f"or SECTION.KEY=choice:A,B,...")
    if kind == "choice":
        values = tuple(yaml.safe_load(v) for v in rest.split(","))
        if len(values) < 2 or len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--search {text!r}: a choice needs two or more distinct values")
        return Range(key, kind, values)
    number = int if kind == "int" else float
    try:
        low, high = (number(v) for v in rest.split(":"))
    except ValueError:
        low = high = None
    if low is None or not low < high or not math.isfinite(high - low) \
            or (kind == "log" and low <= 0):
        raise ConfigError(f"--search {text!r}: expected {number.__name__}s LOW:HIGH with "
                          f"LOW < HIGH" + (", both > 0 for log" if kind == "log" else ""))
    return Range(key, kind, (low, high))


def search_space(extra: list[str], fixed: set[str]) -> list[Range]:
    """The default ranges, replaced or extended by `extra` (--search), minus the keys the
    user fixed with --set."""
    ranges = {key: parse_range(f"{key}={spec}") for key, spec in DEFAULT_SPACE.items()}
    for text in extra:
        r = parse_range(text)
        ranges[r.key] = r
    space = [r for key, r in ranges.items() if key not in fixed]
    if not space:
        raise ConfigError("nothing to search: every key of the search space is fixed by --set")
    return space


def overrides(space: list[Range], values: dict[str, Any]) -> list[str]:
    """`--set` strings for one trial's values."""
    return [f"{r.key}={json.dumps(values[r.key])}" for r in space]
