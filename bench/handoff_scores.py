"""`python -m bench.handoff_scores --runs SET=RUN_DIR[,RUN_DIR...] ...`: which confidence
score should decide a support bot's hand-off? For finished QA intent runs (one per seed)
whose validation and test files hold out-of-scope questions, three scores of the same
model, each thresholded on validation and judged on test:

  softmax   the top intent probability (qa.handoff_score=softmax)
  centroid  cosine similarity to the nearest intent centroid of the training questions'
            embeddings (the unit features under the intent head; qa.handoff_score=centroid)
  nearest   cosine similarity to the nearest single training question (the default)

The predicted intent is always the classifier's; only the hand-off decision changes. Per
score: AUROC of in-scope vs out-of-scope on test (threshold-free), the test out-of-scope
recall and in-scope coverage at the threshold that keeps 90% of validation's in-scope
questions, and at the task's balanced threshold (in-scope accuracy of answered questions +
out-of-scope recall, maximised on validation). Seeds are paired against softmax. Writes
the "Hand-off score" section of QUALITY.md and quality_handoff.json beside it."""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path

import numpy as np

from bench.paired_stats import paired
from bench.quality_io import machine
from bench.results_file import replace_section, write_json

SCORES = ("softmax", "centroid", "nearest")
BEGIN, END = "<!-- handoff:begin -->", "<!-- handoff:end -->"
HEADING = "## Hand-off score: softmax or embedding distance?"
COVERAGE = 0.9


def auroc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    """P(an in-scope question scores above an out-of-scope one), ties counted half
    (the Mann-Whitney statistic)."""
    both = np.concatenate([in_scope, out_of_scope])
    ranks = np.empty(len(both))
    order = np.argsort(both, kind="stable")
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average ranks of ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[:len(in_scope)].sum() - len(in_scope) * (len(in_scope) + 1) / 2
    return float(u / (len(in_scope) * len(out_of_scope)))


def confidences(train_emb, train_answers, emb, probs) -> dict:
    """{score name: [questions] confidence} for one split."""
    classes = np.unique(train_answers)
    centroids = np.stack([train_emb[train_answers == c].mean(axis=0) for c in classes])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return {"softmax": probs.max(axis=1), "centroid": (emb @ centroids.T).max(axis=1),
            "nearest": (emb @ train_emb.T).max(axis=1)}


def judged(threshold: float, confidence, in_scope) -> dict:
    answered = confidence >= threshold
    return {"out_of_scope_recall": float((~answered)[~in_scope].mean()),
            "in_scope_coverage": float(answered[in_scope].mean())}


def score_run(run_dir: Path) -> dict:
    """Every score's test figures for one finished QA intent run."""
    from tasks.qa.data import HANDOFF_ONLY
    from tasks.qa.ranking import balanced_threshold
    from tfapp.training.restore import restore_run

    restored = restore_run(run_dir)
    task, model, packer = restored.task, restored.served(), restored.packer
    splits = task.load_splits()
    oos = task._oos_index()
    if oos is None:
        raise SystemExit(f"error: {run_dir}: the run has no qa.out_of_scope_label")
    train = splits["train"]
    keep = train.answers != oos  # centroids and neighbours of in-scope questions only
    train_emb = task.embed(model, train.questions, packer)[keep]
    out = {}
    views = {}
    for split in ("validation", "test"):
        ex = splits[split]
        probs = task.bank_scores(model, ex.questions, packer)
        in_scope = (ex.answers != oos) & (ex.answers != HANDOFF_ONLY)
        views[split] = (confidences(train_emb, train.answers[keep],
                                    task.embed(model, ex.questions, packer), probs),
                        in_scope, probs.argmax(axis=1) == ex.answers,
                        probs.argmax(axis=1) == oos)
    (val_c, val_in, val_right, val_said), (test_c, test_in, _, _) = views["validation"], \
        views["test"]
    for name in SCORES:
        v, t = val_c[name], test_c[name]
        at_coverage = float(np.quantile(v[val_in], 1 - COVERAGE))
        balanced = balanced_threshold(v, val_right, ~val_in, val_said)["threshold"]
        out[name] = {"auroc": auroc(t[test_in], t[~test_in]),
                     **{f"{k}_at_90": x for k, x in judged(at_coverage, t, test_in).items()},
                     **{f"{k}_balanced": x for k, x in judged(balanced, t, test_in).items()}}
    return out


METRICS = ("auroc", "out_of_scope_recall_at_90", "in_scope_coverage_at_90",
           "out_of_scope_recall_balanced", "in_scope_coverage_balanced")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Generated by `{result['command']}` on {result['date']} ({m.get('cpu', '?')}, "
             f"{m.get('cores', '?')} cores); raw results in `quality_handoff.json`. One "
             f"finished QA intent run per seed; every score judges the same model's "
             f"predictions. Mean ± std over seeds; [paired difference against softmax, "
             f"points, 95% t-interval]. `@90`: threshold keeping 90% of validation's "
             f"in-scope questions; `balanced`: the task's balanced objective.", "",
             "| set | runs | score | " + " | ".join(METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for name, block in result["sets"].items():
        runs = block["runs"]
        for score in SCORES:
            cells = []
            for metric in METRICS:
                values = [r[score][metric] for r in runs]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                cell = f"{statistics.fmean(values):.4f} ± {sd:.4f}"
                if score != "softmax" and len(values) > 1:
                    d = paired([100 * x for x in values],
                               [100 * r["softmax"][metric] for r in runs])
                    cell += f" [{d['mean']:+.2f}, {d['low']:+.2f}..{d['high']:+.2f}]"
                cells.append(cell)
            lines.append(f"| {name} | {len(runs)} | {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.handoff_scores", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", action="append", required=True,
                        help="SET=RUN_DIR[,RUN_DIR...]: one set's runs, one per seed")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    result = {"command": "python -m bench.handoff_scores " + " ".join(sys.argv[1:]),
              "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "sets": {}}
    for spec in args.runs:
        name, _, dirs = spec.partition("=")
        if not dirs:
            raise SystemExit(f"error: --runs {spec!r}: expected SET=RUN_DIR[,RUN_DIR...]")
        runs = [score_run(Path(d)) for d in dirs.split(",")]
        result["sets"][name] = {"run_dirs": dirs.split(","), "runs": runs}
        print(f"[handoff] {name}: " + ", ".join(
            f"{s} auroc {statistics.fmean(r[s]['auroc'] for r in runs):.4f}" for s in SCORES),
            flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quality_handoff.json", result)
    table = markdown(result)
    replace_section(out / "QUALITY.md", BEGIN, END, f"{BEGIN}\n{table}\n{END}", HEADING)
    print(table)


if __name__ == "__main__":
    main()
