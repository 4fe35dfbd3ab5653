"""bench.quality's development suite: paired differences with t-intervals per set, pooled
per family with a bootstrap over sets and seeds, and the harness end to end on generated
stand-ins for the real sets (tiny backbone; no quality asserts)."""
import json
import math
import random

import pytest

from conftest import REPO, run_cli, write_csv


def test_paired_difference_and_its_t_interval():
    from bench.paired_stats import paired

    d = paired([80.0, 82.0, 84.0], [79.0, 80.0, 81.0])
    assert d["diffs"] == [1.0, 2.0, 3.0] and d["mean"] == pytest.approx(2.0)
    # t(0.975, 2) = 4.303: half width 4.303 * 1 / sqrt(3)
    assert d["high"] - d["mean"] == pytest.approx(4.3027 / math.sqrt(3), rel=1e-3)
    assert math.isnan(paired([1.0], [0.5])["low"])
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0])


def test_pooled_mean_of_set_means_with_a_bootstrap_interval():
    from bench.paired_stats import pooled

    p = pooled([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]], resamples=2000)
    assert p["mean"] == pytest.approx(2.0) and p["sets"] == 2
    assert 1.0 <= p["low"] <= 2.0 <= p["high"] <= 3.0
    same = pooled([[2.0, 2.0], [2.0, 2.0]], resamples=200)
    assert same["low"] == same["high"] == pytest.approx(2.0)


def fake_data(root):
    """Generated keyword-labelled stand-ins with the real sets' folders and columns."""
    from bench.dev_suite import DEV_SETS

    rng = random.Random(0)
    words = {"negative": "fell", "neutral": "held", "positive": "rose",
             "book": "flight", "cancel": "refund", "weather": "rain"}
    for name, (family, folder, label, oos) in DEV_SETS.items():
        classes = (["negative", "neutral", "positive"] if family == "sentiment"
                   else ["book", "cancel", "weather"])
        splits = ("train", "validation") if folder == "tfns" else ("train", "validation",
                                                                    "test")
        for split in splits:
            rows = [{"text": f"{rng.choice(['we', 'it', 'they'])} {words[c]} {i}", label: c}
                    for c in classes for i in range(20 if split == "train" else 6)]
            if oos and split != "train":
                rows += [{"text": f"hello there {i}", label: oos} for i in range(4)]
            (root / folder).mkdir(parents=True, exist_ok=True)
            write_csv(root / folder / f"{split}.csv", rows)
    return root


@pytest.mark.integration  # 8 tiny training runs (~2 minutes)
def test_dev_suite_end_to_end_on_generated_sets(tmp_path):
    data = fake_data(tmp_path / "data")
    out = tmp_path / "out"
    result = run_cli("bench.quality", "--suite", "dev_smoke", "--seeds", 2, "--data", data,
                     "--datasets", "tfns,hint3_curekart", "--out", out,
                     "--work", tmp_path / "work")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "quality_dev_smoke.json").read_text())  # the suite's own
    assert set(report["sets"]) == {"tfns", "hint3_curekart"} and report["complete"]
    assert report["sets"]["tfns"]["sizes"]["test"] == 18  # TFNS: its validation file
    hint3 = report["sets"]["hint3_curekart"]
    assert len(hint3["runs"]["default"]) == 2 and "out_of_scope_recall" in hint3["runs"][
        "default"][0]
    assert len(hint3["paired"]["default"]["diffs"]) == 2
    assert set(report["pooled"]) == {"sentiment", "intents"}
    table = (out / "QUALITY.md").read_text()
    assert "## Development suite" in table and "| intents | default |" in table


def test_dev_suite_refuses_unknown_sets_before_any_work(tmp_path):
    result = run_cli("bench.quality", "--suite", "dev_smoke", "--datasets", "nope",
                     "--data", tmp_path, "--out", tmp_path / "out", "--work", tmp_path / "w")
    assert result.returncode != 0 and "unknown data set 'nope'" in result.stderr
    assert not (tmp_path / "out").exists()
    assert REPO.is_dir()


def test_a_stopped_run_keeps_the_sets_it_finished(tmp_path):
    import time

    from bench.dev_suite import publish

    runs = {"reference": [{"macro_f1": 0.5, "accuracy": 0.6, "seconds": 1.0},
                          {"macro_f1": 0.52, "accuracy": 0.61, "seconds": 1.0}],
            "default": [{"macro_f1": 0.55, "accuracy": 0.63, "seconds": 2.0},
                        {"macro_f1": 0.56, "accuracy": 0.64, "seconds": 2.0}]}
    result = {"command": "python -m bench.quality --suite dev", "date": "d", "seeds": [1, 2],
              "machine": {"cpu": "x", "cores": 2},
              "sets": {"tfns": {"family": "sentiment", "runs": runs,
                                "sizes": {"train": 1, "validation": 1, "test": 1}}}}
    runs["ema"] = [{"macro_f1": 0.56, "accuracy": 0.6, "seconds": 2.0},
                   {"macro_f1": 0.58, "accuracy": 0.6, "seconds": 2.0}]
    publish(result, tmp_path, time.perf_counter(), complete=False)
    saved = json.loads((tmp_path / "quality_dev.json").read_text())
    assert saved["complete"] is False
    assert saved["sets"]["tfns"]["paired"]["default"]["mean"] == pytest.approx(4.5)
    table = (tmp_path / "QUALITY.md").read_text()
    assert "**Partial: 1 set(s) finished (tfns).**" in table
    assert "| sentiment | default | +4.50" in table
    # a lever recipe is also paired against the default: +1 and +2 points
    assert saved["sets"]["tfns"]["paired_default"]["ema"]["mean"] == pytest.approx(1.5)
    assert "| +6.00 [+6.00, +6.00] | +1.50 [-4.85, +7.85] |" in table  # tfns's ema row
    assert "| sentiment | ema | +6.00 [+6.00, +6.00] | +1.50 [" in table


def test_the_intermediate_recipe_reads_a_sample_of_another_set_of_the_family(tmp_path):
    import csv

    from bench.dev_suite import DEV_SUITES, intermediate_file

    data = fake_data(tmp_path / "data")
    suite = DEV_SUITES["dev_smoke"]
    for name, source, column in (("tfns", "sentfin", "label"), ("fiqa", "tfns", "label"),
                                 ("hint3_curekart", "clinc150", "intent"),
                                 ("clinc150", "rostd", "intent")):
        path = intermediate_file(data, name, suite, tmp_path / "work")
        assert path.name == f"intermediate_{source}.csv"
        rows = list(csv.DictReader(open(path)))
        assert rows and list(rows[0]) == ["text", column]


def test_each_suite_has_its_own_section_and_raw_results_and_renders_again(tmp_path):
    from bench.dev_suite import main, render

    runs = {"reference": [{"macro_f1": 0.5, "seconds": 1.0}, {"macro_f1": 0.5, "seconds": 1.0}],
            "default": [{"macro_f1": 0.6, "seconds": 1.0}, {"macro_f1": 0.62, "seconds": 1.0}]}
    for suite in ("dev", "dev_quick"):
        render({"suite": suite, "command": "c", "date": "d", "seeds": [1, 2],
                "machine": {}, "wall_seconds": 60.0, "complete": True,
                "sets": {"fiqa": {"family": "sentiment", "runs": runs,
                                  "sizes": {"train": 1, "validation": 1, "test": 1}}}},
               tmp_path)
    text = (tmp_path / "QUALITY.md").read_text()
    assert "<!-- dev:begin -->" in text and "<!-- dev_quick:begin -->" in text
    assert "raw results in `quality_dev_quick.json`" in text
    saved = tmp_path / "quality_dev_quick.json"
    assert json.loads(saved.read_text())["sets"]["fiqa"]["paired"]["default"]["mean"] == \
        pytest.approx(11.0)
    (tmp_path / "again").mkdir()
    main(["--render", str(saved), "--out", str(tmp_path / "again")])
    assert "| sentiment | default | +11.00" in (tmp_path / "again" / "QUALITY.md").read_text()


def test_runs_over_different_sets_render_as_one_table(tmp_path):
    from bench.dev_suite import main

    runs = {"reference": [{"macro_f1": 0.5, "seconds": 1.0}, {"macro_f1": 0.5, "seconds": 1.0}],
            "default": [{"macro_f1": 0.6, "seconds": 1.0}, {"macro_f1": 0.62, "seconds": 1.0}]}
    paths = []
    for k, name in enumerate(("fiqa", "sentfin")):
        result = {"suite": "dev_quick", "command": f"c{k}", "date": "d", "seeds": [1, 2],
                  "machine": {}, "wall_seconds": 60.0, "complete": True, "recipes": [],
                  "shipped": {}, "sets": {name: {"family": "sentiment", "runs": runs,
                                                 "sizes": {"train": 1, "validation": 1,
                                                           "test": 1}}}}
        paths.append(tmp_path / f"r{k}.json")
        paths[-1].write_text(json.dumps(result))
    main(["--render", *map(str, paths), "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "quality_dev_quick.json").read_text())
    assert set(saved["sets"]) == {"fiqa", "sentfin"} and saved["wall_seconds"] == 120.0
    text = (tmp_path / "QUALITY.md").read_text()
    assert "**Partial: 2 set(s) finished (fiqa, sentfin).**" in text
    assert "| sentiment | default | +11.00 [+10.00, +12.00] |  | 2 |" in text
    with pytest.raises(SystemExit, match="set fiqa is in two runs"):
        main(["--render", str(paths[0]), str(paths[0]), "--out", str(tmp_path)])
    # A shipped setting one run lacks (added later) does not block; a differing one does.
    for k, shipped in enumerate(({"a": 1}, {"a": 1, "new": "off"})):
        result = json.loads(paths[k].read_text())
        paths[k].write_text(json.dumps({**result, "shipped": shipped}))
    main(["--render", *map(str, paths), "--out", str(tmp_path)])
    assert json.loads((tmp_path / "quality_dev_quick.json").read_text())["shipped"] == \
        {"a": 1, "new": "off"}
    result = json.loads(paths[1].read_text())
    paths[1].write_text(json.dumps({**result, "shipped": {"a": 2}}))
    with pytest.raises(SystemExit, match="runs differ in shipped a"):
        main(["--render", *map(str, paths), "--out", str(tmp_path)])


def test_few_shot_suites_sample_so_many_training_rows_per_label(tmp_path):
    import csv
    from collections import Counter

    from bench.dev_suite import DEV_SUITES, prepare_dev
    from bench.quality_recipes import RECIPES

    assert RECIPES["setfit"] == ["levers.few_shot.method=setfit"]
    assert [DEV_SUITES[f"few_{n}"].train_per_class for n in (8, 16, 64)] == [8, 16, 64]
    data = fake_data(tmp_path / "data")
    files = prepare_dev(data, DEV_SUITES["few_smoke"], tmp_path / "work", ["sentfin", "snips"])
    for name, column in (("sentfin", "label"), ("snips", "intent")):
        counts = Counter(r[column] for r in csv.DictReader(open(files[name]["train"])))
        assert set(counts.values()) == {4}, counts
