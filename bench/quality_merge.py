"""python -m bench.quality_merge RESULT.json [RESULT.json ...] --out DIR

One QUALITY.md from several `bench.quality` runs of the same suite, seeds and data (e.g.
one lever per run, run side by side or on different days): their recipes' runs are put
together per data set, summarised and tabled exactly as one run would be, with each
source run's command, date and wall time listed. `--seeds 1` keeps seed 1 of each run
(e.g. a one-seed screen beside a three-seed run); a recipe's seeds may come from several
runs (`bench.quality --seeds 1 --first-seed 2` beside `--seeds 1`). Runs whose suites or
data-set sizes differ, that lack a kept seed, or that recorded different shipped values of
the keys the recipes set (their recipes would be relative to another default), are
refused: their numbers would not be like for like."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from bench.quality_report import markdown
from bench.results_file import write_json, write_text


class MergeError(ValueError):
    pass


def _load(path: Path) -> dict:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MergeError(f"{path}: not a readable bench.quality result ({e})") from None
    missing = [k for k in ("suite", "seeds", "recipes", "datasets", "command", "date")
               if k not in result]
    if missing:
        raise MergeError(f"{path}: not a bench.quality result (no '{missing[0]}' field)")
    return result


def shipped_change(a: dict | None, b: dict | None) -> tuple | None:
    """The first key whose shipped value differs between two runs, as (key, a's, b's);
    None when they agree or either run predates the record."""
    if a is None or b is None:
        return None
    for key in sorted(set(a) & set(b)):
        if a[key] != b[key]:
            return key, a[key], b[key]
    return None


def merge(results: list[dict], names: list[str], command: str,
          seeds: list[int] | None = None, recipes: list[str] | None = None) -> dict:
    """The runs of `results` (bench.quality JSON dicts, read from `names`) as one result,
    over `seeds` (default: the first result's). Each recipe's seeds may come from several
    runs (e.g. seed 1 in one, seeds 2 and 3 in another); every recipe must have every kept
    seed. A seed of a recipe measured twice on a data set keeps the first measurement."""
    from bench.quality import summarise

    first = results[0]
    seeds = list(seeds or first["seeds"])
    merged = {"suite": first["suite"], "seeds": seeds, "recipes": [],
              "overrides": {}, "command": command,
              "date": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": first.get("machine", {}), "datasets": {}, "wall_seconds": 0.0,
              "sources": []}
    by_seed, origin = {}, {}  # (data set, recipe) -> {seed: run}, -> (first file, its seeds)
    shipped = (None, None)  # the first run that recorded its shipped values
    for result, name in zip(results, names):
        if result["suite"] != first["suite"]:
            raise MergeError(f"{name}: suite {result['suite']} differs from {names[0]}'s "
                             f"{first['suite']}")
        changed = shipped_change(shipped[1], result.get("shipped"))
        if changed:
            key, was, now = changed
            raise MergeError(f"{name}: shipped {key} is {now}, {shipped[0]}'s is {was}: its "
                             f"recipes are relative to another default")
        if shipped[1] is None and "shipped" in result:
            shipped = (name, result["shipped"])
            merged["shipped"] = result["shipped"]
        merged["sources"].append({"file": name, "command": result["command"],
                                  "date": result["date"],
                                  "wall_seconds": result.get("wall_seconds", 0.0)})
        merged["wall_seconds"] += result.get("wall_seconds", 0.0)
        kept = [r for r in result["recipes"] if recipes is None or r in recipes]
        for recipe in kept:
            if recipe not in merged["recipes"]:
                merged["recipes"].append(recipe)
        for recipe, sets in result.get("overrides", {}).items():
            if recipe in kept:
                merged["overrides"].setdefault(recipe, sets)
        for dataset, block in result["datasets"].items():
            into = merged["datasets"].setdefault(
                dataset, {"sizes": block["sizes"], "runs": {}, "summary": {}})
            if block["sizes"] != into["sizes"]:
                raise MergeError(f"{name}: {dataset} sizes {block['sizes']} differ from "
                                 f"{into['sizes']}")
            for recipe, runs in block["runs"].items():
                if recipe not in kept:
                    continue
                by_seed.setdefault((dataset, recipe), {})
                origin.setdefault((dataset, recipe), (name, result["seeds"]))
                for seed, one in zip(result["seeds"], runs):
                    if seed in seeds:
                        by_seed[(dataset, recipe)].setdefault(seed, one)
    for (dataset, recipe), runs in by_seed.items():
        absent = [s for s in seeds if s not in runs]
        if absent:
            name, ran = origin[(dataset, recipe)]
            raise MergeError(f"{name}: seed {absent[0]} was not run (seeds {ran}) and no "
                             f"other run has it for {recipe} on {dataset}; merge with "
                             f"--seeds {','.join(map(str, sorted(runs) or ran))}")
        merged["datasets"][dataset]["runs"][recipe] = [runs[s] for s in seeds]
    # Reference and default first, the levers after, as a single run orders them.
    order = sorted(merged["recipes"], key=lambda r: (r != "reference", r != "default"))
    merged["recipes"] = order
    merged["overrides"] = {r: merged["overrides"][r] for r in order if r in merged["overrides"]}
    for block in merged["datasets"].values():
        block["runs"] = {r: block["runs"][r] for r in order if r in block["runs"]}
        block["summary"] = {r: summarise(runs) for r, runs in block["runs"].items()}
    return merged


def sources_text(merged: dict) -> str:
    lines = ["## Source runs", "", "Merged by `" + merged["command"] + "` from:", ""]
    lines += [f"- `{s['file']}`: `{s['command']}` on {s['date']}, "
              f"{s['wall_seconds'] / 60:.1f} minutes" for s in merged["sources"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality_merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="quality.json files of bench.quality runs")
    parser.add_argument("--out", required=True, help="where QUALITY.md and quality.json go")
    parser.add_argument("--seeds", help="comma-separated seeds to keep of each run "
                        "(default: the first run's)")
    parser.add_argument("--recipes", help="comma-separated recipes to keep (default: all)")
    args = parser.parse_args(argv)
    names = list(args.results)
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise SystemExit(f"error: --seeds: expected comma-separated integers, got "
                         f"'{args.seeds}'") from None
    try:
        merged = merge([_load(Path(n)) for n in names], names,
                       "python -m bench.quality_merge " + " ".join(argv or sys.argv[1:]),
                       seeds, args.recipes.split(",") if args.recipes else None)
    except MergeError as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quality.json", merged)
    write_text(out / "QUALITY.md", markdown(merged) + "\n" + sources_text(merged))
    print(f"[quality_merge] wrote {out / 'QUALITY.md'} and {out / 'quality.json'} from "
          f"{len(names)} runs", flush=True)


if __name__ == "__main__":
    main()
