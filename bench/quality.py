"""python -m bench.quality [--suite quick|levers|full] [--seeds N] [--first-seed K] [--data DIR]
                         [--recipes A,B,...] [--datasets A,B,...]

Model quality on real text, like for like: for each data set the reference recipe (a plain
keras-hub fine-tune, bench/quality_reference.py), tfapp's default recipe and recipes with
one lever switched on are trained on the same training split and budget, with the same
seeds, and scored on the same held-out set. Writes bench/QUALITY.md (mean ± standard
deviation over the seeds, training seconds) and the raw results as bench/quality.json.

Data sets (from ../shared/data, see its README; never copied into the repository):
  tfns      financial tweets, negative / neutral / positive: trained on (a stratified
            sample of) train.csv, scored on validation.csv (accuracy, macro-F1)
  clinc150  150 intents + out-of-scope ('oos'), intent mode with qa.out_of_scope_label:
            trained on (a per-intent sample of) train.csv, calibrated on validation.csv,
            scored on test.csv (in-scope accuracy, out-of-scope recall, in-scope coverage)
  tfns_4k   speed: the default recipe on a 4,000-sentence sample of TFNS train, seconds
            to its best validation epoch (full suite, or --datasets tfns_4k)
  clinc150_retrieval  the in-scope questions in retrieval mode (dual encoder) against a
            bank of the 150 intent names: recall@1 and MRR (the reference ranks the same
            intents by its classifier's logits: the intent-mode reference of the same seed
            when clinc150 ran first, its seconds repeated)

Suites: `quick` (reference and default recipes on small samples: 240 TFNS sentences;
CLINC150 restricted to 50 of its intents, 6 questions each plus 30 out-of-scope; 12
minutes for 3 seeds on 2 CPU cores); `levers` (the same samples, every lever); `full`
trains on everything; `smoke` (tiny backbone, a few rows) only proves the harness runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.dev_suite import DEV_SUITES, run_dev
from bench.dev_suite import outputs as dev_outputs
from bench.quality_io import machine, read_csv, sample_by, train_recipe, write_csv
from bench.quality_recipes import DATASETS, RECIPES, SPEED_ROWS, SUITES, Suite, shipped_settings
from bench.quality_report import markdown
from bench.results_file import section, write_json, write_text

REPO = Path(__file__).resolve().parents[1]
# QUALITY.md's recommendation section, written by bench.recommend_quality.
RECOMMEND_BEGIN, RECOMMEND_END = "<!-- recommend:begin -->", "<!-- recommend:end -->"
RECOMMEND_HEADING = "## Recommendation on a real interaction log (MovieLens)"
DEFAULT_DATA = REPO.parent / "shared" / "data"


def prepare(data: Path, suite: Suite, work: Path) -> dict:
    """Writes each data set's sampled files under `work`; returns their paths and sizes."""
    tfns_train = sample_by(read_csv(data / "tfns" / "train.csv"), "label", None,
                           suite.tfns_train)
    tfns_4k = sample_by(read_csv(data / "tfns" / "train.csv"), "label", None, SPEED_ROWS)
    tfns_test = write_csv(work / "tfns_test.csv", sample_by(
        read_csv(data / "tfns" / "validation.csv"), "label", None, suite.test_rows))
    tfns_test_rows = len(read_csv(tfns_test))
    clinc = {split: read_csv(data / "clinc150" / f"{split}.csv")
             for split in ("train", "validation", "test")}
    if suite.clinc_intents is not None:
        # A seeded subset of the intents (plus oos) in every split: enough questions per
        # intent to learn from in a quick run, instead of 150 intents seen twice each.
        names = sorted({r["intent"] for r in clinc["train"]} - {"oos"})
        kept = set(random.Random(0).sample(names, min(suite.clinc_intents, len(names))))
        clinc = {split: [r for r in rows if r["intent"] in kept or r["intent"] == "oos"]
                 for split, rows in clinc.items()}
    # More out-of-scope training questions than per intent: the hand-off is learnt from them.
    clinc_train = sample_by(clinc["train"], "intent", suite.clinc_per_intent, None,
                            keep_all=("oos",))
    if suite.clinc_oos_train is not None:
        oos = [r for r in clinc_train if r["intent"] == "oos"]
        dropped = {id(r) for r in oos[suite.clinc_oos_train:]}
        clinc_train = [r for r in clinc_train if id(r) not in dropped]
    clinc_val = sample_by(clinc["validation"], "intent", None, suite.validation_rows)
    clinc_test = sample_by(clinc["test"], "intent", None, suite.test_rows)
    # Retrieval mode ranks the 150 intents' names (e.g. "credit limit change") for each
    # in-scope question: recall@1 and MRR over that bank.
    in_scope = lambda rows: [r for r in rows if r["intent"] != "oos"]  # noqa: E731
    intents = sorted({r["intent"] for r in in_scope(clinc_train)})
    answers = [{"answer_id": i, "answer": i.replace("_", " ")} for i in intents]
    return {
        "clinc150_retrieval": {
            "train": write_csv(work / "clinc_retrieval_train.csv", in_scope(clinc_train)),
            "validation": write_csv(work / "clinc_retrieval_validation.csv", in_scope(clinc_val)),
            "test": write_csv(work / "clinc_retrieval_test.csv", in_scope(clinc_test)),
            "answers": write_csv(work / "clinc_retrieval_answers.csv", answers),
            "sizes": {"train": len(in_scope(clinc_train)),
                      "validation": len(in_scope(clinc_val)),
                      "test": len(in_scope(clinc_test)), "bank": len(answers)}},
        # Speed on a ~4,000-sentence set: the default recipe's time to its best epoch.
        "tfns_4k": {"train": write_csv(work / "tfns_4k_train.csv", tfns_4k),
                    "test": tfns_test, "sizes": {"train": len(tfns_4k), "test": tfns_test_rows}},
        "tfns": {"train": write_csv(work / "tfns_train.csv", tfns_train),
                 "test": tfns_test, "sizes": {"train": len(tfns_train), "test": tfns_test_rows}},
        "clinc150": {"train": write_csv(work / "clinc_train.csv", clinc_train),
                     "validation": write_csv(work / "clinc_validation.csv", clinc_val),
                     "test": write_csv(work / "clinc_test.csv", clinc_test),
                     "sizes": {"train": len(clinc_train), "validation": len(clinc_val),
                               "test": len(clinc_test)}},
    }


def tfapp_overrides(dataset: str, files: dict) -> tuple[str, list[str]]:
    """(task, --set overrides) that point tfapp at a data set's files."""
    if dataset in ("tfns", "tfns_4k"):
        return "sentiment", [f"data.train_file={files['train']}",
                             f"data.test_file={files['test']}", "data.split=[0.9,0.1,0.0]",
                             "sentiment.topic_column=null"]
    common = [f"data.train_file={files['train']}", f"data.validation_file={files['validation']}",
              f"data.test_file={files['test']}", "qa.question_column=text",
              "qa.answer_id_column=intent"]
    if dataset == "clinc150_retrieval":
        return "qa", common + ["qa.mode=retrieval", f"qa.answers_file={files['answers']}",
                               "qa.answers_id_column=answer_id",
                               "qa.answers_text_column=answer"]
    return "qa", common + ["qa.mode=intent", "qa.out_of_scope_label=oos"]


def headline(dataset: str, test: dict) -> dict:
    if dataset in ("tfns", "tfns_4k"):
        report = test["sentiment"]
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    if dataset == "clinc150_retrieval":
        return {"recall@1": test["ranking"]["recall@1"], "mrr": test["ranking"]["mrr"]}
    o = test["out_of_scope"]
    return {"in_scope_accuracy": o["in_scope_accuracy"],
            "in_scope_accuracy_answered": o["in_scope_accuracy_answered"],
            "out_of_scope_recall": o["out_of_scope_recall"],
            "in_scope_coverage": o["in_scope_coverage"]}


def run_tfapp(dataset: str, files: dict, recipe: str, seed: int, suite: Suite,
              work: Path) -> dict:
    task, sets = tfapp_overrides(dataset, files)
    metrics, seconds = train_recipe(task, sets, RECIPES[recipe], seed, suite.backbone,
                                    suite.epochs,
                                    work / "runs" / dataset / recipe / f"seed{seed}",
                                    f"{dataset}/{recipe}/seed {seed}")
    history = metrics["history"]
    epochs = len(next(iter(history.values())))
    out = {**headline(dataset, metrics["test"]), "seconds": seconds, "epochs_run": epochs}
    if dataset == "tfns_4k":
        out.update(seconds_to_best_epoch(history, metrics["train_examples"],
                                         metrics.get("weight_soup")))
    return out


def seconds_to_best_epoch(history: dict, train_examples: int, soup: dict | None = None) -> dict:
    """The best validation epoch (macro-F1, the sentiment task's early-stopping metric;
    the first on ties, as EarlyStopping keeps it) and the training seconds up to its end,
    validation included (each epoch's examples / its examples per second). With a weight
    soup the kept model needs every epoch it averages: the seconds run to the last of
    them, plus the soup's own validation passes."""
    scores = history["val_macro_f1"]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    epoch_seconds = [train_examples / rate for rate in history["examples_per_second"]]
    if soup:
        last = max(soup["epochs"])
        return {"best_epoch": last,
                "seconds_to_best": round(sum(epoch_seconds[:last]) + soup["seconds"], 1)}
    return {"best_epoch": best + 1, "seconds_to_best": round(sum(epoch_seconds[:best + 1]), 1)}


def run_reference(dataset: str, files: dict, seed: int, suite: Suite,
                  trained: dict | None = None) -> dict:
    """The reference recipe on one data set and seed. `trained` carries the intent-mode
    classifier of the same seed (CLINC150 with its out-of-scope class): retrieval mode then
    ranks its in-scope intents by that classifier's logits instead of training again."""
    from bench.quality_reference import EPOCHS, fine_tune
    from tfapp.core.metrics import classification_report

    label_key = "label" if dataset == "tfns" else "intent"
    train, test = read_csv(files["train"]), read_csv(files["test"])
    labels = sorted({r[label_key] for r in train})
    index = {label: i for i, label in enumerate(labels)}
    y_test = np.array([index[r[label_key]] for r in test])
    if dataset == "clinc150_retrieval" and trained is not None:
        # Same test questions (the in-scope ones), same intents, minus the oos column.
        rows = {(r["text"], r["intent"]): i for i, r in enumerate(trained["test"])}
        columns = [trained["labels"].index(label) for label in labels]
        logits = trained["logits"][[rows[(r["text"], r["intent"])] for r in test]][:, columns]
        seconds = trained["seconds"]
    else:
        y_train = np.array([index[r[label_key]] for r in train])
        logits, seconds = fine_tune(suite.backbone, [r["text"] for r in train], y_train,
                                    [r["text"] for r in test], len(labels), seed,
                                    epochs=suite.epochs or EPOCHS)
    predicted = logits.argmax(axis=1)
    out = {"seconds": round(seconds, 1), "epochs_run": suite.epochs or EPOCHS}
    if dataset == "clinc150_retrieval":
        # The plain classifier ranks the same intents by its logits.
        from tasks.qa.ranking import ranking_metrics

        ranking = ranking_metrics(logits, y_test, (1,))
        return {"recall@1": ranking["recall@1"], "mrr": ranking["mrr"], **out}
    if trained is not None:  # kept for retrieval mode
        trained.update(logits=logits, labels=labels, test=test, seconds=seconds)
    if dataset == "tfns":
        report = classification_report(y_test, predicted, labels)
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], **out}
    oos = index["oos"]
    in_scope = y_test != oos
    # The plain model has no threshold: out of scope only when it predicts the oos class.
    right = (predicted == y_test)[in_scope]
    return {"in_scope_accuracy": float(right.mean()),
            "in_scope_accuracy_answered": float(right.mean()),  # it answers all it gets right
            "out_of_scope_recall": float((predicted == oos)[~in_scope].mean()),
            "in_scope_coverage": float((predicted != oos)[in_scope].mean()), **out}


def summarise(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    out = {}
    for k in keys:
        values = [r[k] for r in runs]
        out[k] = {"mean": statistics.fmean(values),
                  "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted([*SUITES, *DEV_SUITES]), default="quick",
                        help="dev, dev_quick, dev_smoke: the development suite over every "
                             "sentiment and intent set (bench/dev_suite.py)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=1, help="seeds FIRST..FIRST+N-1, "
                        "so seeds can run side by side and join with bench.quality_merge")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with tfns/ and "
                        "clinc150/ (default: ../shared/data)")
    parser.add_argument("--recipes", help="comma-separated subset of the suite's recipes")
    parser.add_argument("--datasets", help="comma-separated subset of tfns, clinc150, "
                        "clinc150_retrieval, tfns_4k (default: the suite's)")
    parser.add_argument("--out", default=str(REPO / "bench"),
                        help="where QUALITY.md and quality.json go (default: bench/)")
    parser.add_argument("--work", default=str(REPO / "bench" / "results" / "quality"),
                        help="sampled data and run directories")
    args = parser.parse_args(argv)
    if args.suite in DEV_SUITES:
        recipes = args.recipes.split(",") if args.recipes else ["reference", "default"]
        unknown = [r for r in recipes if r != "reference" and r not in RECIPES]
        if unknown or args.seeds < 1 or args.first_seed < 1:
            raise SystemExit(f"error: unknown recipe '{unknown[0]}'" if unknown
                             else "error: --seeds and --first-seed must be >= 1")
        return run_dev(args, recipes, list(range(args.first_seed,
                                                 args.first_seed + args.seeds)))
    suite = SUITES[args.suite]
    datasets = args.datasets.split(",") if args.datasets else list(suite.datasets)
    unknown_sets = [d for d in datasets if d not in DATASETS]
    if unknown_sets:
        raise SystemExit(f"error: unknown data set '{unknown_sets[0]}' (known: "
                         f"{', '.join(DATASETS)})")
    recipes = args.recipes.split(",") if args.recipes else list(suite.recipes)
    unknown = [r for r in recipes if r != "reference" and r not in RECIPES]
    if unknown or args.seeds < 1 or args.first_seed < 1:
        raise SystemExit(f"error: unknown recipe '{unknown[0]}'" if unknown
                         else "error: --seeds and --first-seed must be >= 1")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    data = Path(args.data)
    if not (data / "tfns").is_dir() or not (data / "clinc150").is_dir():
        raise SystemExit(f"error: {data}: expected the folders tfns/ and clinc150/")
    work = Path(args.work)
    files = prepare(data, suite, work / "data")
    result = {"suite": args.suite, "seeds": seeds, "recipes": recipes,
              "overrides": {r: RECIPES[r] for r in recipes if r != "reference"},
              "shipped": shipped_settings(),
              "command": "python -m bench.quality " + " ".join(argv or sys.argv[1:]),
              "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "datasets": {}}
    started = time.perf_counter()
    intent_reference = {}  # seed -> CLINC150's reference classifier, reused by retrieval
    for dataset in datasets:
        if dataset == "tfns_4k":  # a speed check of the default recipe only
            names = ["default"]
        elif dataset.startswith("clinc150") and "class_weights" in recipes:
            names = [r for r in recipes if r != "class_weights"]
        else:
            names = recipes
        block = {"sizes": files[dataset]["sizes"], "runs": {}, "summary": {}}
        for recipe in names:
            runs = []
            for seed in seeds:
                run = (run_reference(dataset, files[dataset], seed, suite,
                                     intent_reference.setdefault(seed, {})
                                     if dataset == "clinc150" else intent_reference.get(seed))
                       if recipe == "reference"
                       else run_tfapp(dataset, files[dataset], recipe, seed, suite, work))
                print(f"[quality] {dataset} {recipe} seed {seed}: "
                      + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in run.items()), flush=True)
                runs.append(run)
            block["runs"][recipe] = runs
            block["summary"][recipe] = summarise(runs)
        result["datasets"][dataset] = block
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quality.json", result)
    # The recommendation section (bench.recommend_quality) is another run's: kept as it is.
    kept = section(out / "QUALITY.md", RECOMMEND_BEGIN, RECOMMEND_END)
    dev = ""  # bench.dev_suite's sections, one per suite, kept too
    for suite in DEV_SUITES:
        begin, end, heading, _ = dev_outputs(suite)
        text = section(out / "QUALITY.md", begin, end)
        dev += f"\n{heading}\n\n{text}\n" if text else ""
    write_text(out / "QUALITY.md", markdown(result) + (
        f"\n{RECOMMEND_HEADING}\n\n{kept}\n" if kept else "") + dev)
    print(markdown(result))
    print(f"[quality] wrote {out / 'QUALITY.md'} and {out / 'quality.json'} "
          f"in {result['wall_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
