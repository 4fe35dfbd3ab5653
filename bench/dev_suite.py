"""`python -m bench.quality --suite dev|dev_quick|dev_smoke`: the development suite that
measures whether a recipe's gain carries over. Every sentiment and intent set in
../shared/data, the reference recipe beside tfapp's recipes, the same sampled files and
seeds for both; per set the mean ± std and the paired difference against the reference
with a 95% t-interval, and pooled per family (mean of per-set differences, bootstrap
interval over sets and seeds). Writes the suite's "Development suite" section of
QUALITY.md and its raw results beside it (quality_dev.json for `dev`, quality_<suite>.json
for the others). `python -m bench.dev_suite --render RESULTS.json [MORE.json ...] [--out
DIR]` writes the section again from a run's raw results, or from runs of the same suite,
seeds and defaults over different sets, as one table.

Sets and how they are used (train on train, choose epochs / calibrate on validation,
score on test): TFNS has no test file, so its validation file is the test set and 10% of
its training file (seeded, stratified) the validation set. Big sets are sampled
(stratified by label, seeded, the same sample for every recipe and seed) to the suite's
sizes; validation and test rows whose intent never occurs in training are dropped (ATIS),
except the out-of-scope label, which tfapp hands off (HINT3 and ROSTD have none in
training)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.paired_stats import paired, pooled
from bench.quality_io import machine, read_csv, sample_by, train_recipe, write_csv
from bench.quality_recipes import RECIPES, shipped_settings
from bench.results_file import replace_section, write_json

# name: (family, folder, label column, out-of-scope label or None)
DEV_SETS = {
    "tfns": ("sentiment", "tfns", "label", None),
    "sentfin": ("sentiment", "sentfin", "label", None),
    "fiqa": ("sentiment", "fiqa2018_task1_posts", "label", None),
    "clinc150": ("intents", "clinc150", "intent", "oos"),
    "hint3_curekart": ("intents", "hint3_curekart", "intent", "oos"),
    "hint3_powerplay11": ("intents", "hint3_powerplay11", "intent", "oos"),
    "snips": ("intents", "snips", "intent", None),
    "atis": ("intents", "atis", "intent", None),
    "rostd": ("intents", "rostd", "intent", "oos"),
}
PRIMARY = {"sentiment": "macro_f1", "intents": "in_scope_accuracy"}
# The `intermediate` recipe's related set, leave-one-out: another sentiment set for each
# sentiment set, CLINC150 for each intent set (ROSTD for CLINC150 itself).
INTERMEDIATE_SOURCE = {"tfns": "sentfin", "sentfin": "tfns", "fiqa": "tfns",
                       "clinc150": "rostd"}
INTERMEDIATE_DEFAULT = "clinc150"
BEGIN, END = "<!-- dev:begin -->", "<!-- dev:end -->"
HEADING = "## Development suite: does a gain carry over?"


def outputs(suite: str) -> tuple[str, str, str, str]:
    """(begin marker, end marker, heading, raw results file) of a suite's section: each
    suite has its own, so a quick run never overwrites the full suite's tables."""
    if suite == "dev":
        return BEGIN, END, HEADING, "quality_dev.json"
    return (f"<!-- {suite}:begin -->", f"<!-- {suite}:end -->",
            f"## Development suite ({suite}): does a gain carry over?", f"quality_{suite}.json")


@dataclasses.dataclass
class DevSuite:
    backbone: str
    train_rows: int | None  # stratified sample of each training file (None: all)
    validation_rows: int | None
    test_rows: int | None
    epochs: int | None = None  # None: each recipe's own
    intermediate_rows: int = 1500  # stratified sample of the intermediate set's training file
    train_per_class: int | None = None  # few-shot suites: this many training rows per label


DEV_SUITES = {
    "dev": DevSuite("default", 1500, 500, 1000),
    "dev_quick": DevSuite("default", 240, 200, 300),
    "dev_smoke": DevSuite("tiny", 60, 30, 30, epochs=1, intermediate_rows=400),
    # Few-shot mode (levers.few_shot, recipe `setfit`) against the default fine-tune: 8, 16
    # or 64 training examples per label, the dev validation and test samples.
    **{f"few_{n}": DevSuite("default", None, 200, 300, train_per_class=n) for n in (8, 16, 64)},
    "few_smoke": DevSuite("tiny", None, 30, 30, epochs=1, train_per_class=4),
}


def intermediate_file(data: Path, name: str, suite: DevSuite, work: Path) -> Path:
    """The `intermediate` recipe's file for set `name`: a stratified, seeded sample of its
    related set's training file (INTERMEDIATE_SOURCE), with the same columns."""
    source = INTERMEDIATE_SOURCE.get(name, INTERMEDIATE_DEFAULT)
    out = work / name / f"intermediate_{source}.csv"
    if not out.is_file():
        _, folder, label, _ = DEV_SETS[source]
        rows = sample_by(read_csv(data / folder / "train.csv"), label, None,
                         suite.intermediate_rows, seed=2)
        write_csv(out, [{"text": r["text"], label: r[label]} for r in rows])
    return out


def prepare_dev(data: Path, suite: DevSuite, work: Path, names: list[str]) -> dict:
    """Each set's sampled train / validation / test CSVs under `work`, and their sizes."""
    out = {}
    for name in names:
        family, folder, label, oos = DEV_SETS[name]
        base = data / folder
        if not base.is_dir():
            raise SystemExit(f"error: {base}: missing (see ../shared/data/README.md)")
        if (base / "test.csv").is_file():
            train = read_csv(base / "train.csv")
            validation, test = read_csv(base / "validation.csv"), read_csv(base / "test.csv")
        else:  # TFNS: its validation file is the test set; validation comes from train
            full, test = read_csv(base / "train.csv"), read_csv(base / "validation.csv")
            validation = sample_by(full, label, None, round(0.1 * len(full)), seed=1)
            picked = {id(r) for r in validation}
            train = [r for r in full if id(r) not in picked]
        train = sample_by(train, label, suite.train_per_class, suite.train_rows)
        known = {r[label] for r in train} | ({oos} if oos else set())
        splits = {"train": train}
        for split, rows, size in (("validation", validation, suite.validation_rows),
                                  ("test", test, suite.test_rows)):
            splits[split] = sample_by([r for r in rows if r[label] in known], label, None, size)
        out[name] = {split: write_csv(work / name / f"{split}.csv", rows)
                     for split, rows in splits.items()}
        out[name]["sizes"] = {split: len(rows) for split, rows in splits.items()}
        out[name]["has_oos"] = bool(oos) and any(r[label] == oos for r in validation + test)
    return out


def tfapp_sets(name: str, files: dict) -> tuple[str, list[str]]:
    family, _, _, oos = DEV_SETS[name]
    common = [f"data.{s}_file={files[s]}" for s in ("train", "validation", "test")]
    if family == "sentiment":
        return "sentiment", common + ["sentiment.topic_column=null"]
    sets = common + ["qa.mode=intent", "qa.question_column=text", "qa.answer_id_column=intent"]
    return "qa", sets + ([f"qa.out_of_scope_label={oos}"] if files["has_oos"] else [])


def tfapp_headline(family: str, test: dict) -> dict:
    if family == "sentiment":
        return {"accuracy": test["sentiment"]["accuracy"],
                "macro_f1": test["sentiment"]["macro_f1"]}
    if "out_of_scope" in test:
        o = test["out_of_scope"]
        return {k: o[k] for k in ("in_scope_accuracy", "out_of_scope_recall",
                                  "in_scope_coverage")}
    return {"in_scope_accuracy": test["ranking"]["top1_accuracy"]}


def run_tfapp_dev(name: str, files: dict, recipe: str, seed: int, suite: DevSuite,
                  work: Path) -> dict:
    task, sets = tfapp_sets(name, files)
    family = DEV_SETS[name][0]
    if recipe == "intermediate":
        sets.append(f"levers.intermediate.train_file={files['intermediate']}")
    metrics, seconds = train_recipe(task, sets, RECIPES[recipe], seed, suite.backbone,
                                    suite.epochs, work / "runs" / name / recipe / f"seed{seed}",
                                    f"{name}/{recipe}/seed {seed}")
    out = {**tfapp_headline(family, metrics["test"]), "seconds": seconds}
    record = metrics.get("ensemble")
    if record:  # the same run's first member and K-member ensemble, beside the distilled
        for candidate in ("single", "ensemble"):
            out[f"{candidate}_{PRIMARY[family]}"] = tfapp_headline(
                family, record[candidate]["test"])[PRIMARY[family]]
        out["member_seconds"] = sum(record["member_seconds"]) + record.get("distill_seconds", 0)
    return out


def run_reference_dev(name: str, files: dict, seed: int, suite: DevSuite) -> dict:
    """The plain keras-hub fine-tune on the training labels; it has no hand-off, so an
    out-of-scope test question counts as handed off only when it predicts that class."""
    from bench.quality_reference import EPOCHS, fine_tune
    from tfapp.core.metrics import classification_report

    family, _, label, oos = DEV_SETS[name]
    train, test = read_csv(files["train"]), read_csv(files["test"])
    labels = sorted({r[label] for r in train})
    index = {v: i for i, v in enumerate(labels)}
    logits, seconds = fine_tune(suite.backbone, [r["text"] for r in train],
                                np.array([index[r[label]] for r in train]),
                                [r["text"] for r in test], len(labels), seed,
                                epochs=suite.epochs or EPOCHS)
    predicted = [labels[i] for i in logits.argmax(axis=1)]
    truth = [r[label] for r in test]
    out = {"seconds": round(seconds, 1)}
    if family == "sentiment":
        report = classification_report(np.array([index[t] for t in truth]),
                                       logits.argmax(axis=1), labels)
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], **out}
    in_scope = [t != oos for t in truth]
    right = [p == t for p, t, i in zip(predicted, truth, in_scope) if i]
    out["in_scope_accuracy"] = statistics.fmean(right) if right else 0.0
    if files["has_oos"]:
        handed = [p == oos for p, i in zip(predicted, in_scope) if not i]
        out["out_of_scope_recall"] = statistics.fmean(handed) if handed else 0.0
        out["in_scope_coverage"] = statistics.fmean(
            [p != oos for p, i in zip(predicted, in_scope) if i])
    return out


def compare(result: dict) -> None:
    """Adds the paired differences (points) per set and pooled per family to `result`."""
    pooled_diffs: dict = {}
    pooled_levers: dict = {}  # a lever recipe against the default: what the lever adds
    for name, block in result["sets"].items():
        family = DEV_SETS[name][0]
        metric = PRIMARY[family]
        ref = [100 * r[metric] for r in block["runs"]["reference"]]
        default = ([100 * r[metric] for r in block["runs"]["default"]]
                   if "default" in block["runs"] else None)
        block["paired"], block["paired_default"] = {}, {}
        for recipe, runs in block["runs"].items():
            if recipe == "reference":
                continue
            ours = [100 * r[metric] for r in runs]
            diff = paired(ours, ref)
            block["paired"][recipe] = diff
            pooled_diffs.setdefault(family, {}).setdefault(recipe, []).append(diff["diffs"])
            if default is not None and recipe != "default":
                lever = paired(ours, default)
                block["paired_default"][recipe] = lever
                pooled_levers.setdefault(family, {}).setdefault(recipe, []).append(
                    lever["diffs"])
    result["pooled"] = {family: {recipe: pooled(diffs) for recipe, diffs in recipes.items()}
                        for family, recipes in pooled_diffs.items()}
    result["pooled_vs_default"] = {
        family: {recipe: pooled(diffs) for recipe, diffs in recipes.items()}
        for family, recipes in pooled_levers.items()}


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def _interval(d: dict) -> str:
    if np.isnan(d["low"]):
        return f"{d['mean']:+.2f}"
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Generated by `{result['command']}` on {result['date']} ({m.get('cpu', '?')}, "
             f"{m.get('cores', '?')} cores); raw results in "
             f"`{outputs(result.get('suite', 'dev'))[3]}`. Seeds "
             f"{', '.join(map(str, result['seeds']))}, paired by seed; differences are "
             f"points of the family's primary metric (sentiment: macro-F1, intents: in-scope "
             f"accuracy) against the reference, with a 95% t-interval over seeds per set "
             f"and a bootstrap interval over sets and seeds pooled. Sizes are the sampled "
             f"train / validation / test rows. Whole suite: "
             f"{result['wall_seconds'] / 60:.1f} minutes.", "",
             "| family | recipe | pooled difference [95% interval] | against the default "
             "| sets |", "|---|---|---|---|---|"]
    for family, recipes in result["pooled"].items():
        for recipe, p in recipes.items():
            vs = result.get("pooled_vs_default", {}).get(family, {}).get(recipe)
            lines.append(f"| {family} | {recipe} | {_interval(p)} | "
                         f"{_interval(vs) if vs else ''} | {p['sets']} |")
    lines += ["", "| set | sizes | recipe | primary | difference [95% interval] | against "
              "the default | other | seconds |", "|---|---|---|---|---|---|---|---|"]
    for name, block in result["sets"].items():
        metric = PRIMARY[DEV_SETS[name][0]]
        sizes = "/".join(str(block["sizes"][s]) for s in ("train", "validation", "test"))
        for recipe, runs in block["runs"].items():
            other = ", ".join(f"{k} {_ms([r[k] for r in runs])}" for k in runs[0]
                              if k not in (metric, "seconds"))
            diff = "" if recipe == "reference" else _interval(block["paired"][recipe])
            lever = block.get("paired_default", {}).get(recipe)
            lines.append(f"| {name} | {sizes} | {recipe} | {_ms([r[metric] for r in runs])} "
                         f"| {diff} | {_interval(lever) if lever else ''} | {other} | "
                         f"{statistics.fmean(r['seconds'] for r in runs):.0f} |")
    return "\n".join(lines)


def run_dev(args, recipes: list[str], seeds: list[int]) -> None:
    suite = DEV_SUITES[args.suite]
    names = args.datasets.split(",") if args.datasets else list(DEV_SETS)
    unknown = [n for n in names if n not in DEV_SETS]
    if unknown:
        raise SystemExit(f"error: unknown data set '{unknown[0]}' (known: "
                         f"{', '.join(DEV_SETS)})")
    if "reference" not in recipes:
        recipes = ["reference", *recipes]
    work = Path(args.work)
    files = prepare_dev(Path(args.data), suite, work / "data", names)
    if "intermediate" in recipes:
        for name in names:
            files[name]["intermediate"] = intermediate_file(Path(args.data), name, suite,
                                                            work / "data")
    result = {"suite": args.suite, "seeds": seeds, "recipes": recipes,
              "overrides": {r: RECIPES[r] for r in recipes if r != "reference"},
              "shipped": shipped_settings(),
              "command": "python -m bench.quality " + " ".join(sys.argv[1:]),
              "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "sets": {}}
    started = time.perf_counter()
    for name in names:
        family = DEV_SETS[name][0]
        block = {"family": family, "sizes": files[name]["sizes"], "runs": {}}
        for recipe in recipes:
            if recipe == "class_weights" and family != "sentiment":
                continue
            block["runs"][recipe] = []
            for seed in seeds:
                run = (run_reference_dev(name, files[name], seed, suite) if recipe == "reference"
                       else run_tfapp_dev(name, files[name], recipe, seed, suite, work))
                print(f"[dev] {name} {recipe} seed {seed}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in run.items()), flush=True)
                block["runs"][recipe].append(run)
        result["sets"][name] = block
        # Written after every set: a long run that is stopped keeps the sets it finished.
        publish(result, Path(args.out), started, complete=len(result["sets"]) == len(names))
    print(markdown(result))
    print(f"[dev] wrote {Path(args.out) / 'QUALITY.md'} and "
          f"{Path(args.out) / outputs(args.suite)[3]} in {result['wall_seconds']:.0f} s",
          flush=True)


def publish(result: dict, out: Path, started: float, complete: bool) -> None:
    """The paired comparison of the sets finished so far, as the suite's raw results and
    its section of QUALITY.md (marked partial until every set is done)."""
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["complete"] = complete
    render(result, out)


def render(result: dict, out: Path) -> None:
    """Writes a run's raw results and its QUALITY.md section from `result`."""
    begin, end, heading, raw = outputs(result.get("suite", "dev"))
    compare(result)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / raw, result)
    table = markdown(result)
    if not result.get("complete", True):
        table = (f"**Partial: {len(result['sets'])} set(s) finished "
                 f"({', '.join(result['sets'])}).**\n\n" + table)
    replace_section(out / "QUALITY.md", begin, end, f"{begin}\n{table}\n{end}", heading)


def merged(results: list[dict]) -> dict:
    """One result from runs of the same suite, seeds and shipped defaults over different
    sets (e.g. a long run stopped after some sets and another run for the rest)."""
    first = results[0]
    out = {**first, "sets": {}, "command": " ; ".join(r["command"] for r in results),
           "wall_seconds": round(sum(r["wall_seconds"] for r in results), 1),
           "recipes": sorted({x for r in results for x in r["recipes"]}),
           "overrides": {k: v for r in results for k, v in r.get("overrides", {}).items()}}
    for r in results:
        for key in ("suite", "seeds"):
            if r.get(key) != first.get(key):
                raise SystemExit(f"error: runs differ in {key} ({first.get(key)} vs "
                                 f"{r.get(key)}): not like for like")
        # A shipped setting only one run records is a key added later; its value is the
        # behaviour the older run had, so only settings both record must agree.
        mine, theirs = first.get("shipped", {}), r.get("shipped", {})
        differ = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        if differ:
            raise SystemExit(f"error: runs differ in shipped {differ[0]} ({mine[differ[0]]} "
                             f"vs {theirs[differ[0]]}): not like for like")
        out["shipped"] = {**theirs, **out.get("shipped", {})}
        twice = set(r["sets"]) & set(out["sets"])
        if twice:
            raise SystemExit(f"error: set {sorted(twice)[0]} is in two runs")
        out["sets"].update(r["sets"])
    out["complete"] = set(out["sets"]) == set(DEV_SETS)  # else tabled as partial
    return out


def main(argv=None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.dev_suite", description=__doc__)
    parser.add_argument("--render", required=True, nargs="+",
                        help="raw results (JSON) of one run, or of runs of the same suite "
                             "over different sets, tabled as one")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    results = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.render]
    render(results[0] if len(results) == 1 else merged(results), Path(args.out))


if __name__ == "__main__":
    main()
