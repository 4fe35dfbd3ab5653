"""MODEL_CARD.md: what a run trained, on what data, and how well, for whoever deploys it."""
from __future__ import annotations

import datetime as dt

from tfapp.core.config import Config


def model_card(cfg: Config, task, loaded, splits, metrics: dict, export_dir, seconds,
               lever_lines: list[str] = ()) -> str:
    """The card's markdown; `lever_lines` are what the run's levers say they did."""
    lines = [
        f"# Model card: {cfg.task}",
        "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- backbone: {loaded.source}",
        f"- backbone details: {loaded.backbone.count_params():,} parameters, "
        f"pooling {cfg.backbone.pooling}, max_seq_length {cfg.backbone.max_seq_length}, "
        f"exact GELU {loaded.exact_gelu}",
        f"- training: {cfg.trainer.epochs} epoch(s) max, "
        f"global batch {cfg.trainer.global_batch_size}, "
        f"AdamW lr {cfg.optimizer.learning_rate}, seed {cfg.seed}, {seconds:.0f} s",
        *lever_lines,
        f"- export: {export_dir or 'not exported'}"
        + (f" (computes in {metrics['export']['precision']})"
           if metrics.get("export", {}).get("precision") else ""),
        "",
        "## Data",
        *task.model_card_lines(splits),
        "",
        "## Metrics",
        "```",
    ]
    for split in ("validation", "test"):
        if metrics.get(split):
            lines += [f"[{split}]", task.format_metrics(metrics[split])]
    lines += ["```", "",
              "## Intended use and limits",
              "Fine-tuned on the data above; check it on your own held-out data before use. "
              "The built-in sample is template-generated: its metrics are a smoke test, "
              "not an estimate of accuracy on real text.", ""]
    return "\n".join(lines)
