"""How far past one model do finished sentiment runs go when combined, or when their
decision rule is tuned? Two post-hoc checks on runs `tfapp.train` already wrote:

- ensembles: the mean of the runs' class probabilities on their test file (every prefix
  of the run list and the whole list), against each run alone;
- class offsets: per-class additive offsets to the log-probabilities, chosen on each run's
  own validation split to maximise macro-F1 (coordinate ascent over a grid), then applied
  to its test file.

    python -m bench.ensemble_ceiling --runs A/seed1 A/seed2 A/seed3 --name A \
        [--runs B/seed1 ... --name B] --out bench/quality_full_levers/ceiling

writes OUT/CEILING.md and OUT/ceiling.json. A recipe change to one model is unlikely to
pass the ensemble of several of its runs, which makes the ensemble a ceiling to read a
quality goal against."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from bench.machine import describe, label
from bench.results_file import write_json, write_text
from tfapp.core import run_layout as layout
from tfapp.core.metrics import classification_report

OFFSET_GRID = np.linspace(-2.0, 2.0, 81)


def macro_f1(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Macro-F1 over `classes` classes, computed as runs record it."""
    return classification_report(labels, predicted, list(range(classes)))["macro_f1"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def tune_offsets(log_probs: np.ndarray, labels: np.ndarray, grid=OFFSET_GRID,
                 rounds: int = 3) -> np.ndarray:
    """Per-class offsets (mean zero) that maximise macro-F1 of argmax(log_probs + offsets),
    by coordinate ascent over `grid`; a change is kept only when it strictly helps."""
    classes = log_probs.shape[1]
    offsets = np.zeros(classes)
    best = macro_f1(labels, log_probs.argmax(axis=1), classes)
    for _ in range(rounds):
        for c in range(classes):
            for value in grid:
                trial = offsets.copy()
                trial[c] = value
                score = macro_f1(labels, (log_probs + trial).argmax(axis=1), classes)
                if score > best + 1e-12:
                    best, offsets = score, trial
    return offsets - offsets.mean()


def ensemble_f1(test_logits: list, labels: np.ndarray) -> float:
    """Macro-F1 of the argmax of the runs' mean class probabilities."""
    probs = np.mean([np.exp(log_softmax(lg)) for lg in test_logits], axis=0)
    return macro_f1(labels, probs.argmax(axis=1), probs.shape[1])


def run_logits(run_dir: str) -> dict:
    """The sentiment logits of a finished run on its validation split and test file,
    computed with the model in its export's precision (as its metrics were)."""
    from tfapp.core.datasets import texts_only_dataset
    from tfapp.core.windows import predict_texts
    from tfapp.training.restore import restore_run

    restored = restore_run(run_dir)
    cfg, task, _, packer = restored
    if cfg.task != "sentiment":
        raise SystemExit(f"{run_dir}: a {cfg.task} run; this check reads sentiment runs")
    splits = task.load_splits()
    if len(splits["test"]) == 0:
        raise SystemExit(f"{run_dir}: the run has no test file (data.test_file)")
    model = restored.served()
    recorded = Path(run_dir) / layout.METRICS_FILE
    record = json.loads(recorded.read_text()) if recorded.is_file() else {}
    # A refit model (levers.refit.enabled) has trained on its validation split.
    out = {"seconds": record.get("wall_seconds"), "validation_seen": "refit" in record}
    for split in ("validation", "test"):
        examples = splits[split]
        logits = predict_texts(model, packer, examples.texts, cfg.trainer.global_batch_size,
                               texts_only_dataset)["sentiment"]
        out[split] = (np.asarray(logits, np.float64), np.asarray(examples.labels))
    return out


def analyse(name: str, runs: list[str], logits: list[dict]) -> dict:
    """Per-run and ensemble macro-F1 on test, and the offsets check, for one recipe."""
    test_labels = logits[0]["test"][1]
    if any(not np.array_equal(lg["test"][1], test_labels) for lg in logits):
        raise SystemExit(f"{name}: the runs were tested on different files")
    rows = []
    for run, lg in zip(runs, logits):
        (v_logits, v_labels), (t_logits, _) = lg["validation"], lg["test"]
        classes = t_logits.shape[1]
        offsets = tune_offsets(log_softmax(v_logits), v_labels)
        rows.append({
            "run": run, "seconds": lg["seconds"], "validation_seen": lg["validation_seen"],
            "test_macro_f1": macro_f1(test_labels, t_logits.argmax(axis=1), classes),
            "validation_macro_f1": macro_f1(v_labels, v_logits.argmax(axis=1), classes),
            "offsets": [round(float(o), 4) for o in offsets],
            "validation_macro_f1_offsets": macro_f1(
                v_labels, (log_softmax(v_logits) + offsets).argmax(axis=1), classes),
            "test_macro_f1_offsets": macro_f1(
                test_labels, (log_softmax(t_logits) + offsets).argmax(axis=1), classes)})
    ensembles = {str(k): ensemble_f1([lg["test"][0] for lg in logits[:k]], test_labels)
                 for k in range(2, len(logits) + 1)}
    return {"name": name, "runs": rows, "ensembles": ensembles}


def markdown(result: dict) -> str:
    """CEILING.md from the analysis."""
    lines = [
        "# Ensemble ceiling and tuned class offsets (sentiment runs)", "",
        f"Generated by `{result['command']}` on {result['date']} ({result['machine']}); "
        f"raw results in `ceiling.json` beside this file. Test macro-F1 of each run alone, "
        f"with per-class offsets tuned on its own validation split, and of the mean "
        f"class probabilities of its first k runs.", ""]
    most = max(len(r["runs"]) for r in result["recipes"])
    columns = ["recipe", "one run", "with tuned offsets",
               *(f"ensemble of {k}" for k in range(2, most + 1))]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for recipe in result["recipes"]:
        single = np.array([r["test_macro_f1"] for r in recipe["runs"]])
        spread = single.std(ddof=1) if len(single) > 1 else 0.0
        tuned = np.mean([r["test_macro_f1_offsets"] for r in recipe["runs"]])
        ensembles = [recipe["ensembles"].get(str(k)) for k in range(2, most + 1)]
        cells = [recipe["name"], f"{single.mean():.4f} ± {spread:.4f}", f"{tuned:.4f}",
                 *("-" if v is None else f"{v:.4f}" for v in ensembles)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for recipe in result["recipes"]:
        rows = recipe["runs"]
        single = np.array([r["test_macro_f1"] for r in rows])
        tuned = np.array([r["test_macro_f1_offsets"] for r in rows])
        lines += [f"## {recipe['name']}", "",
                  "| run | macro-F1 | with offsets | offsets | validation "
                  "| validation with offsets | seconds |",
                  "|---|---|---|---|---|---|---|"]
        seen = any(r["validation_seen"] for r in rows)
        lines += [f"| `{r['run']}` | {r['test_macro_f1']:.4f} | {r['test_macro_f1_offsets']:.4f} "
                  f"| {', '.join(f'{o:+.2f}' for o in r['offsets'])} "
                  f"| {r['validation_macro_f1']:.4f} | {r['validation_macro_f1_offsets']:.4f} "
                  f"| {r['seconds'] if r['seconds'] is not None else '-'} |"
                  for r in rows]
        spread = single.std(ddof=1) if len(single) > 1 else 0.0
        ensembles = "; ".join(f"ensemble of {k}: {v:.4f}" for k, v in recipe["ensembles"].items())
        lines += ["", f"One run: {single.mean():.4f} ± {spread:.4f}; with offsets: "
                      f"{tuned.mean():.4f}; {ensembles}", ""]
        if seen:
            lines += ["These runs were refit on training + validation examples "
                      "(levers.refit.enabled): "
                      "their validation columns and offsets come from data they trained on.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ensemble_ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", action="append", required=True,
                        help="run directories of one recipe (repeat with --name per recipe)")
    parser.add_argument("--name", action="append", required=True, help="the recipe's name")
    parser.add_argument("--out", required=True, help="folder for CEILING.md and ceiling.json")
    args = parser.parse_args(argv)
    if len(args.name) != len(args.runs):
        parser.error("give one --name per --runs")
    recipes = [analyse(name, runs, [run_logits(r) for r in runs])
               for name, runs in zip(args.name, args.runs)]
    result = {"command": "python -m bench.ensemble_ceiling " + " ".join(argv or sys.argv[1:]),
              "date": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": label(describe()), "recipes": recipes}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ceiling.json", result)
    write_text(out / "CEILING.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
