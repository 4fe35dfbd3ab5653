"""bench.quality runs end to end on generated data with the tiny backbone (smoke suite) and
writes QUALITY.md and quality.json from the run. No quality asserts: numbers from the tiny
backbone mean nothing."""
import csv
import json
import random

import pytest

from conftest import KEYWORDS, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def fake_data(root, seed=0):
    rng = random.Random(seed)
    for split, n in (("train", 40), ("validation", 12)):
        write(root / "tfns" / f"{split}.csv", ["text", "label"],
              [(f"shares {rng.choice(words)} today", label)
               for label, words in KEYWORDS.items() for _ in range(n)])
    for split, n in (("train", 6), ("validation", 3), ("test", 3)):
        rows = [(f"{word} {rng.choice(['please', 'now', 'today'])}", f"intent_{word}")
                for word in ("balance", "transfer", "card") for _ in range(n)]
        rows += [(f"tell me a joke {i}", "oos") for i in range(n)]
        write(root / "clinc150" / f"{split}.csv", ["text", "intent"], rows)


def test_smoke_suite_writes_tables_from_the_run(tmp_path):
    fake_data(tmp_path / "data")
    kept = "<!-- recommend:begin -->\nthe recommend table\n<!-- recommend:end -->"
    quick = "<!-- dev_quick:begin -->\nthe quick dev table\n<!-- dev_quick:end -->"
    (tmp_path / "QUALITY.md").write_text(f"# old tables\n\n## Recommendation\n\n{kept}\n\n"
                                         f"## Development suite\n\n{quick}\n")
    result = run_cli("bench.quality", "--suite", "smoke", "--seeds", 2, "--recipes",
                     "reference,default", "--data", tmp_path / "data", "--out", tmp_path,
                     "--work", tmp_path / "work", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["seeds"] == [1, 2]
    assert set(data["datasets"]) == {"tfns", "clinc150", "clinc150_retrieval"}
    # Retrieval mode ranks the in-scope questions against a bank of the intents' names.
    assert data["datasets"]["clinc150_retrieval"]["sizes"]["bank"] == 3
    for dataset, metric in (("tfns", "macro_f1"), ("clinc150", "out_of_scope_recall"),
                            ("clinc150_retrieval", "mrr")):
        runs = data["datasets"][dataset]["runs"]
        assert set(runs) == {"reference", "default"}
        assert all(len(r) == 2 and 0 <= r[0][metric] <= 1 for r in runs.values())
        summary = data["datasets"][dataset]["summary"]["default"][metric]
        values = [r[metric] for r in runs["default"]]
        assert summary["mean"] == pytest.approx(sum(values) / 2)
    table = (tmp_path / "QUALITY.md").read_text()
    assert "| reference |" in table and "| default |" in table and "seeds 1, 2" in table
    assert "# old tables" not in table and table.count(kept) == 1  # the other benches' parts
    assert table.count(quick) == 1


def test_missing_data_folder_is_a_one_line_error(tmp_path):
    result = run_cli("bench.quality", "--data", tmp_path / "nowhere", "--out", tmp_path)
    assert result.returncode != 0
    assert "expected the folders tfns/ and clinc150/" in result.stderr
    assert not (tmp_path / "QUALITY.md").exists()


def test_recommend_bench_writes_model_and_baselines_from_the_run(tmp_path):
    rng = random.Random(0)
    genres = ["comedy", "horror", "drama"]
    write(tmp_path / "data" / "movielens" / "items.csv", ["item_id", "title", "genres", "overview"],
          [(i, f"film {i}", genres[i % 3], f"a {genres[i % 3]} story number {i}")
           for i in range(30)])
    rows = []
    for u in range(15):
        liked = [i for i in range(30) if i % 3 == u % 3]
        for t, i in enumerate(rng.sample(liked, 6)):
            rows.append((u, i, rng.choice([4.0, 5.0]), 1000 * u + t))
    write(tmp_path / "data" / "movielens" / "interactions.csv",
          ["user_id", "item_id", "rating", "timestamp"], rows)
    result = run_cli("bench.recommend_quality", "--sets", "movielens", "--seeds", 2,
                     "--variants", "finetune_listwise,config",
                     "--speed", "finetune_listwise,config",
                     "--epochs", 1, "--set", "backbone.name=tiny",
                     "--set", "recommend.eval_negatives=9", "--data-root", tmp_path / "data",
                     "--out", tmp_path, "--work", tmp_path / "work", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "quality_recommend.json").read_text())["sets"]["movielens"]
    assert [r["seed"] for r in data["variants"]["config"]] == [1, 2]
    assert data["eval_negatives"] == 9 and set(data["speed"]) == {"finetune_listwise", "config"}
    assert data["speed"]["config"]["train_examples_per_second"] > 0
    table = (tmp_path / "QUALITY.md").read_text()
    assert table.startswith("## Recommendation on a real interaction log (MovieLens)")
    for system in ("| model |", "| model (config) |", "| popularity |", "| item_knn |",
                   "| bpr_mf |", "- config: ", "× first"):
        assert system in table
    # --render joins runs over different sets, and a set's variants and speed runs from
    # different runs; the same variant twice is refused.
    raw = tmp_path / "quality_recommend.json"
    full = json.loads(raw.read_text())
    block = full["sets"]["movielens"]
    parts = {"other": {"movielens100k": block},
             "quality": {"movielens": {**block, "speed": {}}},
             "speed": {"movielens": {**block, "variants": {}}}}
    for name, sets in parts.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({**full, "sets": sets}))
    again = run_cli("bench.recommend_quality", "--render", *(tmp_path / f"{n}.json"
                                                             for n in parts),
                    "--out", tmp_path / "joined")
    assert again.returncode == 0, again.stderr[-2000:]
    joined = (tmp_path / "joined" / "QUALITY.md").read_text()
    assert "### movielens\n" in joined and "### movielens100k" in joined
    assert joined.count("× first") == 2 and joined.count("| model (config) |") == 2
    twice = run_cli("bench.recommend_quality", "--render", raw, raw, "--out", tmp_path / "x")
    assert twice.returncode != 0
    assert "set movielens: variants config is in two runs" in twice.stderr


def test_unknown_dataset_is_a_one_line_error(tmp_path):
    fake_data(tmp_path / "data")
    result = run_cli("bench.quality", "--suite", "smoke", "--datasets", "tfns,imdb",
                     "--data", tmp_path / "data", "--out", tmp_path)
    assert result.returncode != 0
    assert "unknown data set 'imdb'" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "QUALITY.md").exists()
