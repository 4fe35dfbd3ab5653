"""python -m bench.recommend_quality [--sets movielens,movielens100k] [--variants V,...]
[--seeds 3] [--data-root DIR] [--epochs N] [--speed V,... | --no-speed]
python -m bench.recommend_quality --render A.json [B.json ...]

The recommend task on real interaction logs (../shared/data/movielens: 407 users with plot
overviews; ../shared/data/movielens100k: 100,000 ratings, title + genres; see the READMEs
there; never copied into the repository), as a new user runs it: `python -m tfapp.train
--task recommend --config configs/recommend_<set>.yaml` with the data paths, once per
variant and seed. Each run's test report holds the fine-tuned model and, computed in the
same run on the same users and sampled negatives, the popularity, zero-shot text,
item-kNN and BPR matrix-factorisation baselines, on all test items and on cold ones.

Variants (config overrides, VARIANTS): `config` (the shipped config: in-batch negatives,
frozen text encoder, hybrid id vectors), `text_only` (no id vectors), `no_id_dropout`, and
the fine-tuned text-only recipe shipped before (`finetune_listwise`; `finetune_in_batch`,
`finetune_in_batch_cache` with in-batch negatives, and the history cache). Speed: one-epoch
runs over one target per user, back to back, same data and seed, of each `--speed`
variant give training examples/s and the epoch's seconds, and the ratio to the first.

Writes the recommendation section of bench/QUALITY.md (per set: mean ± standard deviation
over seeds, the model against the best collaborative baseline paired by seed, cold
items, wall time, speed; the rest of the file is bench.quality's) and the raw results as
bench/quality_recommend.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

from bench.machine import describe as machine
from bench.machine import label
from bench.paired_stats import paired
from bench.quality import RECOMMEND_BEGIN as BEGIN
from bench.quality import RECOMMEND_END as END
from bench.quality import RECOMMEND_HEADING as HEADING
from bench.quality_io import train_cli
from bench.results_file import replace_section, write_json

REPO = Path(__file__).resolve().parents[1]
SETS = {"movielens": REPO / "configs" / "recommend_movielens.yaml",
        "movielens100k": REPO / "configs" / "recommend_movielens100k.yaml"}
# The fine-tuned text-only recipe the MovieLens config shipped before the hybrid one.
FINETUNE = ["recommend.text_encoder=finetune", "recommend.item_id_embedding=false",
            "optimizer.learning_rate=5e-5", "optimizer.head_lr_multiplier=1.0",
            "trainer.epochs=2", "trainer.early_stopping_patience=1",
            "recommend.train_targets_per_user=4"]
VARIANTS = {"config": [], "text_only": ["recommend.item_id_embedding=false"],
            "no_id_dropout": ["recommend.id_dropout=0"],
            "finetune_listwise": [*FINETUNE, "recommend.loss=listwise"],
            "finetune_in_batch": [*FINETUNE, "recommend.loss=in_batch"],
            "finetune_in_batch_cache": [*FINETUNE, "recommend.loss=in_batch",
                                        "recommend.history_cache=true"]}
# Speed runs: one epoch over one target per user, the same for every variant.
SPEED_SETS = ["trainer.epochs=1", "recommend.train_targets_per_user=1", "seed=1"]
SYSTEMS = ("model", "popularity", "zero_shot_text", "item_knn", "bpr_mf")
COLLABORATIVE = ("item_knn", "bpr_mf")
COLUMNS = ("hr@10", "ndcg@10", "mrr", "auc", "catalogue/recall@10", "catalogue/recall@50",
           "cold hr@10")


def run_train(config: Path, data: Path, run_dir: Path, sets: list[str]) -> dict:
    metrics, seconds = train_cli(
        ["--task", "recommend", "--config", str(config)],
        [f"data.train_file={data / 'interactions.csv'}",
         f"recommend.items_file={data / 'items.csv'}", "export.enabled=false", *sets],
        run_dir, str(run_dir))
    metrics["command_seconds"] = seconds
    return metrics


def row(test: dict, system: str) -> dict:
    r = test if system == "model" else test["baselines"][system]
    cold = test["cold_items"][system].get("hr@10")
    return {"hr@10": r["hr@10"], "ndcg@10": r["ndcg@10"], "mrr": r["mrr"], "auc": r["auc"],
            "catalogue/recall@10": r["catalogue"]["recall@10"],
            "catalogue/recall@50": r["catalogue"]["recall@50"], "cold hr@10": cold}


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(values) -> str:
    m, s = mean_std(values)
    return "n/a" if m is None else f"{m:.4f} ± {s:.4f}"


def set_markdown(name: str, block: dict) -> list[str]:
    if not block["variants"]:
        return [f"### {name}", "", *speed_markdown(block.get("speed"))]
    first = next(iter(block["variants"].values()))
    test0 = first[0]["test"]
    lines = [f"### {name}", "",
             f"Config `configs/{Path(block['config']).name}`; leave-last-out test users "
             f"({test0['impressions']} held-out positives, each against "
             f"{block['eval_negatives']} sampled never-interacted items; whole catalogue "
             f"{block['catalogue']} items; {test0['cold_items']['model']['impressions']} cold "
             f"test items, no training interaction). Baselines from the `"
             f"{next(iter(block['variants']))}` runs.", "",
             "| system | " + " | ".join(COLUMNS) + " | seconds |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    seconds = lambda runs: f"{statistics.fmean(r['command_seconds'] for r in runs):.0f}"  # noqa: E731
    for system in SYSTEMS:
        cells = [_cell([row(r["test"], system)[c] for r in first]) for c in COLUMNS]
        lines.append(f"| {system} | " + " | ".join(cells)
                     + f" | {seconds(first) if system == 'model' else ''} |")
        if system != "model":
            continue
        for variant, runs in list(block["variants"].items())[1:]:
            cells = [_cell([row(r["test"], "model")[c] for r in runs]) for c in COLUMNS]
            lines.append(f"| model ({variant}) | " + " | ".join(cells) + f" | {seconds(runs)} |")
    lines += ["", "nDCG@10 of each variant's model against the best collaborative baseline "
                  "of the same run (paired by seed; points, 95% t-interval) and as a ratio:",
              ""]
    for variant, runs in block["variants"].items():
        ours = [100 * r["test"]["ndcg@10"] for r in runs]
        best = [100 * max(r["test"]["baselines"][b]["ndcg@10"] for b in COLLABORATIVE)
                for r in runs]
        d = paired(ours, best)
        interval = (f"[{d['low']:+.2f}, {d['high']:+.2f}]" if len(runs) > 1 else "")
        lines.append(f"- {variant}: {statistics.fmean(ours) / 100:.4f} vs "
                     f"{statistics.fmean(best) / 100:.4f} = "
                     f"{statistics.fmean(ours) / statistics.fmean(best):.2f}×, "
                     f"{d['mean']:+.2f} {interval}")
    return lines + speed_markdown(block.get("speed"))


def speed_markdown(speed: dict | None) -> list[str]:
    lines = []
    if speed:
        base = next(iter(speed.values()))["train_examples_per_second"]
        lines += ["", "Training speed (one-epoch runs back to back, same data and seed; "
                      "examples/s of the training steps, and of the whole epoch with its "
                      "validation; the whole command with evaluation and baselines):", "",
                  "| variant | train examples/s | × first | epoch examples/s | epoch s | "
                  "command s |", "|---|---|---|---|---|---|"]
        for variant, s in speed.items():
            lines.append(f"| {variant} | {s['train_examples_per_second']:.1f} | "
                         f"{s['train_examples_per_second'] / base:.1f}× | "
                         f"{s['examples_per_second']:.1f} | {s['epoch_seconds']:.0f} | "
                         f"{s['command_seconds']:.0f} |")
    return lines


def markdown(result: dict) -> str:
    lines = [f"Generated by `{result['command']}` on {result['date']} "
             f"({label(result['machine'])}); raw results in `bench/quality_recommend.json`. "
             f"Mean ± standard deviation over seeds {', '.join(map(str, result['seeds']))}; "
             f"the baselines are computed inside each run on the same users and negatives "
             f"(item_knn: cosine item-kNN on the training interactions; bpr_mf: BPR matrix "
             f"factorisation, an id-only two-tower in Keras).", ""]
    for name, block in result["sets"].items():
        lines += set_markdown(name, block) + [""]
    return "\n".join(lines)


def _names(value: str, known: dict, what: str) -> list[str]:
    names = value.split(",")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown {what} '{unknown[0]}' (known: {', '.join(known)})")
    return names


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recommend_quality",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--variants", default="config")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"),
                        help="folder holding each set's folder (interactions.csv, items.csv)")
    parser.add_argument("--epochs", type=int, help="override the configs' trainer.epochs")
    parser.add_argument("--speed", default="finetune_listwise,finetune_in_batch,"
                        "finetune_in_batch_cache,config",
                        help="variants timed in one-epoch runs")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed runs")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides")
    parser.add_argument("--out", default=str(REPO / "bench"))
    parser.add_argument("--work", default=str(REPO / "bench" / "results" / "recommend"))
    parser.add_argument("--render", nargs="+", metavar="RESULTS.json",
                        help="write the section again from raw results (several: runs over "
                             "different sets, as one section) and exit")
    args = parser.parse_args(argv)
    if args.render:
        return render([json.loads(Path(f).read_text(encoding="utf-8")) for f in args.render],
                      Path(args.out))
    names = _names(args.sets, SETS, "set")
    variants = _names(args.variants, VARIANTS, "variant") if args.variants else []
    speed = [] if args.no_speed else _names(args.speed, VARIANTS, "variant")
    root, work = Path(args.data_root), Path(args.work)
    for name in names:
        if not all((root / name / f).is_file() for f in ("interactions.csv", "items.csv")):
            raise SystemExit(f"error: {root / name}: expected interactions.csv and items.csv")
    if args.seeds < 1:
        raise SystemExit("error: --seeds must be >= 1")
    sets = list(args.set) + ([f"trainer.epochs={args.epochs}"] if args.epochs else [])
    seeds = list(range(1, args.seeds + 1))
    result = {"command": "python -m bench.recommend_quality " + " ".join(argv or sys.argv[1:]),
              "date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "seeds": seeds, "overrides": sets, "sets": {}}
    for name in names:
        data, config = root / name, SETS[name]
        block = {"config": str(config), "variants": {}}
        for variant in variants:
            runs = block["variants"][variant] = []
            for seed in seeds:
                metrics = run_train(config, data, work / name / variant / f"seed{seed}",
                                    sets + VARIANTS[variant] + [f"seed={seed}"])
                runs.append({"seed": seed, "test": metrics["test"],
                             "validation": metrics["validation"],
                             "history": metrics["history"],
                             "command_seconds": metrics["command_seconds"]})
                print(f"[recommend] {name} {variant} seed {seed}: " + "  ".join(
                    f"{s} nDCG@10 {row(metrics['test'], s)['ndcg@10']:.4f}" for s in SYSTEMS)
                    + f"  ({metrics['command_seconds']:.0f} s)", flush=True)
        block["catalogue"] = sum(1 for _ in open(data / "items.csv", encoding="utf-8")) - 1
        if variants:
            test = block["variants"][variants[0]][0]["test"]
            block["eval_negatives"] = test["candidates"] // test["impressions"] - 1
        if speed:
            block["speed"] = {}
            for variant in speed:  # back to back, one epoch each, same data and seed
                metrics = run_train(config, data, work / name / f"speed-{variant}",
                                    sets + VARIANTS[variant] + SPEED_SETS)
                history = metrics["history"]
                block["speed"][variant] = {
                    "train_examples_per_second": history["train_examples_per_second"][0],
                    "examples_per_second": history["examples_per_second"][0],
                    "epoch_seconds": metrics["train_examples"]
                    / history["examples_per_second"][0],
                    "command_seconds": metrics["command_seconds"]}
        result["sets"][name] = block
    render([result], Path(args.out))


def render(results: list[dict], out: Path) -> None:
    """Writes quality_recommend.json and the QUALITY.md section from one run's results, or
    from runs over different sets (joined, their commands listed)."""
    result = {**results[0], "sets": {}, "command": " ; ".join(r["command"] for r in results)}
    for r in results:
        for name, block in r["sets"].items():
            if name not in result["sets"]:
                result["sets"][name] = {**block, "variants": dict(block["variants"]),
                                        "speed": dict(block.get("speed", {}))}
                continue
            # The same set from two runs: their variants and speed runs join, none twice.
            joined = result["sets"][name]
            for part in ("variants", "speed"):
                twice = set(block.get(part, {})) & set(joined[part])
                if twice:
                    raise SystemExit(f"error: set {name}: {part} {sorted(twice)[0]} is in "
                                     f"two runs")
                joined[part].update(block.get(part, {}))
            for key in ("eval_negatives", "catalogue"):
                joined.setdefault(key, block.get(key))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quality_recommend.json", result)
    table = markdown(result)
    replace_section(out / "QUALITY.md", BEGIN, END, f"{BEGIN}\n{table}{END}", HEADING)
    print(table)


if __name__ == "__main__":
    main()
